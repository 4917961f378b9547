"""Ring replay buffer of raw transitions, with single-step and sequence sampling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import torch

from agents.transfer import to_device

Array: TypeAlias = "np.ndarray | torch.Tensor"


@dataclass
class TransitionBatch:
    """Single-step transitions (x, u, r, x', d). obs/next_obs: (B, D); action: (B, A);
    reward, terminated: (B,). ``terminated`` is 1 only for real terminations. NumPy arrays,
    or tensors on the buffer's device when it stores there."""

    obs: Array
    action: Array
    reward: Array
    next_obs: Array
    terminated: Array


@dataclass
class SequenceBatch:
    """H-transition sequences from one episode: states (B, H+1, D), actions (B, H, A)."""

    states: Array
    actions: Array


class NoSequenceError(ValueError):
    """No stored sequence of the asked length lies inside one episode yet."""


class ReplayBuffer:
    """Stores raw transitions in a ring of ``capacity`` slots.

    ``episode_end`` marks the last transition of an episode (terminated or truncated); no
    sampled sequence continues past such a transition, and none
    runs across the write position once the ring has wrapped.

    ``device`` (the fast path's ``replay_on_device``): the transitions are stored as tensors
    on that device and batches are gathered there. Indices are still drawn on the host with
    the same NumPy stream from the small ``episode_end`` flags kept there, so a batch holds
    the same transitions as without ``device``, and sampling never waits for the device.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        capacity: int,
        device: torch.device | str | None = None,
        storage: dict[str, np.ndarray | torch.Tensor] | None = None,
    ) -> None:
        self.capacity = capacity
        self.device = None if device is None else torch.device(device)
        if storage is not None:  # slots that live elsewhere: one seed's rows of a seed-stacked storage
            for name in self.ARRAYS:
                setattr(self, name, storage[name])
        else:

            def zeros(*shape: int) -> Any:  # a NumPy array, or a tensor on ``device``: indexed alike
                if self.device is None:
                    return np.zeros(shape, dtype=np.float32)
                return torch.zeros(shape, dtype=torch.float32, device=self.device)

            self.obs = zeros(capacity, obs_dim)
            self.next_obs = zeros(capacity, obs_dim)
            self.action = zeros(capacity, act_dim)
            self.reward = zeros(capacity)
            self.terminated = zeros(capacity)
            self.episode_end = np.zeros(capacity, dtype=bool)
        self.position = 0  # next slot to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminated: bool,
        truncated: bool,
    ) -> None:
        i = self.position
        row: tuple[Array, ...] = (obs, action, next_obs)
        if self.device is not None:
            row = tuple(to_device(x, self.device) for x in (obs, action, next_obs))
        self.obs[i], self.action[i], self.next_obs[i] = row
        self.reward[i] = reward
        self.terminated[i] = float(terminated)
        self.episode_end[i] = bool(terminated or truncated)
        self.position = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> TransitionBatch:
        """Uniform single-step transitions."""
        return self.batch_at(self.sample_indices(batch_size, rng))

    def batch_at(self, indices: np.ndarray) -> TransitionBatch:
        """The transitions in the slots ``indices`` (B,)."""
        idx = self._on_device(indices)
        return TransitionBatch(
            self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx], self.terminated[idx]
        )

    def stored_tensors(self) -> tuple[torch.Tensor, ...] | None:
        """The storage of (obs, action, reward, next_obs, terminated), every slot, when it is
        tensors on ``device`` (for a compiled update to gather its batch itself); else None."""
        if self.device is None:
            return None
        return (self.obs, self.action, self.reward, self.next_obs, self.terminated)

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """The slots ``sample`` gathers: uniform over the stored transitions, (batch_size,)."""
        return rng.integers(0, self.size, size=batch_size)

    def _on_device(self, indices: np.ndarray) -> np.ndarray | torch.Tensor:
        """Host-drawn indices for gathering from the storage (copied without a sync to CUDA)."""
        if self.device is None:
            return indices
        return to_device(indices, self.device, np.int64)

    def _oldest(self) -> int:
        return self.position if self.size == self.capacity else 0

    def is_valid_sequence_start(self, starts: np.ndarray, length: int) -> np.ndarray:
        """Whether ``length`` transitions from each start are stored, consecutive in time
        and inside one episode (only the last of them may end the episode)."""
        chronological = (starts - self._oldest()) % self.capacity
        stored = chronological + length <= self.size
        if length > 1:
            steps = (starts[:, None] + np.arange(length - 1)[None, :]) % self.capacity
            crosses_end = self.episode_end[steps].any(axis=1)
        else:
            crosses_end = np.zeros_like(stored)
        return stored & ~crosses_end

    def valid_sequence_starts(self, length: int) -> np.ndarray:
        """Every valid start index for sequences of ``length`` transitions (exact, O(size))."""
        candidates = (self._oldest() + np.arange(self.size)) % self.capacity
        return candidates[self.is_valid_sequence_start(candidates, length)]

    def sample_sequences(self, batch_size: int, length: int, rng: np.random.Generator) -> SequenceBatch:
        """Sequences of ``length`` transitions, uniform over all valid starts."""
        return self.sequences_at(self.sample_sequence_starts(batch_size, length, rng), length)

    def sample_sequence_starts(self, batch_size: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """The start slots ``sample_sequences`` reads, (batch_size,); ``NoSequenceError`` if none.

        Rejection sampling: a uniform position is kept if it is a valid start, which is
        uniform over valid starts; after a few rounds the exact set is used.
        """
        chosen = np.empty(0, dtype=np.int64)
        for _ in range(8):
            candidates = (self._oldest() + rng.integers(0, self.size, size=2 * batch_size)) % self.capacity
            chosen = np.concatenate([chosen, candidates[self.is_valid_sequence_start(candidates, length)]])
            if chosen.size >= batch_size:
                break
        if chosen.size < batch_size:
            valid = self.valid_sequence_starts(length)
            if valid.size == 0:
                raise NoSequenceError(f"no stored sequence of {length} transitions within one episode yet")
            chosen = np.concatenate([chosen, rng.choice(valid, size=batch_size - chosen.size)])
        return chosen[:batch_size]

    def sequences_at(self, starts: np.ndarray, length: int) -> SequenceBatch:
        """The ``length``-transition sequences beginning at the slots ``starts`` (B,)."""
        steps = self._on_device((starts[:, None] + np.arange(length)[None, :]) % self.capacity)  # (B, H)
        states: Array
        if self.device is None:
            states = np.concatenate([self.obs[steps[:, :1]], self.next_obs[steps]], axis=1)
        else:
            states = torch.cat([self.obs[steps[:, :1]], self.next_obs[steps]], dim=1)
        return SequenceBatch(states=states, actions=self.action[steps])

    ARRAYS = ("obs", "next_obs", "action", "reward", "terminated", "episode_end")

    def state_dict(self) -> dict:
        """The stored slots as they lie in the ring, so a reload samples exactly as before.
        The tensors share the buffer's memory (no copy of a buffer that can hold 1M
        transitions): save them before the buffer changes."""
        state: dict[str, torch.Tensor | int] = {
            name: torch.as_tensor(getattr(self, name)[: self.size]).cpu() for name in self.ARRAYS
        }
        state.update(position=self.position, size=self.size)
        return state

    def load_state_dict(self, state: dict) -> None:
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"checkpoint holds {size} transitions, more than the capacity {self.capacity}")
        for name in self.ARRAYS:
            array = getattr(self, name)
            array[:size] = state[name].numpy() if isinstance(array, np.ndarray) else state[name]
        self.size, self.position = size, int(state["position"])
