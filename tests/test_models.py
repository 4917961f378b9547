"""Normaliser and dynamics model."""

from __future__ import annotations

import numpy as np
import torch

from agents import objectives as eq
from agents.dynamics import GRUDynamics
from agents.normalizer import RunningNormalizer


def test_normalizer_is_unbiased_from_the_first_sample():
    normalizer = RunningNormalizer(2)
    normalizer.update(np.array([3.0, -1.0]))
    np.testing.assert_allclose(normalizer.mean, [3.0, -1.0])
    samples = np.random.default_rng(0).normal(5.0, 2.0, size=(500, 2))
    for row in samples[:200]:
        normalizer.update(row)
    normalizer.update(samples[200:])
    everything = np.vstack([[3.0, -1.0], samples])
    np.testing.assert_allclose(normalizer.mean, everything.mean(axis=0))
    np.testing.assert_allclose(normalizer.std, everything.std(axis=0))
    normalized = normalizer.normalize(torch.tensor(everything, dtype=torch.float64))
    np.testing.assert_allclose(normalized.mean(0).numpy(), [0, 0], atol=1e-9)


def test_normalizer_clamps_the_std_of_constant_dimensions():
    normalizer = RunningNormalizer(1, std_min=0.1, std_max=10.0)
    normalizer.update(np.ones((10, 1)))
    assert normalizer.std[0] == 0.1


def test_dynamics_loss_falls_on_a_known_linear_system():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    A = np.array([[0.9, 0.2], [-0.1, 0.8]])
    B = np.array([[0.5], [0.3]])
    horizon = 3

    def sequences(n):
        x = rng.normal(size=(n, 2))
        u = rng.uniform(-1, 1, size=(n, horizon, 1))
        states = [x]
        for t in range(horizon):
            x = x @ A.T + u[:, t] @ B.T
            states.append(x)
        return torch.tensor(np.stack(states, 1), dtype=torch.float32), torch.tensor(u, dtype=torch.float32)

    model = GRUDynamics(2, 1, hidden_dim=32, hidden_depth=2, gru_hidden_dim=32, gru_layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    test_states, test_actions = sequences(256)

    def test_loss():
        with torch.no_grad():
            return eq.multi_step_dynamics_loss(model.unroll(test_states[:, 0], test_actions), test_states[:, 1:]).item()

    before = test_loss()
    for _ in range(300):
        states, actions = sequences(64)
        loss = eq.multi_step_dynamics_loss(model.unroll(states[:, 0], actions), states[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = test_loss()
    assert after < 0.1 * before, (before, after)


def test_detached_rollout_predicts_the_same_states():
    torch.manual_seed(0)
    model = GRUDynamics(3, 2, 8, 1, 8, 2)
    x, u = torch.randn(5, 3), torch.randn(5, 4, 2)
    attached = model.unroll(x, u)
    model.detach_predicted_state = True
    torch.testing.assert_close(model.unroll(x, u), attached)
