"""The paper's equations against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from agents import objectives as eq
from agents.networks import CriticEnsemble, TanhGaussianActor


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 1.0),  # H_init
        (250, (1 - -4) * 0.75**0.0625 + -4),
        (500, (1 - -4) * 0.5**0.0625 + -4),
        (1000, -4.0),  # H_final at t = T
    ],
)
def test_target_entropy_schedule_eq14_poplin_ant(step, expected):
    assert eq.target_entropy_schedule(step, 1000, 1.0, -4.0, 0.0625) == pytest.approx(expected)


def test_target_entropy_schedule_eq14_values_by_hand():
    # mbpo walker2d (-2, -3, 64): at t = T/2, (1)(0.5^64) - 3 is -3 to 1e-19
    assert eq.target_entropy_schedule(50, 100, -2, -3, 64) == pytest.approx(-3 + 0.5**64)
    # mbpo hopper (0, -1, 0.5): at t = 3T/4, 1 * sqrt(0.25) - 1 = -0.5
    assert eq.target_entropy_schedule(75, 100, 0, -1, 0.5) == pytest.approx(-0.5)
    # linear decay (beta = 1): halfway between
    assert eq.target_entropy_schedule(30, 120, 0, -4, 1) == pytest.approx(-1.0)
    # constant target
    assert eq.target_entropy_schedule(30, 120, -1, -1, None) == -1.0


def test_soft_bellman_target_bootstraps_through_truncation_not_termination():
    reward = torch.tensor([1.0, 1.0])
    terminated = torch.tensor([0.0, 1.0])  # first: time-limit truncation (not terminated)
    next_value = torch.tensor([10.0, 10.0])
    target = eq.soft_bellman_target(reward, terminated, next_value, discount=0.9)
    assert target.tolist() == pytest.approx([1.0 + 0.9 * 10.0, 1.0])


def test_soft_value_eq6_takes_min_over_heads():
    q = torch.tensor([[1.0, 5.0], [2.0, 3.0]])  # (E=2, B=2)
    value = eq.soft_value(q, log_prob=torch.tensor([-1.0, 0.5]), alpha=torch.tensor(0.2))
    assert value.tolist() == pytest.approx([1.0 + 0.2, 3.0 - 0.1])


def test_soft_bellman_residual_eq4_by_hand():
    q = torch.tensor([[1.0, 2.0], [0.0, 4.0]])
    target = torch.tensor([2.0, 2.0])
    # head 1: (1 + 0) / 2 = 0.5; head 2: (4 + 4) / 2 = 4
    assert eq.soft_bellman_residual(q, target).item() == pytest.approx(4.5)


def test_temperature_objective_eq8_raises_alpha_when_entropy_below_target():
    log_alpha = torch.tensor(math.log(0.1), requires_grad=True)
    log_prob = torch.tensor([2.0, 2.0])  # entropy -2, target 0: too little entropy
    loss = eq.temperature_objective(log_prob, log_alpha.exp(), target_entropy=0.0)
    assert loss.item() == pytest.approx(-0.1 * 2.0)
    loss.backward()
    assert log_alpha.grad.item() < 0  # gradient descent increases alpha


def test_termination_loss_eq13_by_hand():
    logit = torch.tensor([0.0, math.log(3.0)])  # d = 0.5, d = 0.75
    terminated = torch.tensor([1.0, 0.0])
    expected = -(math.log(0.5) + math.log(0.25)) / 2
    assert eq.termination_loss(logit, terminated).item() == pytest.approx(expected)
    # authors' code weighting: pos_weight = negatives / positives = 1 here, so unchanged
    assert eq.termination_loss(logit, terminated, balance_classes=True).item() == pytest.approx(expected)
    weighted = eq.termination_loss(torch.zeros(4), torch.tensor([1.0, 0.0, 0.0, 0.0]), balance_classes=True)
    assert weighted.item() == pytest.approx(-(3 * math.log(0.5) + 3 * math.log(0.5)) / 4)


def test_multi_step_dynamics_loss_eq10_and_reward_loss_eq11_by_hand():
    predicted = torch.zeros(2, 2, 1)
    true = torch.tensor([[[1.0], [2.0]], [[0.0], [1.0]]])
    assert eq.multi_step_dynamics_loss(predicted, true).item() == pytest.approx((1 + 4 + 0 + 1) / 2)
    assert eq.reward_loss(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0])).item() == pytest.approx(5.0)


def _actor_and_critic(seed: int = 0):
    torch.manual_seed(seed)
    return TanhGaussianActor(3, 2, 16, 2, (-5.0, 2.0)), CriticEnsemble(3, 2, 16, 2)


def test_svg0_equals_sac_actor_loss_and_gradient_on_same_batch_and_noise():
    actor, critic = _actor_and_critic()
    obs = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(2))
    alpha = torch.tensor(0.3)

    action, log_prob = actor.sample(obs, noise)
    sac_loss = eq.sac_actor_objective(critic(obs, action), log_prob, alpha)
    sac_grads = torch.autograd.grad(sac_loss, list(actor.parameters()))

    value, _ = eq.entropy_regularized_value_expansion(
        obs, 0, lambda x: actor.sample(x, noise), None, critic, alpha, discount=0.99
    )
    svg_loss = eq.svg_actor_objective(value)
    svg_grads = torch.autograd.grad(svg_loss, list(actor.parameters()))

    assert svg_loss.item() == pytest.approx(sac_loss.item(), abs=1e-7)
    for a, b in zip(sac_grads, svg_grads):
        torch.testing.assert_close(a, b)


class LinearWorld:
    """x' = a x + b u; r = c x + e u; d = sigmoid(k x + m u); 1-D state and action."""

    a, b, c, e, k, m = 0.9, 0.5, 1.0, -2.0, 1.0, 0.5

    def initial_hidden(self, state):
        return None

    def next_state(self, state, action, hidden):
        return self.a * state + self.b * action, None

    def reward(self, state, action):
        return (self.c * state + self.e * action).squeeze(-1)

    def termination_probability(self, state, action):
        return torch.sigmoid(self.k * state + self.m * action).squeeze(-1)


