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


class _TensorGroup:
    """Running sums of one set of tensor metrics, reported together by every update: one
    stacked float64 vector on the device, with the first non-finite step and value of each."""

    def __init__(self, first: torch.Tensor) -> None:
        self.sum = torch.zeros_like(first)
        self.count = 0
        self.bad_step = torch.full_like(first, -1.0)
        self.bad_value = torch.zeros_like(first)

    def add(self, values: torch.Tensor, step: int) -> None:
        self.sum.add_(values)
        self.count += 1
        first = (self.bad_step < 0) & ~torch.isfinite(values)
        self.bad_step = torch.where(first, float(step), self.bad_step)
        self.bad_value = torch.where(first, values, self.bad_value)


class MetricSums:
    """Sums and counts of update metrics since the last ``read``.

    Values may be floats or tensors on the training device; tensors are added on the
    device, so ``add`` never waits for it. The tensors of one ``add`` are stacked into one
    vector and summed as one (a few kernels per update however many metrics there are).
    For tensors the first non-finite value of every metric and its env step are kept on the
    device too (``torch.where``, no host read), so ``read`` (once per log interval) raises
    the same ``DivergenceError`` as a check after every update would have: the earliest
    step, the loss and its value.
    """

    def __init__(self) -> None:
        self.order: dict[str, None] = {}  # every metric name, in the order first reported
        self.float_sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}  # of float metrics and of restored sums
        self.groups: dict[tuple[str, ...], _TensorGroup] = {}

    def add(self, metrics: dict[str, torch.Tensor | float], step: int) -> None:
        names, tensors = [], []
        for name, value in metrics.items():
            self.order.setdefault(name)
            if isinstance(value, torch.Tensor):
                names.append(name)
                tensors.append(value.detach())
            else:
                self.float_sums[name] = self.float_sums.get(name, 0.0) + value
                self.counts[name] = self.counts.get(name, 0) + 1
        if tensors:
            values = torch.stack(tensors).double()
            key = tuple(names)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = _TensorGroup(values)
            group.add(values, step)

    def check_finite(self) -> None:
        """Raise ``DivergenceError`` for the earliest non-finite metric since the last read."""
        if not self.groups:
            return
        keys = list(self.groups)
        steps = torch.cat([self.groups[k].bad_step for k in keys]).tolist()
        values = torch.cat([self.groups[k].bad_value for k in keys]).tolist()
        names = [name for k in keys for name in k]
        rank = {name: i for i, name in enumerate(self.order)}
        bad = [(step, rank[name], name, value) for name, step, value in zip(names, steps, values) if step >= 0]
        if bad:  # the earliest step; at one step, the first metric reported (as the plain path)
            step, _, name, value = min(bad)
            raise DivergenceError(name, value, int(step))

    def totals(self) -> tuple[dict[str, float], dict[str, int]]:
        """Each metric's sum and count since the last read (one host read for all tensors)."""
        sums, counts = dict(self.float_sums), dict(self.counts)
        keys = list(self.groups)
        if keys:
            stacked = torch.cat([self.groups[k].sum for k in keys]).tolist()
            for name, count, total in zip(
                (n for k in keys for n in k), (self.groups[k].count for k in keys for _ in k), stacked
            ):
                sums[name] = sums.get(name, 0.0) + total
                counts[name] = counts.get(name, 0) + count
        order = [name for name in self.order if name in sums]
        return {name: sums[name] for name in order}, {name: counts[name] for name in order}

    def read(self) -> dict[str, float]:
        """Each metric's mean since the last read (one host read for all), then reset."""
        self.check_finite()
        sums, counts = self.totals()
        self.clear()
        return {name: total / counts[name] for name, total in sums.items()}

    def clear(self) -> None:
        self.order.clear()
        self.float_sums.clear()
        self.counts.clear()
        self.groups.clear()

    def state_dict(self) -> dict:
        """Plain floats (a checkpoint holds no device tensors); checks for divergence first."""
        self.check_finite()
        sums, counts = self.totals()
        return {"metric_sums": sums, "metric_counts": counts}

    def load_state_dict(self, state: dict) -> None:
        self.clear()
        for name, total in state["metric_sums"].items():
            self.order.setdefault(name)
            self.float_sums[name] = float(total)
        self.counts.update(state["metric_counts"])
