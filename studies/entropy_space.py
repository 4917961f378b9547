"""The target-entropy search space of appendix A.2, its random sampling, and its Optuna form.

    H_init  ~ Cat({1, 0, -1, -2})
    H_final ~ Cat({H_init, -5} U {-2^i : i = 0..6})     (a set: duplicates collapse)
    beta    ~ Cat({2^i : i = 0..6})

Cat is uniform. The schedule is eq. (14): H_t = (H_init - H_final)(1 - t/T)^beta + H_final.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

H_INIT_CHOICES: tuple[int, ...] = (1, 0, -1, -2)
BETA_CHOICES: tuple[int, ...] = tuple(2**i for i in range(7))
H_INIT_PARAM, BETA_PARAM = "H_init", "beta"


def h_final_choices(h_init: int) -> tuple[int, ...]:
    """The set {H_init, -5} U {-2^i : i = 0..6}, largest first (8 or 9 values)."""
    return tuple(sorted({h_init, -5} | {-(2**i) for i in range(7)}, reverse=True))


def h_final_param(h_init: int) -> str:
    """Optuna's name for H_final given H_init. Optuna's categorical distributions cannot change
    their choices between trials, so H_final is one conditional parameter per H_init."""
    return f"H_final|H_init={h_init}"


@dataclass(frozen=True)
class Schedule:
    """(H_init, H_final, beta) of eq. (14)."""

    init: int
    final: int
    beta: int

    def overrides(self) -> list[str]:
        """The ``key=value`` settings that give a run this schedule."""
        return [
            f"agent.target_entropy.init={self.init}",
            f"agent.target_entropy.final={self.final}",
            f"agent.target_entropy.decay={self.beta}",
        ]

    def params(self) -> dict[str, int]:
        """The Optuna parameters of this schedule (for ``enqueue_trial``)."""
        return {H_INIT_PARAM: self.init, h_final_param(self.init): self.final, BETA_PARAM: self.beta}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Schedule | None:
        """The schedule a trial's parameters describe, or None if they are incomplete."""
        if H_INIT_PARAM not in params or BETA_PARAM not in params:
            return None
        final = params.get(h_final_param(int(params[H_INIT_PARAM])))
        return None if final is None else cls(int(params[H_INIT_PARAM]), int(final), int(params[BETA_PARAM]))


def search_space() -> list[Schedule]:
    """Every schedule A.2 can draw: 34 (H_init, H_final) pairs x 7 betas = 238."""
    return [Schedule(i, f, b) for i in H_INIT_CHOICES for f in h_final_choices(i) for b in BETA_CHOICES]


def sample_schedule(rng: np.random.Generator) -> Schedule:
    """One draw of A.2's hierarchical uniform categorical sampling."""
    init = int(rng.choice(H_INIT_CHOICES))
    return Schedule(init, int(rng.choice(h_final_choices(init))), int(rng.choice(BETA_CHOICES)))


def sample_schedules(count: int, seed: int) -> list[Schedule]:
    """The paper's random search: ``count`` independent draws, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [sample_schedule(rng) for _ in range(count)]


def suggest_schedule(trial: Any) -> Schedule:
    """Ask an Optuna trial for a schedule in A.2's space: enqueued (random search) trials
    return their fixed values, other trials ask the study's sampler (e.g. TPE)."""
    init = int(trial.suggest_categorical(H_INIT_PARAM, H_INIT_CHOICES))
    final = int(trial.suggest_categorical(h_final_param(init), h_final_choices(init)))
    beta = int(trial.suggest_categorical(BETA_PARAM, BETA_CHOICES))
    return Schedule(init, final, beta)


def space_description() -> dict[str, Any]:
    """The space as plain data, stored with a study so a rerun can check it is the same."""
    return {
        "H_init": list(H_INIT_CHOICES),
        "H_final": {str(i): list(h_final_choices(i)) for i in H_INIT_CHOICES},
        "beta": list(BETA_CHOICES),
    }
