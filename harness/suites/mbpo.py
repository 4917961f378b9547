"""The MBPO suite (Janner et al., 2019): gym v2 locomotion tasks, rebuilt on v5 envs.

Observations, rewards and terminations follow ../shared/TASKS.md; per-task horizon and
target-entropy schedule are the paper's Table 4 (H = 2 everywhere) and, for the
``authors-code`` preset, the authors' code's task configs.
"""

from __future__ import annotations

from functools import partial

import gymnasium as gym

from harness.suites.base import EntropySchedule as S
from harness.suites.base import TaskHyperparameters as HP
from harness.suites.base import TaskSpec
from harness.suites.wrappers import finish_env

SUITE = "mbpo"
EVAL_EVERY = 25_000


def _build(env_id: str, kwargs: dict, terminal_alive_bonus: bool = False, **_: object) -> gym.Env:
    return finish_env(gym.make(env_id, **kwargs), terminal_alive_bonus=terminal_alive_bonus)


def _task(name, env_id, kwargs, obs_dim, act_dim, budget, mbpo_figure_steps, paper, authors, can_terminate, text):
    return TaskSpec(
        suite=SUITE, name=name, env_id=env_id, obs_dim=obs_dim, act_dim=act_dim, budget=budget,
        eval_every=EVAL_EVERY, paper=HP(2, paper), authors_code=HP(2, authors), can_terminate=can_terminate,
        description=text, build=partial(_build, env_id, kwargs), comparison_steps=(mbpo_figure_steps,))


_HUMANOID_KWARGS = dict(include_cinert_in_observation=False, include_cvel_in_observation=False,
                        include_qfrc_actuator_in_observation=False, include_cfrc_ext_in_observation=False)

TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    _task("hopper", "Hopper-v5", {}, 11, 3, 1_000_000, 125_000,
          S(0, -1, 0.5), S(0, -2, 0.03125), True, "Hopper; ends when unhealthy (z, angle, state bounds)"),
    _task("walker2d", "Walker2d-v5", {"xml_file": "walker2d.xml"}, 17, 6, 2_000_000, 300_000,
          S(-2, -3, 64), S(-2, -8, 0.0625), True, "Walker2d with the v2 model; ends when 0.8<z<2, |angle|<1 fails"),
    _task("halfcheetah", "HalfCheetah-v5", {}, 17, 6, 2_000_000, 400_000,
          S(-2, -2, None), S(-2, -3, 1), False, "HalfCheetah; never terminates"),
    _task("ant", "Ant-v5", {"include_cfrc_ext_in_observation": False}, 27, 8, 2_000_000, 300_000,
          S(2, -4, 1), S(0, -2, 4), True, "Ant, obs qpos[2:]+qvel; ends unless finite and 0.2<=z<=1"),
    _task("humanoid", "Humanoid-v5", _HUMANOID_KWARGS, 45, 17, 5_000_000, 300_000,
          S(-1, -1, None), S(-2, -2, 1), True, "Humanoid, obs qpos[2:]+qvel, actions +-0.4; ends when z<1 or z>2"),
]}
