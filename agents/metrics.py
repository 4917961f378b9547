"""Update metrics kept as tensors between log intervals, and the divergence they reveal."""

from __future__ import annotations

import math

import torch


class DivergenceError(FloatingPointError):
    """A loss became NaN or infinite: the run cannot continue. Names the loss and the step."""

    def __init__(self, loss: str, value: float, step: int) -> None:
        super().__init__(loss, value, step)  # the args pickle, so it crosses process boundaries
        self.loss, self.value, self.step = loss, value, step

    def __str__(self) -> str:
        return f"{self.loss} is {self.value} at env step {self.step}"


def raise_if_not_finite(metrics: dict[str, torch.Tensor | float], step: int) -> None:
    """The plain path's check after every update: reads every metric (a host sync each)."""
    for name, value in metrics.items():
        value = float(value)
        if not math.isfinite(value):
            raise DivergenceError(name, value, step)


class MetricSums:
    """Sums and counts of update metrics since the last ``read``.

    Values may be floats or tensors on the training device; tensors are added on the
    device, so ``add`` never waits for it. For tensors the first non-finite value of every
    metric and its env step are kept on the device too (``torch.where``, no host read), so
    ``read`` (once per log interval) raises the same ``DivergenceError`` as a check after
    every update would have: the earliest step, the loss and its value.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor | float] = {}
        self.counts: dict[str, int] = {}
        self._first_bad: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name -> (step, value)

    def add(self, metrics: dict[str, torch.Tensor | float], step: int) -> None:
        for name, value in metrics.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().double()
                bad_step, bad_value = self._first_bad.get(name) or (torch.full_like(value, -1.0), torch.zeros_like(value))
                first = (bad_step < 0) & ~torch.isfinite(value)
                self._first_bad[name] = (torch.where(first, float(step), bad_step), torch.where(first, value, bad_value))
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + 1

    def check_finite(self) -> None:
        """Raise ``DivergenceError`` for the earliest non-finite metric since the last read."""
        if not self._first_bad:
            return
        names = list(self._first_bad)  # in the order the update reports them
        steps, values = (torch.stack([self._first_bad[n][i] for n in names]).tolist() for i in (0, 1))
        bad = [(step, order, name, value) for order, (name, step, value) in enumerate(zip(names, steps, values))
               if step >= 0]
        if bad:  # the earliest step; at one step, the first metric reported (as the plain path)
            step, _, name, value = min(bad)
            raise DivergenceError(name, value, int(step))

    def read(self) -> dict[str, float]:
        """Each metric's mean since the last read (one host read for all), then reset."""
        self.check_finite()
        names = list(self.sums)
        tensors = [v for v in self.sums.values() if isinstance(v, torch.Tensor)]
        if tensors:
            device = tensors[0].device
            totals = torch.stack([torch.as_tensor(self.sums[n], dtype=torch.float64, device=device)
                                  for n in names]).tolist()
        else:
            totals = [float(v) for v in self.sums.values()]
        means = {name: total / self.counts[name] for name, total in zip(names, totals)}
        self.clear()
        return means

    def clear(self) -> None:
        self.sums.clear()
        self.counts.clear()
        self._first_bad.clear()

    def state_dict(self) -> dict:
        """Plain floats (a checkpoint holds no device tensors); checks for divergence first."""
        self.check_finite()
        return {"metric_sums": {n: float(v) for n, v in self.sums.items()}, "metric_counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        self.clear()
        self.sums.update(state["metric_sums"])
        self.counts.update(state["metric_counts"])
