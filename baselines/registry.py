"""Registry of agent variants, filled once at import: name -> settings of ``AgentConfig``.

Each variant is registered as a node of Hydra's ``agent`` config group by ``harness.config``,
so ``--agent sac`` composes the same settings a user could write by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AgentVariant:
    name: str
    description: str
    settings: dict[str, Any] = field(default_factory=dict)  # AgentConfig fields it fixes
    paper_name: str = ""


AGENTS: dict[str, AgentVariant] = {v.name: v for v in [
    AgentVariant(
        "sac", "model-free SAC: SVG(0) actor (eq. 7), soft Bellman critic (eq. 4-6), no model",
        {"horizon": 0, "actor_expansion": False, "critic_expansion": False}, "SAC"),
    AgentVariant(
        "sac-svg", "SAC-SVG(H): SVG(H) actor through a learned GRU world model (eq. 9), model-free critic",
        {"horizon": None, "actor_expansion": True, "critic_expansion": False, "dynamics": "gru"}, "SAC-SVG(H)"),
    AgentVariant(
        "mve", "MVE critic (H-step model value expansion targets, Feinberg et al. 2018), model-free SAC actor",
        {"horizon": None, "actor_expansion": False, "critic_expansion": True, "dynamics": "gru"}, "SAC-MVE"),
    AgentVariant(
        "sac-svg-mve", "SVG(H) actor and MVE critic, both through the GRU world model (paper Fig. 4)",
        {"horizon": None, "actor_expansion": True, "critic_expansion": True, "dynamics": "gru"}, "SAC-SVG(H)-MVE"),
    AgentVariant(
        "sac-svg-ensemble", "SVG(H) actor through an ensemble of 5 one-step MLP dynamics models (paper Fig. 3)",
        {"horizon": None, "actor_expansion": True, "critic_expansion": False, "dynamics": "mlp-ensemble",
         "ensemble_size": 5}, "SAC-SVG(H), MLP ensemble"),
]}


class UnknownAgentError(LookupError):
    """An agent name that is not registered; the message lists the valid ones."""


def get_agent(name: str) -> AgentVariant:
    if name not in AGENTS:
        raise UnknownAgentError(f"unknown agent {name!r}; valid agents: {', '.join(AGENTS)}")
    return AGENTS[name]
