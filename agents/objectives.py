"""The paper's equations, one function each, named for what they compute.

Shapes: ``B`` is the batch size, ``E`` the number of critic heads, ``D`` the state size,
``T`` the number of predicted transitions. All functions are pure: they take tensors (or
callables that return tensors) and return tensors; optimisation lives in ``agents.agent``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------
# Soft actor-critic (section 3.2)
# ---------------------------------------------------------------------------------------


def soft_value(q_values: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """(6) Soft value V(x) = min_i Q_i(x, u) - alpha log pi(u|x), with u ~ pi(x).

    q_values: (E, B) critic heads at (x, u); log_prob: (B,); returns (B,).
    The minimum over heads is double-Q learning (Hasselt, 2010), as in SAC. Eq. (6) draws u
    from pi_theta-bar, a policy with averaged weights; svgbench, like standard SAC and the
    authors' code, passes a sample of the current actor (docs/fidelity.md, "The critic
    target's policy")."""
    return q_values.min(dim=0).values - alpha * log_prob


def soft_bellman_target(
    reward: torch.Tensor, terminated: torch.Tensor, next_soft_value: torch.Tensor, discount: float
) -> torch.Tensor:
    """(5) Critic target r + gamma (1 - d) V(x').

    ``terminated`` (B,) is 1 only for real terminations: a time-limit truncation bootstraps.
    """
    return reward + discount * (1.0 - terminated) * next_soft_value


