"""The POPLIN suite's env wrapper: MBBL's observation and reward on a gymnasium MuJoCo env.

Imported by ``harness.suites.poplin``'s env builder when an env is built, so that importing
the suite (for its task facts) loads neither gymnasium nor MuJoCo.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

    from harness.suites.poplin_observations import StateObservation
    from harness.suites.poplin_rewards import RewardFunction


class MBBLTask(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Replaces the env's observation and reward by MBBL's and never terminates early:
    episodes end only by the 1000-step time limit (``truncated``)."""

    def __init__(
        self, env: gym.Env, observation: StateObservation, reward: RewardFunction, reset_noise: float | None = None
    ) -> None:
        # recorded (copied) so that ``env.spec.make()`` rebuilds this env
        gym.utils.RecordConstructorArgs.__init__(self, observation=observation, reward=reward, reset_noise=reset_noise)
        gym.Wrapper.__init__(self, env)
        # its own copy: envs rebuilt from one spec get the same recorded observation, which
        # keeps per-episode state (the finite-difference velocity)
        self.observation = copy.deepcopy(observation)
        self.reward_function = reward
        self.reset_noise = reset_noise
        base = cast("MujocoEnv", env.unwrapped)
        probe = self.observation(base.data, base.dt)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=probe.shape, dtype=np.float64)
        self.last_obs = probe

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        base = cast("MujocoEnv", self.env.unwrapped)
        if self.reset_noise is not None:  # PETS: N(0, sigma^2) on qpos and qvel
            rng = base.np_random
            base.set_state(
                base.init_qpos + rng.normal(0.0, self.reset_noise, base.model.nq),
                base.init_qvel + rng.normal(0.0, self.reset_noise, base.model.nv),
            )
        self.observation.reset(base.data)
        self.last_obs = self.observation(base.data, base.dt)
        return self.last_obs.copy(), info

    def step(self, action):
        _, _, terminated, truncated, info = self.env.step(action)
        if terminated:
            raise RuntimeError("a POPLIN task terminated early; its env must not terminate")
        base = cast("MujocoEnv", self.env.unwrapped)
        self.observation.advance(base.data, base.dt)
        obs = self.observation(base.data, base.dt)
        reward = float(self.reward_function(self.last_obs[None], np.asarray(action, np.float64)[None], obs[None])[0])
        self.last_obs = obs
        return obs.copy(), reward, False, truncated, info

    # resumable state (harness.suites.wrappers.get_env_state)
    def wrapper_state(self) -> dict[str, Any]:
        return {"last_obs": self.last_obs.tolist(), "observation": self.observation.state()}

    def load_wrapper_state(self, state: dict[str, Any]) -> None:
        self.last_obs = np.asarray(state["last_obs"], dtype=np.float64)
        self.observation.load_state(state["observation"])
