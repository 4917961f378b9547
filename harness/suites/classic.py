"""The classic suite: quick sanity tasks that are not in the paper.

They keep their own rewards and terminations. Not in Table 4: we use H = 2 (the paper's
MBPO choice) and SAC's usual constant target entropy -|A| for both presets.

Importing this module loads neither gymnasium nor MuJoCo: ``_build`` imports them when an
env is built.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from harness.suites.base import EntropySchedule, TaskHyperparameters, TaskSpec

if TYPE_CHECKING:
    import gymnasium as gym

SUITE = "classic"

# One action dimension on both tasks: H = 2 and the constant target entropy -|A| = -1.
_HYPERPARAMETERS = TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=-1.0, final=-1.0, decay=None))


def _build(env_id: str, render_size: tuple[int, int] | None = None, **_: object) -> gym.Env:
    from harness.suites.wrappers import finish_env, make_mujoco_env  # noqa: PLC0415 - task facts must not load the simulator

    return finish_env(make_mujoco_env(env_id, {}, render_size))


def _task(
    *, name: str, env_id: str, obs_dim: int, act_dim: int, budget: int, eval_every: int, description: str
) -> TaskSpec:
    """A TaskSpec of this suite: every per-task fact is a keyword argument."""
    return TaskSpec(
        suite=SUITE,
        name=name,
        env_id=env_id,
        obs_dim=obs_dim,
        act_dim=act_dim,
        budget=budget,
        eval_every=eval_every,
        paper=_HYPERPARAMETERS,
        authors_code=_HYPERPARAMETERS,
        can_terminate=True,
        description=description,
        build=partial(_build, env_id),
    )


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        _task(
            name="inverted-pendulum",
            env_id="InvertedPendulum-v5",
            obs_dim=4,
            act_dim=1,
            budget=15_000,
            eval_every=1_000,
            description="InvertedPendulum-v5: +1 per step, ends when the pole falls (max return 1000)",
        ),
        _task(
            name="inverted-double-pendulum",
            env_id="InvertedDoublePendulum-v5",
            obs_dim=9,
            act_dim=1,
            budget=50_000,
            eval_every=5_000,
            description="InvertedDoublePendulum-v5: ends when the tip drops (max return about 9350)",
        ),
    ]
}
