"""The learning algorithm of SAC-SVG(H) (Amos et al., 2021): networks, replay, normaliser,
world models, the paper's equations (``agents.objectives``) and the agent that wires them.

This package imports nothing from ``harness``: it knows tensors and arrays, not tasks.
"""

from typing import TYPE_CHECKING, Any

from agents.config import AgentConfig, EntropyScheduleConfig

if TYPE_CHECKING:
    from agents.agent import SVGAgent

__all__ = ["AgentConfig", "EntropyScheduleConfig", "SVGAgent"]


def __getattr__(name: str) -> Any:
    """``agents.SVGAgent`` on first use: reading a config (``agents.config``) loads no torch."""
    if name == "SVGAgent":
        from agents.agent import SVGAgent  # noqa: PLC0415 - torch loads on first use only

        return SVGAgent
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
