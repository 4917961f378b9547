"""One torch random stream per seed of a batch: the noise a lone agent draws from torch's
global generator, drawn by each seed from a generator of its own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class SeedNoise:
    """S generators on ``device``, one per seed. A draw of shape ``shape`` gives (S, *shape):
    seed s's slice is what ``torch.randn(shape)`` (or ``randint``) returns from torch's global
    generator in the state of seed s's generator. So a seed whose generator starts where a
    lone run's global generator stands after building its agent, and which draws the same
    shapes in the same order, draws that lone run's noise."""

    def __init__(self, seeds: int, device: torch.device) -> None:
        self.device = device
        self.generators = [torch.Generator(device=device) for _ in range(seeds)]

    def __len__(self) -> int:
        return len(self.generators)

    def normal(self, *shape: int) -> torch.Tensor:
        """Standard normal noise, (S, *shape)."""
        return torch.stack([torch.randn(shape, generator=g, device=self.device) for g in self.generators])

    def integers(self, high: int, *shape: int) -> torch.Tensor:
        """Uniform integers in [0, high), (S, *shape), int64."""
        return torch.stack([torch.randint(0, high, shape, generator=g, device=self.device) for g in self.generators])

    def state(self, seed: int) -> torch.Tensor:
        """Seed ``seed``'s generator state (a ByteTensor, as ``torch.get_rng_state`` gives)."""
        return self.generators[seed].get_state()

    def set_state(self, seed: int, state: torch.Tensor) -> None:
        self.generators[seed].set_state(state)

    @contextlib.contextmanager
    def as_global(self, seed: int) -> Iterator[None]:
        """Within the block torch's global generator of this device is seed ``seed``'s
        stream (lone code that draws from it draws the seed's noise); afterwards the seed's
        generator has advanced by those draws and the global generator is as it was."""
        cuda = self.device.type == "cuda"
        get = (lambda: torch.cuda.get_rng_state(self.device)) if cuda else torch.get_rng_state
        put = (lambda state: torch.cuda.set_rng_state(state, self.device)) if cuda else torch.set_rng_state
        saved = get()
        put(self.state(seed))
        try:
            yield
        finally:
            self.set_state(seed, get())
            put(saved)
