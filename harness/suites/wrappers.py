"""Env construction helpers shared by suites: action rescaling, the v2 alive bonus, and
capture/restore of a MuJoCo env's full state for exact resumption."""

from __future__ import annotations

import logging
import pickle
from typing import TYPE_CHECKING, Any, Protocol, cast

import gymnasium as gym
import mujoco
import numpy as np
import torch

if TYPE_CHECKING:
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv


def _mujoco_warning(message: str) -> None:
    """MuJoCo's warnings go to Python logging instead of stderr and a MUJOCO_LOG.TXT file
    in the working directory; model-compiler deprecation notices (the humanoid XML's
    'settotalmass') are dropped."""
    if "deprecated" not in message:
        logging.getLogger("mujoco").warning(message.strip())


mujoco.set_mju_user_warning(_mujoco_warning)


class TerminalAliveBonus(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Pays the healthy reward on the terminating step too, as gym's v2 tasks did (v5 does not)."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)  # so that ``env.spec.make()`` rebuilds it
        gym.Wrapper.__init__(self, env)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated:
            # the constant, not the property, which v5 zeroes when unhealthy
            unwrapped: Any = self.env.unwrapped  # a MuJoCo task of gymnasium v5
            reward = float(reward) + float(unwrapped._healthy_reward)  # noqa: SLF001 - no public constant
        return obs, reward, terminated, truncated, info


def make_mujoco_env(env_id: str, env_kwargs: dict[str, Any], render_size: tuple[int, int] | None = None) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)``; with ``render_size`` (width, height), an env whose
    ``render()`` returns RGB frames of that size, drawn off-screen (``harness.video``
    chooses the OpenGL back-end). Rendering reads the simulation, never its RNG."""
    if render_size is not None:
        width, height = render_size
        env_kwargs = dict(env_kwargs, render_mode="rgb_array", width=int(width), height=int(height))
    return gym.make(env_id, **env_kwargs)


def finish_env(env: gym.Env, terminal_alive_bonus: bool = False) -> gym.Env:
    """Actions in [-1, 1] mapped affinely to the env's control range, float64 obs kept."""
    if terminal_alive_bonus:
        env = TerminalAliveBonus(env)
    space = cast(gym.spaces.Box, env.action_space)
    low, high = space.low, space.high
    if not (np.all(low == -1.0) and np.all(high == 1.0)):
        shape = space.shape
        env = gym.wrappers.RescaleAction(env, np.full(shape, -1.0, np.float32), np.full(shape, 1.0, np.float32))
    return env


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


class StatefulWrapper(Protocol):
    """A wrapper with a memory of its own across steps (``MBBLTask``'s observation)."""

    def wrapper_state(self) -> Any: ...

    def load_wrapper_state(self, state: Any) -> None: ...


def _stateful_wrappers(env: gym.Env) -> list[StatefulWrapper]:
    found = []
    while isinstance(env, gym.Wrapper):
        if hasattr(env, "wrapper_state"):
            found.append(cast(StatefulWrapper, env))
        env = env.env
    return found


def get_env_state(env: gym.Env) -> dict[str, Any]:
    """Everything needed to continue this env exactly: MuJoCo's whole ``MjData`` (derived
    quantities included, which some envs read before stepping), the time-limit counter,
    the env's RNG and our wrappers' own state."""
    base = cast("MujocoEnv", env.unwrapped)
    limit = _time_limit(env)
    return {
        "mjdata": torch.frombuffer(bytearray(pickle.dumps(base.data)), dtype=torch.uint8),
        "elapsed_steps": None if limit is None else limit._elapsed_steps,  # noqa: SLF001 - TimeLimit has no getter
        "np_random": base.np_random.bit_generator.state,
        "wrappers": [w.wrapper_state() for w in _stateful_wrappers(env)],
    }


def set_env_state(env: gym.Env, state: dict[str, Any]) -> None:
    """Inverse of ``get_env_state`` on an env built the same way."""
    base = cast("MujocoEnv", env.unwrapped)
    saved = pickle.loads(state["mjdata"].numpy().tobytes())
    mujoco.mj_copyData(base.data, base.model, saved)
    limit = _time_limit(env)
    if limit is not None:
        limit._elapsed_steps = state["elapsed_steps"]  # noqa: SLF001 - TimeLimit has no setter
    base.np_random.bit_generator.state = state["np_random"]
    for wrapper, wrapper_state in zip(_stateful_wrappers(env), state["wrappers"]):
        wrapper.load_wrapper_state(wrapper_state)
