"""The ablation agents of section 5.1: MVE critic targets and the MLP-ensemble dynamics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents import SVGAgent
from agents import objectives as eq
from agents.agent import critic_target_horizon
from agents.config import AgentConfig
from agents.networks import CriticEnsemble, TanhGaussianActor
from agents.replay import ReplayBuffer
from harness.config import build_run_config
from harness.rundir import TRAIN_COLUMNS
from tests.test_objectives import LinearWorld


def test_mve_at_horizon_one_is_exactly_sacs_critic_target():
    """Eq. (3)'s Q_{0:1} = r + gamma V(x') is eq. (5): no model step, weight 1."""
    torch.manual_seed(0)
    actor, target_critic = TanhGaussianActor(3, 2, 16, 2, (-5, 2)), CriticEnsemble(3, 2, 16, 2)
    reward, terminated = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 1.0, 0.0])
    next_obs, noise, alpha = torch.randn(3, 3), torch.randn(3, 2), torch.tensor(0.2)

    def policy(x):
        return actor.sample(x, noise)

    states, actions, targets, weights = eq.soft_value_expansion_targets(
        reward, terminated, next_obs, 1, policy, None, target_critic, alpha, 0.99
    )
    next_action, next_log_prob = policy(next_obs)
    sac = eq.soft_bellman_target(
        reward, terminated, eq.soft_value(target_critic(next_obs, next_action), next_log_prob, alpha), 0.99
    )
    assert states == [] and actions == []
    torch.testing.assert_close(targets[0], sac, rtol=0, atol=0)
    assert weights.tolist() == [[1.0, 1.0, 1.0]]
    q = torch.randn(2, 3)
    assert eq.value_expansion_critic_loss(q[None], targets, weights).item() == pytest.approx(
        eq.soft_bellman_residual(q, sac).item()
    )


def test_mve_targets_refuse_a_horizon_below_one():
    with pytest.raises(ValueError, match="H >= 1"):
        eq.soft_value_expansion_targets(
            torch.zeros(1), torch.zeros(1), torch.zeros(1, 1), 0, None, None, None, torch.tensor(0.0), 0.9
        )


# A tiny deterministic world for the MVE targets: LinearWorld's dynamics and rewards, a fixed
# termination probability at every model step, u = THETA x with log pi = LOG_PI_SLOPE x (so
# a misplaced entropy term shows), and two target-critic heads x + u and 3x - u.
THETA, LOG_PI_SLOPE, MODEL_TERMINATION, ALPHA, GAMMA = 0.5, -0.3, 0.25, 0.2, 0.9
R0, X1 = 2.0, 1.0  # the real transition's reward and next state (not terminated)


class FixedTerminationWorld(LinearWorld):
    def termination_probability(self, state, action):
        return torch.full((state.shape[0],), MODEL_TERMINATION)


def fixed_policy(x):
    return THETA * x, (LOG_PI_SLOPE * x).squeeze(-1)


def two_head_target_q(x, u):
    return torch.stack([(x + u).squeeze(-1), (3 * x - u).squeeze(-1)])


def hand_targets(counting: str) -> tuple[list[float], list[float], list[float]]:
    """At agent.horizon = 2, unrolled by hand: (states x_1.., targets, weights) of the MVE
    critic: Q_{0:2} ("paper": bootstrap at x_2) or Q_{0:3} ("authors-code": at x_3, the
    numbers svgbench computed before the counting became an option)."""
    w = LinearWorld()

    def log_pi(x):
        return LOG_PI_SLOPE * x

    def soft_v(x):  # eq. (6) under the two target heads
        return min(x + THETA * x, 3 * x - THETA * x) - ALPHA * log_pi(x)

    u1 = THETA * X1
    x2 = w.a * X1 + w.b * u1
    r1 = w.c * X1 + w.e * u1
    survive = 1 - MODEL_TERMINATION
    if counting == "paper":  # Q_{0:2}(x_0, u_0), Q_{0:1}(x_1, u_1)
        q1 = r1 + GAMMA * survive * soft_v(x2)
        q0 = R0 + GAMMA * (q1 - ALPHA * log_pi(X1))
        return [X1], [q0, q1], [1.0, 1.0]
    u2 = THETA * x2
    x3 = w.a * x2 + w.b * u2
    r2 = w.c * x2 + w.e * u2
    q2 = r2 + GAMMA * survive * soft_v(x3)  # Q_{0:3}(x_0, u_0), Q_{0:2}(x_1, u_1), Q_{0:1}(x_2, u_2)
    q1 = r1 + GAMMA * survive * (q2 - ALPHA * log_pi(x2))
    q0 = R0 + GAMMA * (q1 - ALPHA * log_pi(X1))
    return [X1, x2], [q0, q1, q2], [1.0, 1.0, survive]


@pytest.mark.parametrize(("counting", "eq3_horizon"), [("paper", 2), ("authors-code", 3)])
def test_mve_targets_at_horizon_two_equal_the_hand_unrolled_ones_under_each_counting(counting, eq3_horizon):
    states, actions, targets, weights = eq.soft_value_expansion_targets(
        torch.tensor([R0]),
        torch.tensor([0.0]),
        torch.tensor([[X1]]),
        eq3_horizon,
        fixed_policy,
        FixedTerminationWorld(),
        two_head_target_q,
        torch.tensor(ALPHA),
        GAMMA,
    )
    expected_states, expected_targets, expected_weights = hand_targets(counting)
    assert targets[:, 0].tolist() == pytest.approx(expected_targets, rel=1e-6)
    assert weights[:, 0].tolist() == pytest.approx(expected_weights)
    assert [x.item() for x in states] == pytest.approx(expected_states)
    assert [u.item() for u in actions] == pytest.approx([THETA * x for x in expected_states])


def test_mve_weights_are_survival_probabilities_and_a_real_termination_stops_bootstrapping():
    world = LinearWorld()

    def policy(x):
        return (0.5 * x, torch.zeros(x.shape[0]))

    def q(x, u):
        return (x + u).squeeze(-1)[None]

    _, _, targets, weights = eq.soft_value_expansion_targets(
        torch.tensor([1.0, 1.0]),
        torch.tensor([1.0, 0.0]),
        torch.tensor([[1.0], [1.0]]),
        2,
        policy,
        world,
        q,
        torch.tensor(0.0),
        0.9,
    )
    assert targets[0, 0].item() == pytest.approx(1.0)  # terminated: the reward alone
    survive = 1 - 1 / (1 + math.exp(-(world.k * 1.0 + world.m * 0.5)))
    assert weights[:, 0].tolist() == pytest.approx([1.0, 0.0])
    assert weights[:, 1].tolist() == pytest.approx([1.0, 1.0])
    x2 = world.a + world.b * 0.5
    r1 = world.c + world.e * 0.5
    assert targets[1, 1].item() == pytest.approx(r1 + 0.9 * survive * (x2 + 0.5 * x2))


@pytest.mark.parametrize(
    ("counting", "critic_expansion", "horizons"),
    [
        ("paper", True, {0: 1, 1: 1, 2: 2, 3: 3}),
        ("authors-code", True, {0: 1, 1: 2, 2: 3, 3: 4}),
        ("authors-code", False, {0: 1, 2: 1}),  # no MVE: SAC's Q_{0:1} whatever the counting
    ],
)
def test_the_critic_target_horizon_follows_the_counting(counting, critic_expansion, horizons):
    for horizon, expected in horizons.items():
        config = AgentConfig(horizon=horizon, critic_expansion=critic_expansion, mve_horizon_counting=counting)
        assert critic_target_horizon(config) == expected, horizon


def test_an_unknown_mve_horizon_counting_is_refused_in_one_line():
    with pytest.raises(ValueError, match="^unknown agent.mve_horizon_counting 'feinberg'; valid: paper, authors-code$"):
        critic_target_horizon(AgentConfig(horizon=2, critic_expansion=True, mve_horizon_counting="feinberg"))


class LinearCritic:
    """Two heads x + u and x - u, as the agent calls its critic (batched or not)."""

    def __init__(self, batched: bool) -> None:
        self.batched = batched

    def __call__(self, x, u):
        return torch.stack([(x + u).squeeze(-1), (x - u).squeeze(-1)])


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("counting", ["paper", "authors-code"])
def test_the_agents_mve_critic_loss_uses_the_chosen_counting(counting, batched):
    """The agent at agent.horizon = 2, its world, policy and critics replaced by the fixed
    ones: eq. (4) over the hand-unrolled Q_{0:2} (paper) or Q_{0:3} (authors' code) pairs."""
    config = AgentConfig(
        horizon=2,
        actor_expansion=False,
        critic_expansion=True,
        mve_horizon_counting=counting,
        hidden_dim=8,
        model_hidden_dim=8,
        gru_hidden_dim=8,
        discount=GAMMA,
        init_temperature=ALPHA,
        device="cpu",
    )
    agent = SVGAgent(1, 1, config, 1000, 0)
    agent.model, agent.critic, agent.critic_target = FixedTerminationWorld(), LinearCritic(batched), two_head_target_q
    agent.actor.sample = fixed_policy
    x0, u0 = -0.5, 0.4
    loss = agent.critic_loss_of_batch(
        torch.tensor([[x0]]), torch.tensor([[u0]]), torch.tensor([R0]), torch.tensor([[X1]]), torch.tensor([0.0])
    )
    states, targets, weights = hand_targets(counting)
    pairs = [(x0, u0)] + [(x, THETA * x) for x in states]
    expected = sum(((x + u - q) ** 2 + (x - u - q) ** 2) * w for (x, u), q, w in zip(pairs, targets, weights)) / len(
        pairs
    )
    assert loss.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("counting", "has_model"), [("paper", False), ("authors-code", True)])