def test_svg2_with_linear_model_equals_value_unrolled_by_hand():
    theta, log_prob_value, alpha, gamma = 0.5, -0.3, 0.2, 0.9
    w = LinearWorld()

    def policy(x):  # u = theta x, a fixed log-probability
        return theta * x, torch.full((x.shape[0],), log_prob_value)

    def q_function(x, u):  # two heads: x + u and 2x + u
        return torch.stack([(x + u).squeeze(-1), (2 * x + u).squeeze(-1)])

    x0 = 1.0
    value, first_log_prob = eq.entropy_regularized_value_expansion(
        torch.tensor([[x0]]), 2, policy, w, q_function, torch.tensor(alpha), gamma
    )

    def sig(z):
        return 1 / (1 + math.exp(-z))

    u0 = theta * x0
    x1 = w.a * x0 + w.b * u0
    u1 = theta * x1
    x2 = w.a * x1 + w.b * u1
    u2 = theta * x2
    r0, r1 = w.c * x0 + w.e * u0, w.c * x1 + w.e * u1
    s1 = 1 - sig(w.k * x0 + w.m * u0)
    s2 = s1 * (1 - sig(w.k * x1 + w.m * u1))
    terminal = min(x2 + u2, 2 * x2 + u2) - alpha * log_prob_value
    expected = (r0 - alpha * log_prob_value) + gamma * s1 * (r1 - alpha * log_prob_value) + gamma**2 * s2 * terminal
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert first_log_prob.item() == pytest.approx(log_prob_value)


def test_svg2_gradient_flows_through_model_into_policy():
    w = LinearWorld()
    theta = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)

    def value_at(t):
        def policy(x):
            return t * x, torch.zeros(x.shape[0], dtype=x.dtype)

        def q(x, u):
            return (x + u).squeeze(-1)[None]

        return eq.entropy_regularized_value_expansion(
            torch.tensor([[1.0]], dtype=torch.float64), 2, policy, w, q, torch.tensor(0.2), 0.9
        )[0].sum()

    (gradient,) = torch.autograd.grad(value_at(theta), theta)
    h = 1e-6
    finite_difference = (
        value_at(torch.tensor(0.5 + h, dtype=torch.float64)) - value_at(torch.tensor(0.5 - h, dtype=torch.float64))
    ) / (2 * h)
    assert gradient.item() == pytest.approx(finite_difference.item(), rel=1e-5)
    assert abs(gradient.item()) > 1e-3


def test_actor_log_prob_matches_change_of_variables():
    actor, _ = _actor_and_critic()
    obs = torch.randn(4, 3)
    noise = torch.randn(4, 2)
    action, log_prob = actor.sample(obs, noise)
    mean, log_std = actor.distribution_parameters(obs)
    normal = torch.distributions.Normal(mean, log_std.exp())
    pre_tanh = mean + log_std.exp() * noise
    expected = (normal.log_prob(pre_tanh) - torch.log(1 - torch.tanh(pre_tanh) ** 2)).sum(-1)
    torch.testing.assert_close(log_prob, expected, rtol=1e-4, atol=1e-4)
    assert torch.all(action.abs() < 1)
    assert torch.all(log_std >= -5) and torch.all(log_std <= 2)
