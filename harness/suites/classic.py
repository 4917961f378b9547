"""The classic suite: quick sanity tasks that are not in the paper.

They keep their own rewards and terminations. Not in Table 4: we use H = 2 (the paper's
MBPO choice) and SAC's usual constant target entropy -|A| for both presets.
"""

from __future__ import annotations

from functools import partial

import gymnasium as gym

from harness.suites.base import EntropySchedule, TaskHyperparameters, TaskSpec
from harness.suites.wrappers import finish_env

SUITE = "classic"


def _build(env_id: str, **_: object) -> gym.Env:
    return finish_env(gym.make(env_id))


def _task(name: str, env_id: str, obs_dim: int, budget: int, eval_every: int, text: str) -> TaskSpec:
    hyperparameters = TaskHyperparameters(2, EntropySchedule(-1.0, -1.0, None))
    return TaskSpec(suite=SUITE, name=name, env_id=env_id, obs_dim=obs_dim, act_dim=1, budget=budget,
                    eval_every=eval_every, paper=hyperparameters, authors_code=hyperparameters,
                    can_terminate=True, description=text, build=partial(_build, env_id))


TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    _task("inverted-pendulum", "InvertedPendulum-v5", 4, 15_000, 1_000,
          "InvertedPendulum-v5: +1 per step, ends when the pole falls (max return 1000)"),
    _task("inverted-double-pendulum", "InvertedDoublePendulum-v5", 9, 50_000, 5_000,
          "InvertedDoublePendulum-v5: ends when the tip drops (max return about 9350)"),
]}
