"""The POPLIN suite, after the MBBL benchmark (Wang et al., 2019) used by POPLIN and the
paper's Table 2: observations built from the simulator state (velocities not clipped),
rewards replaced by MBBL's (``poplin_rewards``), no early termination, 1000-step episodes.

Importing this module loads neither gymnasium nor MuJoCo: the env wrapper ``MBBLTask`` lives
in ``harness.suites.poplin_env``, imported by ``_build`` when an env is built (and still
reachable as ``harness.suites.poplin.MBBLTask``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from harness.suites.base import EntropySchedule, TaskHyperparameters, TaskSpec
from harness.suites.poplin_observations import PetsCheetahObservation, StateObservation, SwimmerObservation
from harness.suites.poplin_rewards import REWARDS

if TYPE_CHECKING:
    import gymnasium as gym

SUITE = "poplin"
EVAL_EVERY = 10_000


def __getattr__(name: str) -> Any:
    """``MBBLTask`` on first use, from ``poplin_env`` (which imports gymnasium)."""
    if name == "MBBLTask":
        from harness.suites.poplin_env import MBBLTask  # noqa: PLC0415 - it imports gymnasium

        return MBBLTask
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build(
    name: str,
    env_id: str,
    env_kwargs: dict[str, Any],
    observation: Callable[[], StateObservation],
    reset_noise: float | None = None,
    render_size: tuple[int, int] | None = None,
    **_: object,
) -> gym.Env:
    from harness.suites.poplin_env import MBBLTask  # noqa: PLC0415 - task facts must not load the simulator
    from harness.suites.wrappers import finish_env, make_mujoco_env  # noqa: PLC0415 - task facts must not load the simulator

    env = make_mujoco_env(env_id, env_kwargs, render_size)
    return finish_env(MBBLTask(env, observation(), REWARDS[name], reset_noise))


def _task(
    *,
    name: str,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    observation: Callable[[], StateObservation],
    obs_dim: int,
    act_dim: int,
    budget: int,
    paper: TaskHyperparameters,
    authors_code: TaskHyperparameters,
    description: str,
    reset_noise: float | None = None,
) -> TaskSpec:
    """A TaskSpec of this suite: every per-task fact is a keyword argument. No task ends
    early (``can_terminate=False``)."""
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
        can_terminate=False,
        description=description,
        build=partial(_build, name, env_id, dict(env_kwargs or {}), observation, reset_noise),
    )


_NO_EARLY_END = {"terminate_when_unhealthy": False}

# ``paper`` horizons are model transitions (SVG(H), the project's counting): the H of the best
# SAC-SVG(H) row of Table 2. Table 4 prints them in the authors' code's counting (action terms,
# H + 1): 3, 3, 3, 4, 5, 5. Evidence in docs/fidelity.md ("Table 4's H"). The authors' code
# uses H = 2 on every task.

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        _task(
            name="ant",
            env_id="Ant-v5",
            env_kwargs={"include_cfrc_ext_in_observation": False, **_NO_EARLY_END},
            observation=partial(StateObservation, skip=2),
            obs_dim=27,
            act_dim=8,
            budget=200_000,
            paper=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=1, final=-4, decay=0.0625)),
            authors_code=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=1, final=-3, decay=0.5)),
            description="MBBL ant: qpos[2:]+qvel; r = v_x - 3(z-0.57)^2 - 0.1|a|^2 + 1",
        ),
        _task(
            name="hopper",
            env_id="Hopper-v5",
            env_kwargs=_NO_EARLY_END,
            observation=partial(StateObservation, skip=1),
            obs_dim=11,
            act_dim=3,
            budget=200_000,
            paper=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=1, final=1, decay=None)),
            authors_code=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=1, final=0, decay=32)),
            description="MBBL hopper: qpos[1:]+qvel; r = v_x - 3(z-1.3)^2 - 0.1|a|^2 + 1",
        ),
        _task(
            name="swimmer",
            env_id="Swimmer-v5",
            observation=SwimmerObservation,
            obs_dim=9,
            act_dim=2,
            budget=50_000,
            paper=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=-2, final=-16, decay=16)),
            authors_code=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=-2, final=-32, decay=0.125)),
            description="MBBL swimmer: qpos[2:]+qvel+tip x velocity; r = previous tip velocity - 1e-4|a|^2",
        ),
        _task(
            name="cheetah",
            env_id="HalfCheetah-v5",
            observation=partial(StateObservation, skip=1),
            obs_dim=17,
            act_dim=6,
            budget=200_000,
            paper=TaskHyperparameters(horizon=3, entropy=EntropySchedule(init=0, final=-4, decay=1)),
            authors_code=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=-1, final=-4, decay=1)),
            description="MBBL cheetah: qpos[1:]+qvel; r = v_x - 0.1|a|^2",
        ),
        _task(
            name="walker2d",
            env_id="Walker2d-v5",
            env_kwargs={"xml_file": "walker2d.xml", **_NO_EARLY_END},
            observation=partial(StateObservation, skip=1),
            obs_dim=17,
            act_dim=6,
            budget=200_000,
            paper=TaskHyperparameters(horizon=4, entropy=EntropySchedule(init=1, final=1, decay=None)),
            authors_code=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=-2, final=-16, decay=0.015625)),
            description="MBBL walker2d: qpos[1:]+qvel; r = v_x - 3(z-1.3)^2 - 0.1|a|^2 + 1",
        ),
        _task(
            name="pets-cheetah",
            env_id="HalfCheetah-v5",
            observation=PetsCheetahObservation,
            obs_dim=19,
            act_dim=6,
            budget=50_000,
            reset_noise=0.001,
            paper=TaskHyperparameters(horizon=4, entropy=EntropySchedule(init=-2, final=-4, decay=0.0625)),
            authors_code=TaskHyperparameters(horizon=2, entropy=EntropySchedule(init=0, final=0, decay=0)),
            description="PETS cheetah: 19-d obs, reset noise N(0, 0.001^2); r = v_x' - 0.1|a|^2",
        ),
    ]
}
