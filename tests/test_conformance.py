"""Environment conformance: every task of every suite passes gymnasium's ``check_env``, repeats
its trajectory under the same seed, and renders frames of the declared size without changing
that trajectory (so recording videos changes no number)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.utils.passive_env_checker import env_render_passive_checker

from harness.suites import SUITES, TaskSpec
from harness.video import VideoError, choose_gl_backend, render_frame

TASKS = [pytest.param(spec, id=f"{suite}/{name}") for suite, tasks in SUITES.items() for name, spec in tasks.items()]
# The terminal alive bonus pays only on a terminating step: tasks that never end early are unchanged.
ALIVE_BONUS_TASKS = [
    pytest.param(spec, id=f"mbpo/{name}") for name, spec in SUITES["mbpo"].items() if spec.can_terminate
]

STEPS = 100
RENDER_SIZE = (96, 64)  # (width, height): not square, so swapped sides show

# check_env's warnings that do not apply here; any other warning fails the test.
TOLERATED_WARNINGS = (
    # We check the env as the trainer builds it, wrappers included, on purpose.
    "is different from the unwrapped version",
    # MuJoCo observations (positions, velocities) are unbounded; gymnasium's own MuJoCo envs
    # declare Box(-inf, inf) too.
    "A Box observation space minimum value is -infinity",
    "A Box observation space maximum value is infinity",
)
# check_env's render step also rebuilds the env through ``env.spec`` in every render mode that
# gymnasium's MuJoCo env declares. "human" opens a GLFW window, which aborts the interpreter on a
# machine without a display; the trainer renders "rgb_array" only. So check_env runs with
# ``skip_render_check=True``, and the render check it would make on our env
# (``env_render_passive_checker``) runs on the env built with a render size.
SKIP_RENDER_MODES = {"skip_render_check": True}


@contextmanager
def failing_on_warnings() -> Iterator[None]:
    """Fails the test if the block warns, but for TOLERATED_WARNINGS; lists every warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    unexpected = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if not any(tolerated in str(w.message) for tolerated in TOLERATED_WARNINGS)
    ]
    assert not unexpected, "\n".join(unexpected)


