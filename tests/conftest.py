"""Shared fixtures: a tiny configuration so end-to-end runs take seconds on a CPU."""

from __future__ import annotations

import os

import pytest
import torch

from tests.postgres import postgres_url  # noqa: F401  (fixtures shared by test modules)
from tests.slurm_cluster import slurm_cluster  # noqa: F401

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "disabled")
# Tiny networks gain nothing from threads, and OpenMP threads spinning against busy cores
# slow a small update down by orders of magnitude.
torch.set_num_threads(1)

TINY = [
    "agent.hidden_dim=16",
    "agent.model_hidden_dim=16",
    "agent.gru_hidden_dim=16",
    "agent.step_batch_size=16",
    "agent.seq_batch_size=16",
    "trainer.seed_steps=100",
    "trainer.eval_every=100",
    "trainer.eval_episodes=2",
]


# SAC builds no world model: model sizes would only draw a warning that they change nothing
TINY_SAC = [o for o in TINY if not o.startswith(("agent.model_", "agent.gru_", "agent.seq_"))]


def tiny_for(agent: str) -> list[str]:
    """The tiny overrides that apply to ``agent``."""
    return list(TINY_SAC if agent == "sac" else TINY)


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)
