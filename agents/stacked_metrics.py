"""Update metrics of a batch of seeds, kept per seed between each seed's log intervals, and
the divergence of a seed they reveal: ``agents.metrics.MetricSums`` for every seed at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from agents.metrics import DivergenceError


@dataclass
class SeedMetrics:
    """Update metrics of a batch: each value (S,) (one per seed) or a float (every seed's),
    reported by the seeds where ``seeds`` (S,) is true (by all when None)."""

    values: Mapping[str, torch.Tensor | float]
    seeds: np.ndarray | None = None


class _SeedGroup:
    """Running sums of one set of tensor metrics, (metrics, seeds) on the device, with each
    seed's count and the first non-finite step and value of each (metric, seed)."""

    def __init__(self, first: torch.Tensor) -> None:
        self.sum = torch.zeros_like(first)
        self.count = np.zeros(first.shape[1], dtype=np.int64)
        self.bad_step = torch.full_like(first, -1.0)
        self.bad_value = torch.zeros_like(first)

    def add(self, values: torch.Tensor, step: int, seeds: np.ndarray | None) -> None:
        first = (self.bad_step < 0) & ~torch.isfinite(values)
        if seeds is None:
            self.sum.add_(values)
            self.count += 1
        else:
            reporting = torch.as_tensor(seeds, device=values.device).unsqueeze(0)
            self.sum.add_(torch.where(reporting, values, 0.0))
            self.count[seeds] += 1
            first &= reporting
        self.bad_step = torch.where(first, float(step), self.bad_step)
        self.bad_value = torch.where(first, values, self.bad_value)

    def clear(self, seed: int) -> None:
        self.sum[:, seed] = 0.0
        self.count[seed] = 0
        self.bad_step[:, seed] = -1.0
        self.bad_value[:, seed] = 0.0


class StackedMetricSums:
    """Each seed's ``MetricSums``: sums and counts since that seed's last ``read``, the same
    means, the same ``DivergenceError`` (earliest step, then the first metric reported) and
    the same state dict as a lone run's. ``add`` stacks a batch's metrics into one (metrics,
    seeds) tensor per set, so it costs a few kernels per update however many seeds."""

    def __init__(self, seeds: int) -> None:
        self.seeds = seeds
        self.order: list[dict[str, None]] = [{} for _ in range(seeds)]  # each seed's names, first reported first
        self.float_sums: dict[str, np.ndarray] = {}
        self.float_counts: dict[str, np.ndarray] = {}
        self.groups: dict[tuple[str, ...], _SeedGroup] = {}

    def add(self, parts: list[SeedMetrics], step: int) -> None:
        for part in parts:
            seeds = None if part.seeds is None or part.seeds.all() else part.seeds
            if seeds is not None and not seeds.any():
                continue
            for s in range(self.seeds) if seeds is None else np.flatnonzero(seeds):
                for name in part.values:
                    self.order[s].setdefault(name)
            names, tensors = [], []
            for name, value in part.values.items():
                if isinstance(value, torch.Tensor):
                    names.append(name)
                    tensors.append(value.detach())
                else:
                    total = self.float_sums.setdefault(name, np.zeros(self.seeds))
                    count = self.float_counts.setdefault(name, np.zeros(self.seeds, dtype=np.int64))
                    reporting = slice(None) if seeds is None else seeds
                    total[reporting] += value
                    count[reporting] += 1
            if tensors:
                values = torch.stack(tensors).double()
                key = tuple(names)
                group = self.groups.get(key)
                if group is None:
                    group = self.groups[key] = _SeedGroup(values)
                group.add(values, step, seeds)

    def _bad(self) -> list[tuple[str, list[float], list[float]]]:
        """(name, first bad step per seed, its value per seed) of every tensor metric: one host read."""
        keys = list(self.groups)
        if not keys:
            return []
        steps = torch.cat([self.groups[k].bad_step for k in keys]).tolist()
        values = torch.cat([self.groups[k].bad_value for k in keys]).tolist()
        return list(zip((name for k in keys for name in k), steps, values))

    def _divergence(self, seed: int, bad: list[tuple[str, list[float], list[float]]]) -> DivergenceError | None:
        rank = {name: i for i, name in enumerate(self.order[seed])}
        found = [
            (steps[seed], rank[name], name, values[seed])
            for name, steps, values in bad
            if steps[seed] >= 0 and name in rank
        ]
        if not found:
            return None
        step, _, name, value = min(found)
        return DivergenceError(name, value, int(step))

    def check_finite(self, seed: int) -> None:
        """Raise seed ``seed``'s ``DivergenceError`` for its earliest non-finite metric."""
        error = self._divergence(seed, self._bad())
        if error is not None:
            raise error

    def diverged(self) -> dict[int, DivergenceError]:
        """Every seed with a non-finite metric since its last read, with its error."""
        bad = self._bad()
        errors = {seed: self._divergence(seed, bad) for seed in range(self.seeds)}
        return {seed: error for seed, error in errors.items() if error is not None}

    def totals(self, seed: int) -> tuple[dict[str, float], dict[str, int]]:
        """Seed ``seed``'s sum and count of each metric since its last read."""
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for name, total in self.float_sums.items():
            if self.float_counts[name][seed] > 0:
                sums[name], counts[name] = float(total[seed]), int(self.float_counts[name][seed])
        keys = [k for k in self.groups if self.groups[k].count[seed] > 0]
        if keys:
            column = torch.cat([self.groups[k].sum[:, seed] for k in keys]).tolist()
            pairs = ((name, int(self.groups[k].count[seed])) for k in keys for name in k)
            for (name, count), total in zip(pairs, column):
                sums[name] = sums.get(name, 0.0) + total
                counts[name] = counts.get(name, 0) + count
        order = [name for name in self.order[seed] if name in sums]
        return {name: sums[name] for name in order}, {name: counts[name] for name in order}

    def read(self, seed: int) -> dict[str, float]:
        """Seed ``seed``'s mean of each metric since its last read, then reset that seed."""
        self.check_finite(seed)
        sums, counts = self.totals(seed)
        self.clear(seed)
        return {name: total / counts[name] for name, total in sums.items()}

    def clear(self, seed: int) -> None:
        self.order[seed].clear()
        for name in self.float_sums:
            self.float_sums[name][seed] = 0.0
            self.float_counts[name][seed] = 0
        for group in self.groups.values():
            group.clear(seed)

    def state_dict(self, seed: int) -> dict:
        """Seed ``seed``'s sums as ``MetricSums.state_dict`` gives them (checks for divergence first)."""
        self.check_finite(seed)
        sums, counts = self.totals(seed)
        return {"metric_sums": sums, "metric_counts": counts}

    def load_state_dict(self, seed: int, state: dict) -> None:
        self.clear(seed)
        for name, total in state["metric_sums"].items():
            self.order[seed].setdefault(name)
            self.float_sums.setdefault(name, np.zeros(self.seeds))[seed] = float(total)
            self.float_counts.setdefault(name, np.zeros(self.seeds, dtype=np.int64))[seed] = int(
                state["metric_counts"][name]
            )

    def select(self, keep: list[int]) -> StackedMetricSums:
        """The sums of the seeds ``keep`` alone, in that order (none of them diverged)."""
        kept = StackedMetricSums(len(keep))
        for new, old in enumerate(keep):
            kept.load_state_dict(new, self.state_dict(old))
        return kept

    def of_seed(self, seed: int) -> SeedMetricSums:
        return SeedMetricSums(self, seed)


class SeedMetricSums:
    """One seed's sums of a ``StackedMetricSums``, with ``MetricSums``'s interface for
    reading, checking and checkpointing them."""

    def __init__(self, sums: StackedMetricSums, seed: int) -> None:
        self.sums, self.seed = sums, seed

    def read(self) -> dict[str, float]:
        return self.sums.read(self.seed)

    def check_finite(self) -> None:
        self.sums.check_finite(self.seed)

    def state_dict(self) -> dict:
        return self.sums.state_dict(self.seed)

    def load_state_dict(self, state: dict) -> None:
        self.sums.load_state_dict(self.seed, state)