def soft_bellman_residual(q_values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(4) Critic loss: squared soft Bellman residual, summed over heads, mean over the batch.

    q_values: (E, B); target: (B,), treated as a constant.
    """
    return ((q_values - target.detach().unsqueeze(0)) ** 2).mean(dim=1).sum()


def sac_actor_objective(q_values: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """(7) SAC actor objective E[alpha log pi(u|x) - Q(x, u)], with Q the min over heads."""
    return (alpha * log_prob - q_values.min(dim=0).values).mean()


def temperature_objective(
    log_prob: torch.Tensor, alpha: torch.Tensor, target_entropy: float | torch.Tensor
) -> torch.Tensor:
    """(8) Temperature objective E[-alpha log pi(u|x) - alpha H_target].

    Its gradient raises alpha when the entropy -log pi is below the target. ``log_prob`` is
    treated as a constant: only alpha learns from this objective.
    """
    return (-alpha * log_prob.detach() - alpha * target_entropy).mean()


def target_entropy_schedule(step: int, total_steps: int, init: float, final: float, decay: float | None) -> float:
    """(14) Target entropy (H_init - H_final) (1 - t/T)^beta + H_final; constant if beta is None."""
    if decay is None:
        return float(init)
    progress = min(max(step / total_steps, 0.0), 1.0)
    return float((init - final) * (1.0 - progress) ** decay + final)


# ---------------------------------------------------------------------------------------
# SVG(H): entropy-regularised value expansion through a learned world model (section 4.1)
# ---------------------------------------------------------------------------------------


class RolloutModel(Protocol):
    """What the value expansion needs of a world model (in normalised state space)."""

    def initial_hidden(self, state: torch.Tensor) -> torch.Tensor | None: ...

    def next_state(
        self, state: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor: ...

    def termination_probability(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor: ...


PolicySample = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]
QFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def entropy_regularized_value_expansion(
    state: torch.Tensor,
    horizon: int,
    sample_action: PolicySample,
    model: RolloutModel | None,
    q_function: QFunction,
    alpha: torch.Tensor,
    discount: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(2)+(3) H-step entropy-regularised value expansion V^{pi,alpha}_{0:H}(x).

        V = sum_{t<H} gamma^t S_t (r(x_t, u_t) - alpha log pi(u_t|x_t))
            + gamma^H S_H (min_i Q_i(x_H, u_H) - alpha log pi(u_H|x_H)),
        S_t = prod_{k<t} (1 - d(x_k, u_k)),  x_{t+1} = f(x_t, u_t),  u_t ~ pi(x_t) reparameterised.

    Each term is weighted by the learned probability of surviving the steps before it. The
    gradient flows through actions, model and critic into the policy. With H = 0 this is
    the soft value of eq. (6) at x, so eq. (9) reduces to SAC's eq. (7).

    state: (B, D); sample_action(x) -> (u (B, A), log_prob (B,)); q_function(x, u) -> (E, B).
    Returns (value (B,), log_prob of the first action (B,)) - the latter feeds eq. (8).
    """
    value = torch.zeros(state.shape[0], dtype=state.dtype, device=state.device)
    survival = torch.ones_like(value)
    hidden = model.initial_hidden(state) if (model is not None and horizon > 0) else None
    rollout = cast(RolloutModel, model)  # read only when H > 0, for which the agent builds a model
    first_log_prob = None
    for t in range(horizon):
        action, log_prob = sample_action(state)
        if first_log_prob is None:
            first_log_prob = log_prob
        reward = rollout.reward(state, action)
        value = value + discount**t * survival * (reward - alpha * log_prob)
        survival = survival * (1.0 - rollout.termination_probability(state, action))
        state, hidden = rollout.next_state(state, action, hidden)
    action, log_prob = sample_action(state)
    if first_log_prob is None:
        first_log_prob = log_prob
    terminal_soft_value = soft_value(q_function(state, action), log_prob, alpha)
    value = value + discount**horizon * survival * terminal_soft_value
    return value, first_log_prob


def svg_actor_objective(value_expansion: torch.Tensor, average_terms: int | None = None) -> torch.Tensor:
    """(9) SVG(H) actor objective E_x[-V^{pi,alpha}_{0:H}(x)].

    ``average_terms`` = H + 1 reproduces the authors' code, which divides the expansion by
    its number of terms; the paper (default, None) does not.
    """
    objective = -value_expansion.mean()
    return objective / average_terms if average_terms else objective


# ---------------------------------------------------------------------------------------
# MVE: model-based value expansion in the critic (Feinberg et al. 2018; paper section 5.1.2)
# ---------------------------------------------------------------------------------------


def soft_value_expansion_targets(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    next_state: torch.Tensor,
    horizon: int,
    sample_action: PolicySample,
    model: RolloutModel | None,
    target_q_function: QFunction,
    alpha: torch.Tensor,
    discount: float,
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """(3) Soft Q_{0:H} targets of the real pair and of every imagined pair, no gradient.

    ``horizon`` is eq. (3)'s H >= 1: the transitions from x_0 to the bootstrap state x_H, the
    first of them real. From a real transition (x_0, u_0, r_0, d_0, x_1) the model rolls
    H - 1 steps from the real x_1, imagining x_2 .. x_H with u_k ~ pi(x_k). With d_0 the real
    termination and d_k = d_theta(x_k, u_k) for k >= 1:

        Qhat_k = r_k + gamma (1 - d_k) Vhat_{k+1}  = Q_{0:H-k}(x_k, u_k)   (k = 0 .. H-1),
        Vhat_k = Qhat_k - alpha log pi(u_k|x_k)                            (k = 1 .. H-1),
        Vhat_H = min_i Qbar_i(x_H, u) - alpha log pi(u|x_H),  eq. (6), target critic.

    So the real pair's target is Q_{0:H}(x_0, u_0), the last imagined pair's Q_{0:1}; all
    bootstrap at x_H and each entropy term enters once. With H = 1 this is SAC's target,
    eq. (5), and no model is used (``model`` may be None). The pair (x_k, u_k) is reached
    with probability w_k = prod_{j<k} (1 - d_j), returned as weights (w_0 = 1).

    At ``agent.horizon`` = h, ``agent.mve_horizon_counting`` chooses what the agent passes:
    "paper" passes H = h, so the critic's target is Q_{0:h} (the real step and h - 1 model
    steps, as eq. (3) defines it beside the SVG(h) actor's V_{0:h}); "authors-code" passes
    H = h + 1, so it is Q_{0:h+1} (h model steps after the real one, as the code counts).

    reward, terminated: (B,); next_state: (B, D). Returns the states x_1 .. x_{H-1} (x_1
    real, the rest imagined) and actions u_1 .. u_{H-1} of the pairs after the real one
    (lists of H - 1 tensors), targets (H, B) for (x_0, u_0), (x_1, u_1), .., and weights (H, B).
    """
    if horizon < 1:
        raise ValueError(f"eq. (3) defines Q_{{0:H}} for H >= 1, got H = {horizon}")
    with torch.no_grad():
        states, actions, rewards, log_probs = [], [], [reward], []
        not_terminated = [1.0 - terminated]
        state = next_state
        rollout = cast(RolloutModel, model)  # read only when H > 1, for which the agent builds a model
        hidden = rollout.initial_hidden(state) if horizon > 1 else None
        for _ in range(horizon - 1):
            action, log_prob = sample_action(state)
            states.append(state)
            actions.append(action)
            log_probs.append(log_prob)
            rewards.append(rollout.reward(state, action))
            not_terminated.append(1.0 - rollout.termination_probability(state, action))
            state, hidden = rollout.next_state(state, action, hidden)
        action, log_prob = sample_action(state)
        value = soft_value(target_q_function(state, action), log_prob, alpha)  # Vhat_H
        targets = [torch.zeros_like(reward)] * horizon
        for k in range(horizon - 1, -1, -1):
            targets[k] = rewards[k] + discount * not_terminated[k] * value
            if k > 0:
                value = targets[k] - alpha * log_probs[k - 1]
        weights = torch.cumprod(torch.stack([torch.ones_like(reward)] + not_terminated[:-1]), dim=0)
        return states, actions, torch.stack(targets), weights


def value_expansion_critic_loss(q_values: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(4) over the H pairs of a Q_{0:H} expansion (``soft_value_expansion_targets``): sum over
    heads of the survival-weighted squared residual, averaged over pairs and batch.
    q_values: (H, E, B); targets, weights: (H, B). With H = 1 and weight 1 this is eq. (4)
    exactly."""
    residual = (q_values - targets.detach().unsqueeze(1)) ** 2
    return (weights.detach().unsqueeze(1) * residual).mean(dim=(0, 2)).sum()


# ---------------------------------------------------------------------------------------
# World-model losses (section 4.2)
# ---------------------------------------------------------------------------------------


def multi_step_dynamics_loss(predicted_states: torch.Tensor, true_states: torch.Tensor) -> torch.Tensor:
    """(10) Multi-step squared error E ||f(x_1, u_{1:T}) - x_{2:T+1}||^2.

    predicted_states, true_states: (B, T, D). Summed over steps and state dimensions,
    averaged over the batch.
    """
    return ((predicted_states - true_states) ** 2).sum(dim=(1, 2)).mean()


def reward_loss(predicted_reward: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    """(11) Reward-model squared error E ||r_theta(x, u) - r||^2. Both (B,)."""
    return ((predicted_reward - reward) ** 2).mean()


def termination_log_likelihood(logit: torch.Tensor, terminated: torch.Tensor) -> torch.Tensor:
    """(12) Bernoulli log-likelihood log Pr(d | x, u) = d log d_theta + (1 - d) log(1 - d_theta).

    ``logit`` (B,) parameterises d_theta = sigmoid(logit); computed stably in logit space.
    """
    return terminated * F.logsigmoid(logit) + (1.0 - terminated) * F.logsigmoid(-logit)


def termination_loss(logit: torch.Tensor, terminated: torch.Tensor, balance_classes: bool = False) -> torch.Tensor:
    """(13) Termination-model negative log-likelihood E[-log Pr(d | x, u)].

    ``balance_classes`` reproduces the authors' code: positives weighted by
    negatives / positives in the batch (BCE pos_weight). The paper (default) does not weight.
    """
    log_likelihood = termination_log_likelihood(logit, terminated)
    if balance_classes:
        positives = terminated.sum()
        negatives = terminated.numel() - positives
        pos_weight = torch.where(positives > 0, negatives / positives.clamp(min=1.0), torch.ones_like(positives))
        weights = torch.where(terminated > 0.5, pos_weight, torch.ones_like(terminated))
        log_likelihood = weights * log_likelihood
    return -log_likelihood.mean()
