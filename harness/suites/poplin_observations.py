"""The POPLIN (MBBL) tasks' observations, built from the simulator state: qpos and qvel, and
for swimmer and pets-cheetah a position's velocity by finite differences over one step.
Used by the suite's task table (``harness.suites.poplin``) and its env wrapper
(``harness.suites.poplin_env``); imports neither gymnasium nor MuJoCo."""

from __future__ import annotations

from typing import Any

import numpy as np


class StateObservation:
    """qpos[skip:] followed by qvel, straight from the simulator."""

    def __init__(self, skip: int) -> None:
        self.skip = skip

    def reset(self, data: Any) -> None:
        pass

    def advance(self, data: Any, dt: float) -> None:
        """Called once after every env step, before the observation is read."""

    def __call__(self, data: Any, dt: float) -> np.ndarray:
        return np.concatenate([data.qpos[self.skip :], data.qvel]).astype(np.float64)

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
