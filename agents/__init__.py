"""The learning algorithm of SAC-SVG(H) (Amos et al., 2021): networks, replay, normaliser,
world models, the paper's equations (``agents.objectives``) and the agent that wires them.

This package imports nothing from ``harness``: it knows tensors and arrays, not tasks.
"""

from agents.config import AgentConfig, EntropyScheduleConfig
from agents.agent import SVGAgent

__all__ = ["AgentConfig", "EntropyScheduleConfig", "SVGAgent"]