def test_mve_at_horizon_one_builds_a_model_only_when_its_critic_rolls_one(counting, has_model):
    """Paper counting: Q_{0:1} is SAC's target, so the mve agent is SAC (no model is built,
    the critic takes SAC's eq. (5) path); the code's counting rolls one model step."""
    agent, replay = _filled_agent("mve", ["agent.horizon=1", f"agent.mve_horizon_counting={counting}"])
    assert (agent.model is not None) == has_model
    assert agent.critic_horizon == (2 if has_model else 1)
    metrics = agent.update(replay, 500)
    assert math.isfinite(metrics["critic_loss"]) and ("dynamics_loss" in metrics) == has_model


def _filled_agent(agent_name: str, overrides: list[str]) -> tuple[SVGAgent, ReplayBuffer]:
    config = build_run_config(
        "classic",
        "inverted-double-pendulum",
        agent_name,
        0,
        preset="quick",
        overrides=[
            "agent.hidden_dim=16",
            "agent.model_hidden_dim=16",
            "agent.gru_hidden_dim=16",
            "agent.step_batch_size=32",
            "agent.seq_batch_size=32",
            *overrides,
        ],
    )
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

    def member(e):
        return torch.cat([p[e].detach().clone().flatten() for p in dynamics.parameters()])

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


@pytest.mark.parametrize("counting", ["paper", "authors-code"])
@pytest.mark.parametrize("agent_name", ["mve", "sac-svg-mve"])
def test_mve_agents_train_their_model_and_critic(agent_name, counting):
    agent, replay = _filled_agent(agent_name, [f"agent.mve_horizon_counting={counting}"])
    assert agent.model is not None and agent.config.critic_expansion
    assert agent.critic_horizon == {"paper": 2, "authors-code": 3}[counting]  # the task's H = 2
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
    config = build_run_config(
        "classic",
        "inverted-double-pendulum",
        "sac-svg",
        0,
        preset="quick",
        overrides=[
            "agent.hidden_dim=16",
            "agent.model_hidden_dim=16",
            "agent.gru_hidden_dim=16",
            "agent.step_batch_size=8",
            "agent.seq_batch_size=8",
        ],
    )
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
