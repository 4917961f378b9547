"""Running observation normalisation, unbiased from the first sample."""

from __future__ import annotations

import numpy as np
import torch

from agents.transfer import to_device


def normalized(obs: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std: the normalisation, given its statistics (also inside a compiled update)."""
    return (obs - mean) / std


class RunningNormalizer:
    """Running mean and standard deviation of every observed state (Chan et al. parallel
    update of Welford's algorithm). The mean after one sample is that sample; the variance
    is the population variance of all samples so far (0 after one sample). The std used
    for normalising is clamped to [std_min, std_max] so near-constant dimensions stay finite.
    """

    def __init__(self, dim: int, std_min: float = 0.1, std_max: float = 10.0) -> None:
        self.count = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.sum_squared_deviation = np.zeros(dim, dtype=np.float64)
        self.std_min, self.std_max = std_min, std_max
        self._tensors: dict[tuple, tuple[torch.Tensor, ...]] = {}  # (device, dtype) -> mean, std
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None  # float32 mean, std for normalize_array

    def update(self, batch: np.ndarray) -> None:
        """batch: (N, dim) or (dim,) of raw observations."""
        batch = np.asarray(batch, dtype=np.float64).reshape(-1, self.mean.shape[0])
        n = batch.shape[0]
        total = self.count + n
        if n == 1:  # one state (every env step): the same formulas with the batch's mean x, M2 0
            delta = batch[0] - self.mean
            self.mean = self.mean + delta * n / total
            self.sum_squared_deviation = self.sum_squared_deviation + delta**2 * self.count * n / total
        else:
            batch_mean = batch.mean(axis=0)
            batch_m2 = ((batch - batch_mean) ** 2).sum(axis=0)
            delta = batch_mean - self.mean
            self.mean = self.mean + delta * n / total
            self.sum_squared_deviation = self.sum_squared_deviation + batch_m2 + delta**2 * self.count * n / total
        self.count = total
        self._tensors.clear()
        self._arrays = None

    @property
    def std(self) -> np.ndarray:
        variance = self.sum_squared_deviation / max(self.count, 1)
        return np.clip(np.sqrt(variance), self.std_min, self.std_max)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std, on obs's device and dtype; identity before any sample."""
        if self.count == 0:
            return obs
        return normalized(obs, *self.tensors(obs.device, obs.dtype))

    def tensors(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """The mean and the clamped std that ``normalize`` uses, as tensors on ``device``
        (0 and 1 before any sample, which ``normalized`` maps to the identity)."""
        key = (device, dtype)
        if key not in self._tensors:  # copied to the device once per update (without a sync), not per call
            mean, std = (self.mean, self.std) if self.count else (np.zeros_like(self.mean), np.ones_like(self.mean))
            self._tensors[key] = tuple(to_device(x, device, np.float64).to(dtype) for x in (mean, std))
        return self._tensors[key]

    def normalize_array(self, obs: np.ndarray) -> np.ndarray:
        """``normalize`` for a host array: float32 (x - mean) / std with the mean and std
        rounded to float32 as ``normalize`` rounds them, so the result is the same bits."""
        x = np.asarray(obs, dtype=np.float32)
        if self.count == 0:
            return x
        if self._arrays is None:
            self._arrays = (self.mean.astype(np.float32), self.std.astype(np.float32))
        mean, std = self._arrays
        return (x - mean) / std

    def state_dict(self) -> dict:
        return {
            "count": self.count,
            "mean": torch.from_numpy(self.mean.copy()),
            "sum_squared_deviation": torch.from_numpy(self.sum_squared_deviation.copy()),
        }

    def load_state_dict(self, state: dict) -> None:
        self.count = int(state["count"])
        self.mean = state["mean"].numpy().astype(np.float64)
        self.sum_squared_deviation = state["sum_squared_deviation"].numpy().astype(np.float64)
        self._tensors.clear()
        self._arrays = None
