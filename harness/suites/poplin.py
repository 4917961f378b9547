"""The POPLIN suite, after the MBBL benchmark (Wang et al., 2019) used by POPLIN and the
paper's Table 2: observations built from the simulator state (velocities not clipped),
rewards replaced by MBBL's (``poplin_rewards``), no early termination, 1000-step episodes.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from harness.suites.base import EntropySchedule as S
from harness.suites.base import TaskHyperparameters as HP
from harness.suites.base import TaskSpec
from harness.suites.poplin_rewards import REWARDS, RewardFunction
from harness.suites.wrappers import finish_env

SUITE = "poplin"
EVAL_EVERY = 10_000


class StateObservation:
    """qpos[skip:] followed by qvel, straight from the simulator."""

    def __init__(self, skip: int) -> None:
        self.skip = skip

    def reset(self, data: Any) -> None:
        pass

    def advance(self, data: Any, dt: float) -> None:
        """Called once after every env step, before the observation is read."""

    def __call__(self, data: Any, dt: float) -> np.ndarray:
        return np.concatenate([data.qpos[self.skip:], data.qvel]).astype(np.float64)

    def state(self) -> dict[str, float]:
        return {}

    def load_state(self, state: dict[str, float]) -> None:
        pass


class FiniteDifferenceObservation(StateObservation):
    """A state observation that also tracks the velocity of one position over the last
    step, (x_{t+1} - x_t) / dt, which is 0 right after a reset."""

    def __init__(self, skip: int) -> None:
        super().__init__(skip)
        self.previous_position = 0.0
        self.velocity = 0.0

    def position(self, data: Any) -> float:
        raise NotImplementedError

    def reset(self, data: Any) -> None:
        self.previous_position, self.velocity = self.position(data), 0.0

    def advance(self, data: Any, dt: float) -> None:
        position = self.position(data)
        self.velocity = (position - self.previous_position) / dt
        self.previous_position = position

    def state(self) -> dict[str, float]:
        return {"previous_position": self.previous_position, "velocity": self.velocity}

    def load_state(self, state: dict[str, float]) -> None:
        self.previous_position, self.velocity = state["previous_position"], state["velocity"]


class SwimmerObservation(FiniteDifferenceObservation):
    """qpos[2:] + qvel + the head tip's x velocity over the last step (0 after a reset).
    The tip is at 1.5 along the torso: x = qpos[0] + 1.5 cos(qpos[2])."""

    def __init__(self) -> None:
        super().__init__(skip=2)

    def position(self, data: Any) -> float:
        return float(data.qpos[0] + 1.5 * np.cos(data.qpos[2]))

    def __call__(self, data: Any, dt: float) -> np.ndarray:
        return np.concatenate([super().__call__(data, dt), [self.velocity]])


class PetsCheetahObservation(FiniteDifferenceObservation):
    """[(x_{t+1} - x_t)/dt, z, sin(angle), cos(angle), 6 joint angles, 9 qvel] (19)."""

    def __init__(self) -> None:
        super().__init__(skip=1)

    def position(self, data: Any) -> float:
        return float(data.qpos[0])

    def __call__(self, data: Any, dt: float) -> np.ndarray:
        q = data.qpos
        return np.concatenate([[self.velocity, q[1], np.sin(q[2]), np.cos(q[2])], q[3:9], data.qvel]).astype(np.float64)


class MBBLTask(gym.Wrapper):
    """Replaces the env's observation and reward by MBBL's and never terminates early:
    episodes end only by the 1000-step time limit (``truncated``)."""

    def __init__(self, env: gym.Env, observation: StateObservation, reward: RewardFunction,
                 reset_noise: float | None = None) -> None:
        super().__init__(env)
        self.observation = observation
        self.reward_function = reward
        self.reset_noise = reset_noise
        probe = observation(env.unwrapped.data, env.unwrapped.dt)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=probe.shape, dtype=np.float64)
        self.last_obs = probe

    def reset(self, **kwargs):
        _, info = self.env.reset(**kwargs)
        base = self.env.unwrapped
        if self.reset_noise is not None:  # PETS: N(0, sigma^2) on qpos and qvel
            rng = base.np_random
            base.set_state(base.init_qpos + rng.normal(0.0, self.reset_noise, base.model.nq),
                           base.init_qvel + rng.normal(0.0, self.reset_noise, base.model.nv))
        self.observation.reset(base.data)
        self.last_obs = self.observation(base.data, base.dt)
        return self.last_obs.copy(), info

    def step(self, action):
        _, _, terminated, truncated, info = self.env.step(action)
        if terminated:
            raise RuntimeError("a POPLIN task terminated early; its env must not terminate")
        base = self.env.unwrapped
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


def _build(name: str, env_id: str, kwargs: dict, observation: type | partial, reset_noise: float | None = None,
           **_: object) -> gym.Env:
    env = gym.make(env_id, **kwargs)
    return finish_env(MBBLTask(env, observation(), REWARDS[name], reset_noise))


def _task(name, env_id, kwargs, observation, obs_dim, act_dim, budget, paper, authors, text, reset_noise=None):
    return TaskSpec(
        suite=SUITE, name=name, env_id=env_id, obs_dim=obs_dim, act_dim=act_dim, budget=budget,
        eval_every=EVAL_EVERY, paper=paper, authors_code=HP(2, authors), can_terminate=False, description=text,
        build=partial(_build, name, env_id, kwargs, observation, reset_noise))


_NO_EARLY_END = {"terminate_when_unhealthy": False}

# ``paper`` horizons are model transitions (SVG(H), the project's counting): the H of the best
# SAC-SVG(H) row of Table 2. Table 4 prints them in the authors' code's counting (action terms,
# H + 1): 3, 3, 3, 4, 5, 5. Evidence in docs/fidelity.md ("Table 4's H").

TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    _task("ant", "Ant-v5", {"include_cfrc_ext_in_observation": False, **_NO_EARLY_END},
          partial(StateObservation, 2), 27, 8, 200_000, HP(2, S(1, -4, 0.0625)), S(1, -3, 0.5),
          "MBBL ant: qpos[2:]+qvel; r = v_x - 3(z-0.57)^2 - 0.1|a|^2 + 1"),
    _task("hopper", "Hopper-v5", _NO_EARLY_END, partial(StateObservation, 1), 11, 3, 200_000,
          HP(2, S(1, 1, None)), S(1, 0, 32), "MBBL hopper: qpos[1:]+qvel; r = v_x - 3(z-1.3)^2 - 0.1|a|^2 + 1"),
    _task("swimmer", "Swimmer-v5", {}, SwimmerObservation, 9, 2, 50_000, HP(2, S(-2, -16, 16)), S(-2, -32, 0.125),
          "MBBL swimmer: qpos[2:]+qvel+tip x velocity; r = previous tip velocity - 1e-4|a|^2"),
    _task("cheetah", "HalfCheetah-v5", {}, partial(StateObservation, 1), 17, 6, 200_000, HP(3, S(0, -4, 1)),
          S(-1, -4, 1), "MBBL cheetah: qpos[1:]+qvel; r = v_x - 0.1|a|^2"),
    _task("walker2d", "Walker2d-v5", {"xml_file": "walker2d.xml", **_NO_EARLY_END}, partial(StateObservation, 1),
          17, 6, 200_000, HP(4, S(1, 1, None)), S(-2, -16, 0.015625),
          "MBBL walker2d: qpos[1:]+qvel; r = v_x - 3(z-1.3)^2 - 0.1|a|^2 + 1"),
    _task("pets-cheetah", "HalfCheetah-v5", {}, PetsCheetahObservation, 19, 6, 50_000,
          HP(4, S(-2, -4, 0.0625)), S(0, 0, 0), "PETS cheetah: 19-d obs, reset noise N(0, 0.001^2); r = v_x' - 0.1|a|^2",
          reset_noise=0.001),
]}
