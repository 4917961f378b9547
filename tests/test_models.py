"""Normaliser and dynamics model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from agents import objectives as eq
from agents.dynamics import GRUDynamics, MLPEnsembleDynamics, clip_summed_loss_gradient
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


@pytest.mark.parametrize("norm_of_w, mean_gradient_norm, clipped", [(1.0, 0.5, False), (4.0, 2.0, True)])
def test_summed_dynamics_loss_is_clipped_where_the_mean_loss_would_be(norm_of_w, mean_gradient_norm, clipped):
    """Predictions w (D = 4) at every one of T = 3 steps, targets 0: eq. (10)'s sum is
    T |w|^2 with gradient 2 T w (norm 6 |w|); the mean over T x D is |w|^2 / D with gradient
    2 w / D (norm |w| / 2). The threshold is 1.0 x T x D = 12."""
    steps, dims = 3, 4
    w = nn.Parameter(torch.full((dims,), norm_of_w / 2))  # |w| = norm_of_w
    eq.multi_step_dynamics_loss(w.expand(5, steps, dims), torch.zeros(5, steps, dims)).backward()
    assert w.grad.norm().item() == pytest.approx(2 * steps * norm_of_w)
    norm, was_clipped = clip_summed_loss_gradient([w], 1.0, steps * dims)
    assert float(norm) == pytest.approx(2 * steps * norm_of_w) and bool(was_clipped) == clipped
    mean_w = nn.Parameter(w.detach().clone())
    F.mse_loss(mean_w.expand(5, steps, dims), torch.zeros(5, steps, dims)).backward()
    assert mean_w.grad.norm().item() == pytest.approx(mean_gradient_norm)
    nn.utils.clip_grad_norm_([mean_w], 1.0)
    torch.testing.assert_close(w.grad, steps * dims * mean_w.grad)  # 12 w/|w| when clipped, 6 w if not
    assert w.grad.norm().item() == pytest.approx(12.0 if clipped else 6 * norm_of_w)


def test_clip_zero_disables_and_still_reports_the_norm():
    w = nn.Parameter(torch.full((4,), 2.0))
    eq.multi_step_dynamics_loss(w.expand(2, 3, 4), torch.zeros(2, 3, 4)).backward()
    before = w.grad.clone()
    norm, clipped = clip_summed_loss_gradient([w], 0.0, 12)
    assert float(norm) == pytest.approx(before.norm().item()) and not bool(clipped)
    torch.testing.assert_close(w.grad, before)


@pytest.mark.parametrize("target_offset", [0.01, 30.0])
def test_gru_clip_matches_torch_clipping_of_the_mean_loss(target_offset):
    """The GRU's clipped gradient of eq. (10) is T x D times torch's clip at 1.0 of the
    gradient of F.mse_loss (the authors' reduction), clipped or not. Targets are the
    model's own predictions shifted by ``target_offset``: a small or a large error."""
    torch.manual_seed(0)
    model = GRUDynamics(3, 2, 8, 1, 8, 2)
    mean_model = copy.deepcopy(model)
    states, actions = torch.randn(6, 4, 3), torch.randn(6, 3, 2)
    with torch.no_grad():
        states[:, 1:] = model.unroll(states[:, 0], actions) + target_offset
    model.training_loss(states, actions).backward()
    norms, clipped_flags = model.clip_gradient(1.0, 3)
    norm, clipped = float(norms.item()), bool(clipped_flags.item())
    F.mse_loss(mean_model.unroll(states[:, 0], actions), states[:, 1:]).backward()
    mean_norm = nn.utils.clip_grad_norm_(mean_model.parameters(), 1.0).item()
    assert norm == pytest.approx(3 * 3 * mean_norm, rel=1e-5)
    assert clipped == (mean_norm > 1.0) == (target_offset > 1)
    for summed, mean in zip(model.parameters(), mean_model.parameters()):
        torch.testing.assert_close(summed.grad, 3 * 3 * mean.grad, rtol=1e-4, atol=1e-6)


def test_ensemble_members_are_clipped_each_at_its_own_threshold():
    """Each member's threshold is 1.0 x D (T = 1); member 0 is driven past it, the others not."""
    torch.manual_seed(0)
    ensemble = MLPEnsembleDynamics(3, 1, 8, 1, members=3)
    states, actions = torch.randn(3 * 4, 2, 3) * 0.01, torch.zeros(3 * 4, 1, 1)
    states[:4, 1] += 100.0  # member 0's slice
    ensemble.training_loss(states, actions).backward()

    def member_norm(e):
        return torch.cat([p.grad[e].flatten() for p in ensemble.parameters()]).norm().item()

    alone = [member_norm(e) for e in range(3)]
    norms, clipped = ensemble.clip_gradient(1.0, 1)
    assert norms.tolist() == pytest.approx(alone)
    assert clipped.tolist() == [norm > 3.0 for norm in alone] == [True, False, False]
    after = [member_norm(e) for e in range(3)]
    assert after == pytest.approx([3.0, alone[1], alone[2]], rel=1e-5)
