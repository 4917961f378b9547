"""Dynamics models f_theta: the recurrent GRU model of section 4.2 and, for the ablation of
Fig. 3, an ensemble of one-step MLPs. Both predict state changes in normalised space."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from agents.networks import mlp, orthogonal_init
from agents.objectives import multi_step_dynamics_loss


def clip_summed_loss_gradient(parameters: Iterable[nn.Parameter], max_norm_of_mean: float,
                              summed_terms: int) -> tuple[float, bool]:
    """Clip the gradient of a loss *summed* over ``summed_terms`` squared errors per sequence
    as the authors' code clips the gradient of the same errors' *mean*.

    Eq. (10) as the paper writes it sums over steps and state dimensions (T x D terms); the
    authors' code averages them (``F.mse_loss``) and clips that gradient's norm at 1.0. The
    sum's gradient is T x D times the mean's, so clipping it at ``max_norm_of_mean * T * D``
    clips exactly the updates the code clips and leaves the gradient T x D times the code's
    clipped one (Adam's step does not depend on that constant factor, up to its epsilon).
    Clipping the sum at 1.0 instead would clip almost every update. ``max_norm_of_mean`` <= 0
    disables clipping. Returns the norm of the sum's gradient before clipping, and whether
    it was clipped.
    """
    threshold = max_norm_of_mean * summed_terms if max_norm_of_mean > 0 else math.inf
    norm = float(nn.utils.clip_grad_norm_(parameters, threshold))
    return norm, norm > threshold


class GRUDynamics(nn.Module):
    """x_{t+1} = x_t + dec(h_{t+1}),  h_{t+1} = GRU(enc(x_t, u_t), h_t),  h_1 = 0.

    States are in the normaliser's space. ``decoder_depth`` 0 gives the authors' code's
    single linear decoder; the paper uses an MLP like the encoder.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int,
                 gru_hidden_dim: int, gru_layers: int, decoder_depth: int | None = None,
                 detach_predicted_state: bool = False) -> None:
        super().__init__()
        self.encoder = mlp(obs_dim + act_dim, hidden_dim, gru_hidden_dim, hidden_depth)
        self.gru = nn.GRU(gru_hidden_dim, gru_hidden_dim, num_layers=gru_layers)
        depth = hidden_depth if decoder_depth is None else decoder_depth
        self.decoder = mlp(gru_hidden_dim, hidden_dim, obs_dim, depth)
        self.state_dim = obs_dim
        self.detach_predicted_state = detach_predicted_state
        self.apply(orthogonal_init)

    def initial_hidden(self, state: torch.Tensor) -> torch.Tensor:
        """h_1 = 0: (layers, B, hidden)."""
        return state.new_zeros(self.gru.num_layers, state.shape[0], self.gru.hidden_size)

    def next_state(self, state: torch.Tensor, action: torch.Tensor,
                   hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One model transition. state: (B, D), action: (B, A), hidden: (L, B, Hd)."""
        encoded = self.encoder(torch.cat([state, action], dim=-1)).unsqueeze(0)
        output, hidden = self.gru(encoded, hidden)
        return state + self.decoder(output.squeeze(0)), hidden

    def unroll(self, first_state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """f_theta(x_1, u_{1:T}) -> predicted x_{2:T+1}: (B, D), (B, T, A) -> (B, T, D).

        Open loop: every step is fed the model's own previous prediction.
        """
        state, hidden = first_state, self.initial_hidden(first_state)
        predictions = []
        for t in range(actions.shape[1]):
            state, hidden = self.next_state(state, actions[:, t], hidden)
            predictions.append(state)
            if self.detach_predicted_state:
                state = state.detach()
        return torch.stack(predictions, dim=1)

    def training_batch(self, horizon: int, batch_size: int) -> tuple[int, int]:
        """(sequence length in transitions, number of sequences) to sample for one update."""
        return horizon, batch_size

    def training_loss(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(10) on sequences states (B, T+1, D), actions (B, T, A)."""
        return multi_step_dynamics_loss(self.unroll(states[:, 0], actions), states[:, 1:])

    def clip_gradient(self, max_norm_of_mean: float, steps: int) -> list[tuple[float, bool]]:
        """Clip the gradient of ``training_loss`` on ``steps``-transition sequences as the
        authors' code clips its model's (``clip_summed_loss_gradient``, T x D = steps x
        state dims). One (gradient norm, clipped) pair: the GRU is one model."""
        return [clip_summed_loss_gradient(self.parameters(), max_norm_of_mean, steps * self.state_dim)]


class MLPEnsembleDynamics(nn.Module):
    """E deterministic MLPs x_{t+1} = x_t + g_e(x_t, u_t), each trained on its own one-step
    minibatch (the architecture the paper compares in Fig. 3). A rollout samples one member
    per start state and keeps it for every step; the "hidden state" carries that index."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int, members: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(mlp(obs_dim + act_dim, hidden_dim, obs_dim, hidden_depth) for _ in range(members))
        self.state_dim = obs_dim
        self.apply(orthogonal_init)

    def initial_hidden(self, state: torch.Tensor) -> torch.Tensor:
        """A member index per rollout: (B,)."""
        return torch.randint(0, len(self.members), (state.shape[0],), device=state.device)

    def member_deltas(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Every member's predicted state change: (E, B, D)."""
        inputs = torch.cat([state, action], dim=-1)
        return torch.stack([member(inputs) for member in self.members])

    def next_state(self, state: torch.Tensor, action: torch.Tensor,
                   member: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        deltas = self.member_deltas(state, action)
        return state + deltas[member, torch.arange(state.shape[0], device=state.device)], member

    def unroll(self, first_state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Predicted x_{2:T+1} with one sampled member per sequence: (B, T, D)."""
        state, member = first_state, self.initial_hidden(first_state)
        predictions = []
        for t in range(actions.shape[1]):
            state, member = self.next_state(state, actions[:, t], member)
            predictions.append(state)
        return torch.stack(predictions, dim=1)

    def training_batch(self, horizon: int, batch_size: int) -> tuple[int, int]:
        """One-step transitions, a separate minibatch of ``batch_size`` for every member."""
        return 1, batch_size * len(self.members)

    def training_loss(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(10) with T = 1 for each member on its own slice, summed over members.
        states: (E*B, 2, D), actions: (E*B, 1, A)."""
        members = len(self.members)
        states = states.view(members, -1, *states.shape[1:])
        actions = actions.view(members, -1, *actions.shape[1:])
        losses = []
        for e, member in enumerate(self.members):
            x, u = states[e, :, 0], actions[e, :, 0]
            predicted = (x + member(torch.cat([x, u], dim=-1))).unsqueeze(1)
            losses.append(multi_step_dynamics_loss(predicted, states[e, :, 1:]))
        return torch.stack(losses).sum()

    def clip_gradient(self, max_norm_of_mean: float, steps: int) -> list[tuple[float, bool]]:
        """Clip each member's gradient on its own, as the authors' code clips its one model:
        a member's loss is eq. (10) with T = 1 on its own minibatch, summed over D state
        dimensions, so its threshold is ``max_norm_of_mean * D``. The members share no
        parameters and the ensemble's loss is their plain sum, so a member's gradient is
        exactly its own loss's; one clip over the whole ensemble would let one member's
        large gradient shrink every other member's step. One (gradient norm, clipped) pair
        per member."""
        return [clip_summed_loss_gradient(member.parameters(), max_norm_of_mean, steps * self.state_dim)
                for member in self.members]