@pytest.fixture(scope="module")
def rendering() -> str:
    """The OpenGL back-end MuJoCo renders off-screen with; skips the test where none works.
    Asked in a child process: a missing OpenGL can abort the interpreter (GLFW without a
    display) instead of raising."""
    try:
        backend = choose_gl_backend()
    except VideoError as error:
        pytest.skip(f"cannot render off-screen: {error}")
    probe = (
        "import gymnasium\n"  # not harness: it imports torch, seconds for nothing here
        "env = gymnasium.make('InvertedPendulum-v5', render_mode='rgb_array', width=16, height=16)\n"
        "env.reset(seed=0)\n"
        "env.render()\n"
        "env.close()\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        pytest.skip(f"MuJoCo cannot render off-screen with MUJOCO_GL={backend}: {reason}")
    return backend


@pytest.fixture
def make_rendering_env(rendering: str) -> Iterator[Callable[..., gym.Env]]:
    """``make(spec, **options)``: the task's env drawing RENDER_SIZE frames, closed after the
    test (an OSMesa viewer left open prints a traceback at interpreter exit)."""
    built: list[gym.Env] = []

    def make(spec: TaskSpec, **options: object) -> gym.Env:
        built.append(spec.make_env(render_size=RENDER_SIZE, **options))
        return built[-1]

    yield make
    for env in built:
        env.close()


@dataclass
class Trajectory:
    observations: list[np.ndarray] = field(default_factory=list)  # each (obs_dim,): every reset's and step's
    rewards: list[float] = field(default_factory=list)  # one per step
    ends: list[tuple[bool, bool]] = field(default_factory=list)  # (terminated, truncated), one per step


def fixed_actions(spec: TaskSpec, seed: int = 0) -> np.ndarray:
    """(STEPS, act_dim) float32 actions in [-1, 1], the same for a given seed."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (STEPS, spec.act_dim)).astype(np.float32)


def rollouts_in_lockstep(
    envs: list[gym.Env], seed: int, actions: np.ndarray, rendering: gym.Env | None = None
) -> list[Trajectory]:
    """Each env reset with ``seed`` and stepped through ``actions``, all advanced together, so
    that state shared between instances would show. An episode that ends is reset without a
    seed. ``rendering``, one of ``envs``, draws a frame as the trainer does after every reset
    and step."""
    trajectories = [Trajectory() for _ in envs]

    def reset(env: gym.Env, trajectory: Trajectory, **options: object) -> None:
        trajectory.observations.append(env.reset(**options)[0])
        if env is rendering:
            render_frame(env)

    for env, trajectory in zip(envs, trajectories):
        reset(env, trajectory, seed=seed)
    for action in actions:
        for env, trajectory in zip(envs, trajectories):
            obs, reward, terminated, truncated, _ = env.step(action)
            trajectory.observations.append(obs)
            trajectory.rewards.append(float(reward))
            trajectory.ends.append((bool(terminated), bool(truncated)))
            if env is rendering:
                render_frame(env)
            if terminated or truncated:
                reset(env, trajectory)
    return trajectories


def assert_same_trajectory(actual: Trajectory, expected: Trajectory) -> None:
    """Exactly equal: every observation bit, reward and end flag."""
    assert actual.ends == expected.ends
    assert actual.rewards == expected.rewards
    assert len(actual.observations) == len(expected.observations)
    for step, (got, want) in enumerate(zip(actual.observations, expected.observations)):
        assert got.dtype == want.dtype, f"observation {step}"
        np.testing.assert_array_equal(got, want, err_msg=f"observation {step}")


def assert_frame_of_render_size(frame: np.ndarray) -> None:
    width, height = RENDER_SIZE
    assert frame.shape == (height, width, 3)
    assert frame.dtype == np.uint8
    assert frame.min() < frame.max(), "the frame is one flat colour"


# --- gymnasium's check_env ------------------------------------------------------------------


@pytest.mark.parametrize("spec", TASKS)
def test_check_env_passes_on_the_env_as_the_trainer_builds_it(spec):
    with failing_on_warnings():
        check_env(spec.make_env(), **SKIP_RENDER_MODES)


@pytest.mark.parametrize("spec", ALIVE_BONUS_TASKS)
def test_check_env_passes_with_the_terminal_alive_bonus(spec):
    with failing_on_warnings():
        check_env(spec.make_env(terminal_alive_bonus=True), **SKIP_RENDER_MODES)


@pytest.mark.parametrize("spec", TASKS)
def test_check_env_passes_on_the_rendering_env(spec, make_rendering_env):
    env = make_rendering_env(spec)
    with failing_on_warnings():
        check_env(env, **SKIP_RENDER_MODES)
        env.reset(seed=0)
        env_render_passive_checker(env)


@pytest.mark.parametrize("spec", TASKS)
def test_env_spec_rebuilds_the_same_env(spec):
    """``env.spec.make()`` (check_env's close check, ``gym.make(env.spec)``) rebuilds our
    wrappers too, and two rebuilt envs share no state."""
    env = spec.make_env()
    original, *rebuilt = rollouts_in_lockstep([env, env.spec.make(), env.spec.make()], 0, fixed_actions(spec))
    for trajectory in rebuilt:
        assert_same_trajectory(trajectory, original)


# --- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", TASKS)
def test_same_seed_gives_the_same_first_steps(spec):
    first, second = rollouts_in_lockstep([spec.make_env(), spec.make_env()], 7, fixed_actions(spec))
    assert len(first.rewards) == STEPS
    assert_same_trajectory(first, second)


@pytest.mark.parametrize("spec", TASKS)
def test_different_seeds_give_different_first_observations(spec):
    """Every task draws reset noise, so the seed shows in the first observation."""
    env = spec.make_env()
    first, _ = env.reset(seed=0)
    other, _ = env.reset(seed=1)
    assert not np.array_equal(first, other)


# --- rendering ------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", TASKS)
def test_frames_have_the_declared_size(spec, make_rendering_env):
    env = make_rendering_env(spec)
    env.reset(seed=0)
    assert_frame_of_render_size(render_frame(env))  # the trainer's frame: shadows off after the first
    assert_frame_of_render_size(env.render())


@pytest.mark.parametrize("spec", TASKS)
def test_rendering_every_step_changes_no_observation_or_reward(spec, make_rendering_env):
    """What backs "recording videos changes no number": a run drawing frames, as the trainer's
    evaluation does, follows the trajectory of one that never renders."""
    rendering_env, plain_env = make_rendering_env(spec), spec.make_env()
    with_frames, without = rollouts_in_lockstep(
        [rendering_env, plain_env], 3, fixed_actions(spec, 1), rendering=rendering_env
    )
    assert_same_trajectory(with_frames, without)
    # nor draws a random number (which would show only at a later reset)
    rng_states = [env.unwrapped.np_random.bit_generator.state for env in (rendering_env, plain_env)]
    assert rng_states[0] == rng_states[1]
