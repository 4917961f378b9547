"""Registry of the POPLIN (MBBL) suite's reward functions, batched, named by task.

Each is ``reward(obs, action, next_obs) -> (B,)`` on arrays of shape (B, obs_dim) and
(B, act_dim), after the MBBL benchmark (Wang et al. 2019). For ant, hopper, cheetah and
walker2d the reward depends on the observation s *before* the step:

    r(s, a) = v_x(s) - c_h (z(s) - z_ref)^2 - 0.1 ||a||^2 + b
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

RewardFunction = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def locomotion_reward(
    obs: np.ndarray,
    action: np.ndarray,
    next_obs: np.ndarray,
    *,
    velocity_index: int,
    height_index: int | None,
    height_ref: float,
    height_cost: float,
    bonus: float,
) -> np.ndarray:
    """MBBL's forward-velocity reward from the pre-step observation."""
    reward = obs[:, velocity_index] - 0.1 * np.sum(action**2, axis=-1) + bonus
    if height_index is not None:
        reward = reward - height_cost * (obs[:, height_index] - height_ref) ** 2
    return reward


def swimmer_reward(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """The pre-step observation's head-tip x velocity (its last entry) - 1e-4 ||a||^2."""
    return obs[:, -1] - 1e-4 * np.sum(action**2, axis=-1)


def pets_cheetah_reward(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """HalfCheetah's own: the new observation's forward velocity - 0.1 ||a||^2."""
    return next_obs[:, 0] - 0.1 * np.sum(action**2, axis=-1)


REWARDS: dict[str, RewardFunction] = {
    "hopper": partial(locomotion_reward, velocity_index=5, height_index=0, height_ref=1.3, height_cost=3.0, bonus=1.0),
    "walker2d": partial(
        locomotion_reward, velocity_index=8, height_index=0, height_ref=1.3, height_cost=3.0, bonus=1.0
    ),
    "cheetah": partial(
        locomotion_reward, velocity_index=8, height_index=None, height_ref=0.0, height_cost=0.0, bonus=0.0
    ),
    "ant": partial(locomotion_reward, velocity_index=13, height_index=0, height_ref=0.57, height_cost=3.0, bonus=1.0),
    "swimmer": swimmer_reward,
    "pets-cheetah": pets_cheetah_reward,
}
