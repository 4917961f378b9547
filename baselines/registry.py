"""Registry of agent variants, filled once at import: name -> settings of ``AgentConfig``.

Each variant is registered as a node of Hydra's ``agent`` config group by ``harness.config``,
so ``--agent sac`` composes the same settings a user could write by hand.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AgentVariant:
    name: str
    description: str
    settings: dict[str, Any] = field(default_factory=dict)  # AgentConfig fields it fixes
    paper_name: str = ""


AGENTS: dict[str, AgentVariant] = {
    v.name: v
    for v in [
        AgentVariant(
            "sac",
            "model-free SAC: SVG(0) actor (eq. 7), soft Bellman critic (eq. 4-6), no model",
            {"horizon": 0, "actor_expansion": False, "critic_expansion": False},
            "SAC",
        ),
        AgentVariant(
            "sac-svg",
            "SAC-SVG(H): SVG(H) actor through a learned GRU world model (eq. 9), model-free critic",
            {"horizon": None, "actor_expansion": True, "critic_expansion": False, "dynamics": "gru"},
            "SAC-SVG(H)",
        ),
        # The MVE critic's target at agent.horizon = H (docs/fidelity.md, "Ablation agents"): Q_{0:H}
        # of eq. (3) by default (the real step and H - 1 model steps; Q_{0:1} is SAC's target),
        # Q_{0:H+1} with agent.mve_horizon_counting=authors-code (the authors' code, and so most
        # likely the curves of the paper's Fig. 4; its text gives neither their H nor a counting).
        AgentVariant(
            "mve",
            "MVE critic (eq. 3's Q_{0:H} targets, Feinberg et al. 2018), model-free SAC actor",
            {"horizon": None, "actor_expansion": False, "critic_expansion": True, "dynamics": "gru"},
            "SAC-MVE",
        ),
        AgentVariant(
            "sac-svg-mve",
            "SVG(H) actor (V_{0:H}, eq. 9) and MVE critic (Q_{0:H}, eq. 3), both through the GRU world "
            "model (paper Fig. 4)",
            {"horizon": None, "actor_expansion": True, "critic_expansion": True, "dynamics": "gru"},
            "SAC-SVG(H)-MVE",
        ),
        AgentVariant(
            "sac-svg-ensemble",
            "SVG(H) actor through an ensemble of 5 one-step MLP dynamics models (paper Fig. 3)",
            {
                "horizon": None,
                "actor_expansion": True,
                "critic_expansion": False,
                "dynamics": "mlp-ensemble",
                "ensemble_size": 5,
            },
            "SAC-SVG(H), MLP ensemble",
        ),
    ]
}


# AgentConfig fields that only the world model uses: a model-free agent builds no model, so a
# value given for one of them would change nothing.
MODEL_KEYS = (
    "horizon",
    "dynamics",
    "ensemble_size",
    "model_hidden_dim",
    "model_hidden_depth",
    "gru_hidden_dim",
    "gru_layers",
    "model_lr",
    "dynamics_decoder",
    "dynamics_detach_predicted_state",
    "dynamics_grad_clip",
    "termination_pos_weight",
    "num_seq_updates",
    "seq_batch_size",
    "model_free_actor_warmup_steps",
)
GRU_KEYS = ("gru_hidden_dim", "gru_layers", "dynamics_decoder", "dynamics_detach_predicted_state")
MVE_KEYS = ("mve_horizon_counting",)  # fields only an MVE critic (critic_expansion) uses


def setting_problem(variant: AgentVariant, key: str, value: Any) -> tuple[str, str] | None:
    """("refuse" | "warn", why) when ``agent.<key>=value`` cannot mean what the user wants
    for this agent: it contradicts a setting the agent fixes (refuse), or it configures a
    part the agent does not have (warn: shared override lists stay usable). None if fine."""
    fixed = variant.settings.get(key)
    if key in variant.settings and fixed is not None and value != fixed:
        shown = str(fixed).lower() if isinstance(fixed, bool) else fixed
        return "refuse", f"agent {variant.name} fixes agent.{key}={shown}"
    model_free = not variant.settings.get("actor_expansion", True) and not variant.settings.get("critic_expansion")
    if model_free and key in MODEL_KEYS:
        return "warn", f"agent {variant.name} is model-free (no world model), so agent.{key} changes nothing"
    if not variant.settings.get("critic_expansion") and key in MVE_KEYS:
        return "warn", f"agent {variant.name} has no MVE critic, so agent.{key} changes nothing"
    dynamics = variant.settings.get("dynamics", "gru")
    if dynamics == "gru" and key == "ensemble_size":
        return "warn", f"agent {variant.name} uses the GRU model, so agent.{key} changes nothing"
    if dynamics == "mlp-ensemble" and key in GRU_KEYS:
        return "warn", f"agent {variant.name} uses the MLP ensemble, so agent.{key} changes nothing"
    return None


class UnknownAgentError(LookupError):
    """An agent name that is not registered; the message lists the valid ones."""


def get_agent(name: str) -> AgentVariant:
    if name not in AGENTS:
        close = difflib.get_close_matches(name, list(AGENTS), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownAgentError(f"unknown agent {name!r}{hint}; valid agents: {', '.join(AGENTS)}")
    return AGENTS[name]
