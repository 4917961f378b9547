"""Learned reward r_theta (eq. 11) and termination d_theta (eq. 12-13) maps, and the world
model that bundles them with the dynamics for rollouts."""

from __future__ import annotations

import torch
from torch import nn

from agents.dynamics import GRUDynamics, MLPEnsembleDynamics
from agents.networks import mlp, orthogonal_init


class StateActionHead(nn.Module):
    """An MLP from (x, u) to one number per sample: (B, D), (B, A) -> (B,)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hidden_dim, 1, hidden_depth)
        self.apply(orthogonal_init)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, action], dim=-1)).squeeze(-1)


class WorldModel(nn.Module):
    """Dynamics f, reward r and termination d (as a logit), in normalised state space.

    Implements ``agents.objectives.RolloutModel``.
    """

    def __init__(
        self, dynamics: GRUDynamics | MLPEnsembleDynamics, reward: StateActionHead, termination_logit: StateActionHead
    ) -> None:
        super().__init__()
        self.dynamics = dynamics
        self.reward_head = reward
        self.termination_logit = termination_logit

    @classmethod
    def gru(
        cls,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int,
        hidden_depth: int,
        gru_hidden_dim: int,
        gru_layers: int,
        linear_decoder: bool,
        detach_predicted_state: bool,
        fast_step: bool = False,
    ) -> WorldModel:
        dynamics = GRUDynamics(
            obs_dim,
            act_dim,
            hidden_dim,
            hidden_depth,
            gru_hidden_dim,
            gru_layers,
            decoder_depth=0 if linear_decoder else None,
            detach_predicted_state=detach_predicted_state,
            fast_step=fast_step,
        )
        return cls(
            dynamics,
            StateActionHead(obs_dim, act_dim, hidden_dim, hidden_depth),
            StateActionHead(obs_dim, act_dim, hidden_dim, hidden_depth),
        )

    @classmethod
    def mlp_ensemble(
        cls, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int, members: int, batched: bool = False
    ) -> WorldModel:
        dynamics = MLPEnsembleDynamics(obs_dim, act_dim, hidden_dim, hidden_depth, members, batched=batched)
        return cls(
            dynamics,
            StateActionHead(obs_dim, act_dim, hidden_dim, hidden_depth),
            StateActionHead(obs_dim, act_dim, hidden_dim, hidden_depth),
        )

    def initial_hidden(self, state: torch.Tensor) -> torch.Tensor | None:
        return self.dynamics.initial_hidden(state)

    def next_state(self, state, action, hidden):
        return self.dynamics.next_state(state, action, hidden)

    def reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.reward_head(state, action)

    def termination_probability(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.termination_logit(state, action))
