"""What a task is: its environment, its sizes and budgets, and its per-task hyperparameters.

Standard library only: reports read task facts from here without loading the simulator
(gymnasium, MuJoCo) or torch; those are imported by the suites' env-building functions,
when an env is built. Every field is keyword-only, so each per-task fact is named where it
is written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gymnasium as gym


@dataclass(frozen=True, kw_only=True)
class EntropySchedule:
    """(H_init, H_final, beta) of eq. (14); beta None is a constant target H_init."""

    init: float
    final: float
    decay: float | None = None


@dataclass(frozen=True, kw_only=True)
class TaskHyperparameters:
    """Per-task settings of one source (the paper's Table 4, or the authors' code)."""

    horizon: int
    entropy: EntropySchedule


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """One task of a suite. ``make_env`` builds the un-normalised env with actions in [-1, 1]."""

    suite: str
    name: str
    env_id: str
    obs_dim: int
    act_dim: int
    budget: int  # env steps of the published runs
    eval_every: int
    paper: TaskHyperparameters  # Table 4 (or our choice, for tasks not in the paper)
    authors_code: TaskHyperparameters  # REFERENCE_CODE.md's per-task values
    can_terminate: bool
    description: str
    # builds the env; imports gymnasium and MuJoCo when called, not when the suite is imported
    build: Callable[..., gym.Env] = field(repr=False, compare=False)
    # steps at which published comparisons are made besides the budget (e.g. MBPO's figure)
    comparison_steps: tuple[int, ...] = ()

    def hyperparameters(self, source: str) -> TaskHyperparameters:
        """``source`` is "paper" or "authors-code"."""
        if source == "paper":
            return self.paper
        if source == "authors-code":
            return self.authors_code
        raise ValueError(f"unknown task hyperparameter source {source!r}; valid: paper, authors-code")

    def make_env(self, render_size: tuple[int, int] | None = None, **options: Any) -> gym.Env:
        """The env; with ``render_size`` (width, height), one that renders RGB frames of that size."""
        return self.build(render_size=render_size, **options)

    def summary(self) -> dict[str, Any]:
        """A JSON-friendly description for ``harness list``."""
        return {
            "suite": self.suite,
            "task": self.name,
            "env": self.env_id,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "budget": self.budget,
            "eval_every": self.eval_every,
            "can_terminate": self.can_terminate,
            "horizon": self.paper.horizon,
            "target_entropy": [self.paper.entropy.init, self.paper.entropy.final, self.paper.entropy.decay],
            "authors_code_target_entropy": [
                self.authors_code.entropy.init,
                self.authors_code.entropy.final,
                self.authors_code.entropy.decay,
            ],
            "comparison_steps": list(self.comparison_steps),
            "description": self.description,
        }
