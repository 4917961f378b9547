"""Each seed's replay buffer and observation normaliser, kept side by side for a batch of
seeds: the buffers' slots in one stacked storage (S, capacity, ...), so a batch of every
seed's transitions is one gather."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.normalizer import RunningNormalizer
from agents.replay import Array, NoSequenceError, ReplayBuffer, SequenceBatch, TransitionBatch
from agents.transfer import to_device


class StackedReplay:
    """S ring buffers written in step: every env step adds one transition to each, so all
    share the write position and size. ``seed_buffer(s)`` is seed s's ``ReplayBuffer`` over
    its rows of the storage (no copy): its sampling logic, state dict and sequence queries
    are the lone buffer's. Sampling draws each seed's slots from that seed's generator, as a
    lone agent does, and gathers all seeds' at once: (S, B, ...)."""

    def __init__(
        self, seeds: int, obs_dim: int, act_dim: int, capacity: int, device: torch.device | str | None = None
    ) -> None:
        self.seeds, self.capacity = seeds, capacity
        self.device = None if device is None else torch.device(device)

        def zeros(*shape: int) -> Any:  # a NumPy array, or a tensor on ``device``: indexed alike
            if self.device is None:
                return np.zeros(shape, dtype=np.float32)
            return torch.zeros(shape, dtype=torch.float32, device=self.device)

        self.storage: dict[str, Any] = {  # NumPy arrays, or tensors on the device (zeros)
            "obs": zeros(seeds, capacity, obs_dim),
            "next_obs": zeros(seeds, capacity, obs_dim),
            "action": zeros(seeds, capacity, act_dim),
            "reward": zeros(seeds, capacity),
            "terminated": zeros(seeds, capacity),
            "episode_end": np.zeros((seeds, capacity), dtype=bool),
        }
        self.buffers = [
            ReplayBuffer(
                obs_dim, act_dim, capacity, device, storage={name: array[s] for name, array in self.storage.items()}
            )
            for s in range(seeds)
        ]
        self._seed_index: Array = np.arange(seeds)[:, None]
        if self.device is not None:
            self._seed_index = torch.arange(seeds, device=self.device)[:, None]

    def __len__(self) -> int:
        return len(self.buffers[0])

    def seed_buffer(self, seed: int) -> ReplayBuffer:
        return self.buffers[seed]

    def select(self, keep: list[int]) -> StackedReplay:
        """The buffers of the seeds ``keep`` alone, in that order (copies)."""
        first = self.buffers[0]
        kept = StackedReplay(len(keep), first.obs.shape[1], first.action.shape[1], self.capacity, self.device)
        for new, old in enumerate(keep):
            kept.buffers[new].load_state_dict(self.buffers[old].state_dict())
        return kept

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """One transition of every seed: obs, next_obs (S, D); action (S, A); the rest (S,)."""
        first = self.buffers[0]
        i = first.position
        values = {
            "obs": obs,
            "action": action,
            "reward": reward,
            "next_obs": next_obs,
            "terminated": np.asarray(terminated, dtype=np.float32),
        }
        for name, value in values.items():
            self.storage[name][:, i] = value if self.device is None else to_device(value, self.device)
        self.storage["episode_end"][:, i] = np.logical_or(terminated, truncated)
        position, size = (i + 1) % self.capacity, min(first.size + 1, self.capacity)
        for buffer in self.buffers:
            buffer.position, buffer.size = position, size

    def sample(self, batch_size: int, rngs: list[np.random.Generator]) -> TransitionBatch:
        """Each seed's ``ReplayBuffer.sample`` (the same slots from the same generator), (S, B, ...)."""
        slots = np.stack([buffer.sample_indices(batch_size, rng) for buffer, rng in zip(self.buffers, rngs)])
        index = self._on_device(slots)
        gathered = [
            self.storage[name][self._seed_index, index]
            for name in ("obs", "action", "reward", "next_obs", "terminated")
        ]
        return TransitionBatch(*gathered)

    def sample_sequences(
        self, batch_size: int, length: int, rngs: list[np.random.Generator]
    ) -> tuple[SequenceBatch, np.ndarray]:
        """Each seed's ``ReplayBuffer.sample_sequences``: states (S, B, length+1, D), actions
        (S, B, length, A), and which seeds have them (S,) bool. A seed with no stored sequence
        yet (``NoSequenceError`` alone) gets zeros: its update must be skipped."""
        starts = np.zeros((self.seeds, batch_size), dtype=np.int64)
        present = np.ones(self.seeds, dtype=bool)
        for s, (buffer, rng) in enumerate(zip(self.buffers, rngs)):
            try:
                starts[s] = buffer.sample_sequence_starts(batch_size, length, rng)
            except NoSequenceError:
                present[s] = False
        steps = self._on_device((starts[:, :, None] + np.arange(length)) % self.capacity)  # (S, B, length)
        seeds = self._seed_index[:, :, None]
        first, rest = self.storage["obs"][seeds, steps[:, :, :1]], self.storage["next_obs"][seeds, steps]
        states = np.concatenate([first, rest], axis=2) if self.device is None else torch.cat([first, rest], dim=2)
        actions = self.storage["action"][seeds, steps]
        if not present.all():
            missing = self._on_device(np.flatnonzero(~present))
            states[missing] = 0
            actions[missing] = 0
        return SequenceBatch(states=states, actions=actions), present

    def _on_device(self, indices: np.ndarray) -> np.ndarray | torch.Tensor:
        return indices if self.device is None else to_device(indices, self.device, np.int64)


class StackedNormalizer:
    """Each seed's ``RunningNormalizer``; ``normalize`` applies every seed's to its own rows
    with the float32 mean and std a lone normaliser uses (the same bits)."""

    def __init__(self, seeds: int, dim: int, std_min: float, std_max: float) -> None:
        self.normalizers = [RunningNormalizer(dim, std_min, std_max) for _ in range(seeds)]
        self._tensors: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def update(self, obs: np.ndarray) -> None:
        """obs: (S, D), one raw state per seed."""
        for normalizer, row in zip(self.normalizers, obs):
            normalizer.update(row)
        self._tensors.clear()

    def changed(self) -> None:
        """Forget the stacked mean and std (after a seed's normaliser was loaded)."""
        self._tensors.clear()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """x: (S, ..., D) raw -> (x - mean_s) / std_s for each seed s (identity for a seed
        with no sample yet, as a lone normaliser)."""
        key = (x.device, x.dtype)
        if key not in self._tensors:
            means = np.stack([n.mean if n.count else np.zeros_like(n.mean) for n in self.normalizers])
            stds = np.stack([n.std if n.count else np.ones_like(n.mean) for n in self.normalizers])
            self._tensors[key] = (
                to_device(means, x.device, np.float64).to(x.dtype),
                to_device(stds, x.device, np.float64).to(x.dtype),
            )
        mean, std = self._tensors[key]
        shape = (mean.shape[0],) + (1,) * (x.dim() - 2) + (mean.shape[1],)
        return (x - mean.view(shape)) / std.view(shape)
