"""The MBPO suite (Janner et al., 2019): gym v2 locomotion tasks, rebuilt on v5 envs.

Observations, rewards and terminations follow MBPO's gym v2 tasks (the v5 settings below;
docs/fidelity.md, "Environments", says where they differ); per-task horizon and
target-entropy schedule are the paper's Table 4 (H = 2 everywhere) and, for the
``authors-code`` preset, the authors' code's task configs.

Importing this module loads neither gymnasium nor MuJoCo: ``_build`` imports them when an
env is built.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from harness.suites.base import EntropySchedule, TaskHyperparameters, TaskSpec

if TYPE_CHECKING:
    import gymnasium as gym

SUITE = "mbpo"
EVAL_EVERY = 25_000


def _build(
    env_id: str,
    env_kwargs: dict[str, Any],
    terminal_alive_bonus: bool = False,
    render_size: tuple[int, int] | None = None,
    **_: object,
) -> gym.Env:
    from harness.suites.wrappers import finish_env, make_mujoco_env  # noqa: PLC0415 - task facts must not load the simulator

    return finish_env(make_mujoco_env(env_id, env_kwargs, render_size), terminal_alive_bonus=terminal_alive_bonus)


def _task(
    *,
    name: str,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    obs_dim: int,
    act_dim: int,
    budget: int,
    mbpo_figure_step: int,
    paper: TaskHyperparameters,
    authors_code: TaskHyperparameters,
    can_terminate: bool,
    description: str,
) -> TaskSpec:
    """A TaskSpec of this suite: every per-task fact is a keyword argument."""
    return TaskSpec(
        suite=SUITE,
        name=name,
        env_id=env_id,
        obs_dim=obs_dim,
        act_dim=act_dim,
        budget=budget,
        eval_every=EVAL_EVERY,
        paper=paper,
        authors_code=authors_code,
        can_terminate=can_terminate,
        description=description,
        build=partial(_build, env_id, dict(env_kwargs or {})),
        comparison_steps=(mbpo_figure_step,),
    )


_HUMANOID_KWARGS = dict(
    include_cinert_in_observation=False,
    include_cvel_in_observation=False,
    include_qfrc_actuator_in_observation=False,
    include_cfrc_ext_in_observation=False,
)

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        _task(
            name="hopper",
            env_id="Hopper-v5",
            obs_dim=11,
            act_dim=3,
            budget=1_000_000,
            mbpo_figure_step=125_000,
            paper=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=0, final=-1, decay=0.5)),
            authors_code=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=0, final=-2, decay=0.03125)),
            can_terminate=True,
            description="Hopper; ends when unhealthy (z, angle, state bounds)",
        ),
        _task(
            name="walker2d",
            env_id="Walker2d-v5",
            env_kwargs={"xml_file": "walker2d.xml"},
            obs_dim=17,
            act_dim=6,
            budget=2_000_000,
            mbpo_figure_step=300_000,
            paper=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=-2, final=-3, decay=64)),
            authors_code=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=-2, final=-8, decay=0.0625)),
            can_terminate=True,
            description="Walker2d with the v2 model; ends when 0.8<z<2, |angle|<1 fails",
        ),
        _task(
            name="halfcheetah",
            env_id="HalfCheetah-v5",
            obs_dim=17,
            act_dim=6,
            budget=2_000_000,
            mbpo_figure_step=400_000,
            paper=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=-2, final=-2, decay=None)),
            authors_code=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=-2, final=-3, decay=1)),
            can_terminate=False,
            description="HalfCheetah; never terminates",
        ),
        _task(
            name="ant",
            env_id="Ant-v5",
            env_kwargs={"include_cfrc_ext_in_observation": False},
            obs_dim=27,
            act_dim=8,
            budget=2_000_000,
            mbpo_figure_step=300_000,
            paper=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=2, final=-4, decay=1)),
            authors_code=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=0, final=-2, decay=4)),
            can_terminate=True,
            description="Ant, obs qpos[2:]+qvel; ends unless finite and 0.2<=z<=1",
        ),
        _task(
            name="humanoid",
            env_id="Humanoid-v5",
            env_kwargs=_HUMANOID_KWARGS,
            obs_dim=45,
            act_dim=17,
            budget=5_000_000,
            mbpo_figure_step=300_000,
            paper=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=-1, final=-1, decay=None)),
            authors_code=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=-2, final=-2, decay=1)),
            can_terminate=True,
            description="Humanoid, obs qpos[2:]+qvel, actions +-0.4; ends when z<1 or z>2",
        ),
    ]
}
