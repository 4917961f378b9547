"""The ablation agents of section 5.1: MVE critic targets and the MLP-ensemble dynamics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents import SVGAgent
from agents import objectives as eq
from agents.networks import CriticEnsemble, TanhGaussianActor
from agents.replay import ReplayBuffer
from harness.config import build_run_config
from harness.rundir import TRAIN_COLUMNS
from tests.test_objectives import LinearWorld


def test_mve_with_horizon_zero_is_exactly_sacs_critic_target():
    torch.manual_seed(0)
    actor, target_critic = TanhGaussianActor(3, 2, 16, 2, (-5, 2)), CriticEnsemble(3, 2, 16, 2)
    reward, terminated = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 1.0, 0.0])
    next_obs, noise, alpha = torch.randn(3, 3), torch.randn(3, 2), torch.tensor(0.2)
    policy = lambda x: actor.sample(x, noise)  # noqa: E731
    states, actions, targets, weights = eq.soft_value_expansion_targets(
        reward, terminated, next_obs, 0, policy, None, target_critic, alpha, 0.99)
    next_action, next_log_prob = policy(next_obs)
    sac = eq.soft_bellman_target(reward, terminated, eq.soft_value(target_critic(next_obs, next_action),
                                                                   next_log_prob, alpha), 0.99)
    assert states == [] and actions == []
    torch.testing.assert_close(targets[0], sac, rtol=0, atol=0)
    assert weights.tolist() == [[1.0, 1.0, 1.0]]
    q = torch.randn(2, 3)
    assert eq.value_expansion_critic_loss(q[None], targets, weights).item() == pytest.approx(
        eq.soft_bellman_residual(q, sac).item())


def test_mve_targets_with_a_linear_model_equal_the_hand_unrolled_ones():
    world = LinearWorld()
    world.termination_probability = lambda x, u: torch.zeros(x.shape[0])  # no termination
    theta, log_prob_value, alpha, gamma = 0.5, -0.3, 0.2, 0.9

    def policy(x):
        return theta * x, torch.full((x.shape[0],), log_prob_value)

    def target_q(x, u):
        return torch.stack([(x + u).squeeze(-1), (3 * x - u).squeeze(-1)])

    r0, x1 = 2.0, 1.0
    states, actions, targets, weights = eq.soft_value_expansion_targets(
        torch.tensor([r0]), torch.tensor([0.0]), torch.tensor([[x1]]), 2, policy, world, target_q,
        torch.tensor(alpha), gamma)
    u1 = theta * x1
    x2 = world.a * x1 + world.b * u1
    u2 = theta * x2
    x3 = world.a * x2 + world.b * u2
    u3 = theta * x3
    r1, r2 = world.c * x1 + world.e * u1, world.c * x2 + world.e * u2
    v3 = min(x3 + u3, 3 * x3 - u3) - alpha * log_prob_value
    q2 = r2 + gamma * v3
    q1 = r1 + gamma * (q2 - alpha * log_prob_value)
    q0 = r0 + gamma * (q1 - alpha * log_prob_value)
    assert targets[:, 0].tolist() == pytest.approx([q0, q1, q2], rel=1e-6)
    assert [s.item() for s in states] == pytest.approx([x1, x2])
    assert [a.item() for a in actions] == pytest.approx([u1, u2])
    assert weights[:, 0].tolist() == [1.0, 1.0, 1.0]


def test_mve_weights_are_survival_probabilities_and_a_real_termination_stops_bootstrapping():
    world = LinearWorld()
    policy = lambda x: (0.5 * x, torch.zeros(x.shape[0]))  # noqa: E731
    q = lambda x, u: (x + u).squeeze(-1)[None]  # noqa: E731
    _, _, targets, weights = eq.soft_value_expansion_targets(
        torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0]), torch.tensor([[1.0], [1.0]]), 1, policy, world, q,
        torch.tensor(0.0), 0.9)
    assert targets[0, 0].item() == pytest.approx(1.0)  # terminated: the reward alone
    survive = 1 - 1 / (1 + math.exp(-(world.k * 1.0 + world.m * 0.5)))
    assert weights[:, 0].tolist() == pytest.approx([1.0, 0.0])
    assert weights[:, 1].tolist() == pytest.approx([1.0, 1.0])
    x2 = world.a + world.b * 0.5
    r1 = world.c + world.e * 0.5
    assert targets[1, 1].item() == pytest.approx(r1 + 0.9 * survive * (x2 + 0.5 * x2))


def _filled_agent(agent_name: str, overrides: list[str]) -> tuple[SVGAgent, ReplayBuffer]:
    config = build_run_config("classic", "inverted-double-pendulum", agent_name, 0, preset="quick",
                              overrides=["agent.hidden_dim=16", "agent.model_hidden_dim=16", "agent.gru_hidden_dim=16",
                                         "agent.step_batch_size=32", "agent.seq_batch_size=32", *overrides])
    torch.manual_seed(0)
    agent = SVGAgent(9, 1, config.agent, 1000, 0)
    replay = ReplayBuffer(9, 1, 500)
    rng = np.random.default_rng(0)
    for t in range(400):
        obs = rng.normal(size=9)
        replay.add(obs, rng.uniform(-1, 1, 1), float(rng.normal()), obs * 0.9, False, t % 50 == 49)
        agent.observe(obs)
    return agent, replay


def test_ensemble_members_differ_and_each_is_trained():
    agent, replay = _filled_agent("sac-svg-ensemble", [])
    dynamics = agent.model.dynamics
    assert dynamics.members == 5
    member = lambda e: torch.cat([p[e].detach().clone().flatten() for p in dynamics.parameters()])  # noqa: E731
    before = [member(e) for e in range(5)]
    x, u = torch.randn(8, 9), torch.rand(8, 1)
    first = agent.model.dynamics.member_deltas(x, u)
    assert all(not torch.allclose(first[0], first[e]) for e in range(1, 5)), "members must differ"
    losses = [agent.update(replay, 500)["dynamics_loss"] for _ in range(30)]
    after = [member(e) for e in range(5)]
    assert all(not torch.equal(b, a) for b, a in zip(before, after)), "every member must be trained"
    assert losses[-1] < losses[0]
    deltas = agent.model.dynamics.member_deltas(x, u)
    assert all(not torch.allclose(deltas[0], deltas[e]) for e in range(1, 5))


def test_ensemble_rollout_keeps_one_member_per_sequence():
    agent, _ = _filled_agent("sac-svg-ensemble", [])
    dynamics = agent.model.dynamics
    x, u = torch.randn(64, 9), torch.rand(64, 3, 1)
    torch.manual_seed(3)
    rolled = dynamics.unroll(x, u)
    torch.manual_seed(3)
    member = dynamics.initial_hidden(x)
    expected, state = [], x
    for t in range(3):
        state = state + dynamics.member_deltas(state, u[:, t])[member, torch.arange(64)]
        expected.append(state)
    torch.testing.assert_close(rolled, torch.stack(expected, 1))


@pytest.mark.parametrize("agent_name", ["mve", "sac-svg-mve"])
def test_mve_agents_train_their_model_and_critic(agent_name):
    agent, replay = _filled_agent(agent_name, [])
    assert agent.model is not None and agent.config.critic_expansion
    assert (agent.actor_horizon(500) > 0) == (agent_name == "sac-svg-mve")
    metrics = [agent.update(replay, 500) for _ in range(5)]
    assert all(math.isfinite(m["critic_loss"]) and "dynamics_loss" in m for m in metrics)


def test_model_error_is_zero_for_a_perfect_prediction_and_positive_otherwise():
    agent, replay = _filled_agent("sac-svg", [])
    actions = np.zeros((4, 2, 1))
    constant = np.repeat(np.random.default_rng(0).normal(size=(4, 1, 9)), 3, axis=1)  # x_{t+1} = x_t
    assert agent.model_error(constant, actions) > 1e-6  # the untrained decoder predicts some change
    with torch.no_grad():
        for p in agent.model.dynamics.decoder.parameters():
            p.zero_()  # now it predicts no change: exact on a constant trajectory
    assert agent.model_error(constant, actions) == pytest.approx(0.0, abs=1e-10)


def test_dynamics_updates_wait_until_a_sequence_within_one_episode_is_stored():
    config = build_run_config("classic", "inverted-double-pendulum", "sac-svg", 0, preset="quick",
                              overrides=["agent.hidden_dim=16", "agent.model_hidden_dim=16", "agent.gru_hidden_dim=16",
                                         "agent.step_batch_size=8", "agent.seq_batch_size=8"])
    agent = SVGAgent(9, 1, config.agent, 1000, 0)
    replay = ReplayBuffer(9, 1, 100)
    for _ in range(5):  # one-step episodes: no 2-transition sequence exists
        obs = np.ones(9)
        replay.add(obs, np.zeros(1), 0.0, obs, True, False)
        agent.observe(obs)
    metrics = agent.update(replay, 5)
    assert "critic_loss" in metrics and "dynamics_loss" not in metrics


@pytest.mark.parametrize("agent_name", ["sac-svg", "sac-svg-ensemble", "sac-svg-mve"])
def test_dynamics_clipping_is_reported_and_every_metric_has_a_train_csv_column(agent_name):
    """The GRU's threshold is 1.0 x H x D = 2 x 9; a member's 1.0 x D = 9. A tiny clip
    clips every update, 0 none; train.csv has a column for every metric the agent returns."""
    agent, replay = _filled_agent(agent_name, [])
    steps = agent.horizon if agent_name != "sac-svg-ensemble" else 1
    norms_and_flags = [agent.update_dynamics(replay) for _ in range(5)]
    for metrics in norms_and_flags:
        if agent_name != "sac-svg-ensemble":  # one model: clipped iff its norm passes the threshold
            assert metrics["dynamics_clipped"] == float(metrics["dynamics_grad_norm"] > 1.0 * steps * 9)
        assert 0.0 <= metrics["dynamics_clipped"] <= 1.0 and metrics["dynamics_grad_norm"] > 0
    step_metrics = agent.update(replay, 500)
    assert {"dynamics_grad_norm", "dynamics_clipped", "dynamics_loss"} <= set(step_metrics) <= set(TRAIN_COLUMNS)
    tight, replay = _filled_agent(agent_name, ["agent.dynamics_grad_clip=1e-6"])
    assert tight.update(replay, 500)["dynamics_clipped"] == 1.0
    off, replay = _filled_agent(agent_name, ["agent.dynamics_grad_clip=0"])
    assert off.update(replay, 500)["dynamics_clipped"] == 0.0
