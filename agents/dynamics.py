"""Dynamics models f_theta: the recurrent GRU model of section 4.2 and, for the ablation of
Fig. 3, an ensemble of one-step MLPs. Both predict state changes in normalised space."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import cast

import torch
from torch import nn

from agents.networks import EnsembleMLP, mlp, orthogonal_init
from agents.objectives import multi_step_dynamics_loss


def clip_threshold(max_norm_of_mean: float, summed_terms: int) -> float:
    """The norm at which a loss summed over ``summed_terms`` errors is clipped so that its
    mean's gradient is clipped at ``max_norm_of_mean`` (<= 0: never, infinity)."""
    return max_norm_of_mean * summed_terms if max_norm_of_mean > 0 else math.inf


def clip_summed_loss_gradient(
    parameters: Iterable[nn.Parameter], max_norm_of_mean: float, summed_terms: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip the gradient of a loss *summed* over ``summed_terms`` squared errors per sequence
    as the authors' code clips the gradient of the same errors' *mean*.

    Eq. (10) as the paper writes it sums over steps and state dimensions (T x D terms); the
    authors' code averages them (``F.mse_loss``) and clips that gradient's norm at 1.0. The
    sum's gradient is T x D times the mean's, so clipping it at ``max_norm_of_mean * T * D``
    clips exactly the updates the code clips and leaves the gradient T x D times the code's
    clipped one (Adam's step does not depend on that constant factor, up to its epsilon).
    Clipping the sum at 1.0 instead would clip almost every update. ``max_norm_of_mean`` <= 0
    disables clipping. Returns the norm of the sum's gradient before clipping, and whether
    it was clipped, as tensors on the parameters' device (read them without a host sync
    inside the update).
    """
    threshold = clip_threshold(max_norm_of_mean, summed_terms)
    norm = nn.utils.clip_grad_norm_(parameters, threshold, foreach=True)
    return norm, norm > threshold


def clip_coefficient(norm: torch.Tensor, threshold: float) -> torch.Tensor:
    """``clip_grad_norm_``'s factor for a gradient of norm ``norm``: threshold / (norm +
    1e-6), at most 1."""
    return (threshold / (norm + 1e-6)).clamp(max=1.0)


def clipped_summed_loss_gradients(
    grads: list[torch.Tensor], max_norm_of_mean: float, summed_terms: int
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """``clip_summed_loss_gradient`` on gradients held apart from the parameters (a compiled
    update's): the clipped gradients, the norm before clipping and whether it was clipped.
    The norm is ``clip_grad_norm_``'s: the 2-norm of the parameters' gradient norms."""
    threshold = clip_threshold(max_norm_of_mean, summed_terms)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coefficient = clip_coefficient(norm, threshold)
    return [g * coefficient for g in grads], norm, norm > threshold


def clip_member_gradients(
    parameters: Iterable[nn.Parameter], threshold: float, leading_dims: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """``clip_grad_norm_`` applied to each member of stacked ensemble parameters on its own:
    every parameter's first dimension is the member (its first ``leading_dims`` dimensions
    index the members: seed and member for seed-stacked ensembles). The same formula as
    torch's (coefficient ``threshold / (norm + 1e-6)``, at most 1). Returns the norms (E,)
    before clipping and which members were clipped (E,)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    coefficients, norms = member_clip_coefficients(grads, threshold, leading_dims)
    for g, coefficient in zip(grads, coefficients):
        g.mul_(coefficient)
    return norms, norms > threshold


def member_clip_coefficients(
    grads: list[torch.Tensor], threshold: float, leading_dims: int = 1
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each member's gradient norm (E,) and, for every gradient, its members' clipping
    factors shaped to multiply it (``clip_member_gradients``'s arithmetic)."""
    norms = torch.stack([g.flatten(leading_dims).pow(2).sum(-1) for g in grads]).sum(0).sqrt()
    coefficient = clip_coefficient(norms, threshold)
    return [coefficient.view(*coefficient.shape, *([1] * (g.dim() - leading_dims))) for g in grads], norms


def gru_layer_step(
    x: torch.Tensor,
    h: torch.Tensor | None,
    w_ih: torch.Tensor,
    w_hh: torch.Tensor,
    b_ih: torch.Tensor,
    b_hh: torch.Tensor,
    joint_gates: bool = False,
) -> torch.Tensor:
    """One step of one GRU layer as ``torch.nn.GRU`` computes it (gates r, z, n):

        r = sigma(W_ir x + b_ir + W_hr h + b_hr),  z = sigma(W_iz x + b_iz + W_hz h + b_hz),
        n = tanh(W_in x + b_in + r (W_hn h + b_hn)),  h' = (1 - z) n + z h.

    ``h`` None means h = 0: the W_hh h matmul (half the layer's work) is skipped, since it
    is zero, and h' = (1 - z) n. ``joint_gates``: r and z from one addition and one
    sigmoid over both gates' columns (the same arithmetic per element, half the kernels).
    x: (B, in), h: (B, hidden) -> (B, hidden)."""
    gates_x = nn.functional.linear(x, w_ih, b_ih)
    gates_h = b_hh if h is None else nn.functional.linear(h, w_hh, b_hh)
    return gru_gates(gates_x, gates_h, h, joint_gates)


def gru_gates(
    gates_x: torch.Tensor, gates_h: torch.Tensor, h: torch.Tensor | None, joint_gates: bool = False
) -> torch.Tensor:
    """``gru_layer_step`` after its two products: gates_x = W_ih x + b_ih and gates_h = W_hh h
    + b_hh (b_hh alone when h is None, meaning 0), each (..., 3 hidden) -> h' (..., hidden).
    Any leading shape: the seed-stacked GRU (agents/stacked.py) shares this arithmetic."""
    if joint_gates:
        size = gates_x.shape[-1] // 3
        x_rz, x_n = gates_x.split([2 * size, size], dim=-1)
        h_rz, h_n = gates_h.split([2 * size, size], dim=-1)
        r, z = torch.sigmoid(x_rz + h_rz).chunk(2, dim=-1)
        n = torch.tanh(x_n + r * h_n)
    else:
        i_r, i_z, i_n = gates_x.chunk(3, dim=-1)
        h_r, h_z, h_n = gates_h.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
    return (1.0 - z) * n if h is None else (1.0 - z) * n + z * h


class GRUDynamics(nn.Module):
    """x_{t+1} = x_t + dec(h_{t+1}),  h_{t+1} = GRU(enc(x_t, u_t), h_t),  h_1 = 0.

    States are in the normaliser's space. ``decoder_depth`` 0 gives the authors' code's
    single linear decoder; the paper uses an MLP like the encoder. ``lean`` (the fast
    path's ``lean_calls``, with ``fast_step``): the cell's r and z gates are computed
    jointly (``gru_layer_step``'s ``joint_gates``).
    """

    lean: bool = False

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int,
        hidden_depth: int,
        gru_hidden_dim: int,
        gru_layers: int,
        decoder_depth: int | None = None,
        detach_predicted_state: bool = False,
        fast_step: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = mlp(obs_dim + act_dim, hidden_dim, gru_hidden_dim, hidden_depth)
        # torch's GRU; the seed-stacked model (agents.stacked) holds its own here and steps it itself
        self.gru: nn.Module = nn.GRU(gru_hidden_dim, gru_hidden_dim, num_layers=gru_layers)
        depth = hidden_depth if decoder_depth is None else decoder_depth
        self.decoder = mlp(gru_hidden_dim, hidden_dim, obs_dim, depth)
        self.state_dim = obs_dim
        self.detach_predicted_state = detach_predicted_state
        # The fast path: the GRU cell written out (``gru_layer_step``), and h_1 = 0 passed
        # as None so the first step skips the W_hh h matmuls. Same parameters and math.
        self.fast_step = fast_step
        self.apply(orthogonal_init)

    def initial_hidden(self, state: torch.Tensor) -> torch.Tensor | None:
        """h_1 = 0: (layers, B, hidden), or None (meaning zero) on the fast path."""
        if self.fast_step:
            return None
        gru = self.gru
        assert isinstance(gru, nn.GRU)  # only the fast path runs another GRU (the seed-stacked model's)
        return state.new_zeros(gru.num_layers, state.shape[0], gru.hidden_size)

    def next_state(
        self, state: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One model transition. state: (B, D), action: (B, A), hidden: (L, B, Hd) or None (zero)."""
        encoded = self.encoder(torch.cat([state, action], dim=-1))
        if self.fast_step:
            hidden = self._cell_step(encoded, hidden)
            output = hidden[-1]
        else:
            output, hidden = self.gru(encoded.unsqueeze(0), hidden)
            output = output.squeeze(0)
        return state + self.decoder(output), hidden

    def _cell_step(self, x: torch.Tensor, hidden: torch.Tensor | None) -> torch.Tensor:
        """All layers of one GRU step with ``gru_layer_step``: (B, in), (L, B, Hd) or None -> (L, B, Hd)."""
        # torch's GRU: the seed-stacked model, whose GRU is another, overrides this method
        # (a cast, not an isinstance check, on this per-step path)
        gru = cast(nn.GRU, self.gru)
        layers = []
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(gru.all_weights):
            x = gru_layer_step(
                x, None if hidden is None else hidden[layer], w_ih, w_hh, b_ih, b_hh, joint_gates=self.lean
            )
            layers.append(x)
        return torch.stack(layers)

    def unroll(self, first_state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """f_theta(x_1, u_{1:T}) -> predicted x_{2:T+1}: (B, D), (B, T, A) -> (B, T, D).

        Open loop: every step is fed the model's own previous prediction. (Any leading
        dimensions before B: the seed-stacked model, agents/stacked.py, inherits this.)
        """
        state, hidden = first_state, self.initial_hidden(first_state)
        predictions = []
        for t in range(actions.shape[-2]):
            state, hidden = self.next_state(state, actions[..., t, :], hidden)
            predictions.append(state)
            if self.detach_predicted_state:
                state = state.detach()
        return torch.stack(predictions, dim=-2)

    def training_batch(self, horizon: int, batch_size: int) -> tuple[int, int]:
        """(sequence length in transitions, number of sequences) to sample for one update."""
        return horizon, batch_size

    def training_loss(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(10) on sequences states (B, T+1, D), actions (B, T, A)."""
        return multi_step_dynamics_loss(self.unroll(states[:, 0], actions), states[:, 1:])

    def clip_gradient(self, max_norm_of_mean: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip the gradient of ``training_loss`` on ``steps``-transition sequences as the
        authors' code clips its model's (``clip_summed_loss_gradient``, T x D = steps x
        state dims). Gradient norms and whether clipped, each (1,): the GRU is one model."""
        norm, clipped = clip_summed_loss_gradient(self.parameters(), max_norm_of_mean, steps * self.state_dim)
        return norm.reshape(1), clipped.reshape(1)

    def clipped_gradients(
        self, grads: list[torch.Tensor], max_norm_of_mean: float, steps: int
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """``clip_gradient`` on gradients held apart from the parameters (a compiled update's,
        in ``parameters()`` order): the clipped gradients, the norm and whether clipped (1,)."""
        clipped_grads, norm, clipped = clipped_summed_loss_gradients(grads, max_norm_of_mean, steps * self.state_dim)
        return clipped_grads, norm.reshape(1), clipped.reshape(1)


class MLPEnsembleDynamics(nn.Module):
    """E deterministic MLPs x_{t+1} = x_t + g_e(x_t, u_t), each trained on its own one-step
    minibatch (the architecture the paper compares in Fig. 3). A rollout samples one member
    per start state and keeps it for every step; the "hidden state" carries that index.

    ``batched`` (the fast path) evaluates the members as one batched module; in a rollout
    on the CPU it evaluates only each rollout's own member (on other devices all members in
    one batched matmul, which needs no host synchronisation). Same parameters and math."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int, members: int, batched: bool = False
    ) -> None:
        super().__init__()
        self.net = EnsembleMLP(members, obs_dim + act_dim, hidden_dim, obs_dim, hidden_depth)
        self.members = members
        self.state_dim = obs_dim
        self.batched = batched

    def initial_hidden(self, state: torch.Tensor) -> torch.Tensor:
        """A member index per rollout: (B,)."""
        return torch.randint(0, self.members, (state.shape[0],), device=state.device)

    def member_deltas(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Every member's predicted state change: (E, B, D)."""
        return self.net(torch.cat([state, action], dim=-1), self.batched)

    def own_member_deltas(self, state: torch.Tensor, action: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
        """Each row's own member's predicted change, computing no other member's: (B, D).
        Rows are grouped by member (a host read of the group sizes)."""
        inputs = torch.cat([state, action], dim=-1)
        order = torch.argsort(member, stable=True)
        sizes = torch.bincount(member, minlength=self.members).tolist()
        grouped = torch.cat(
            [self.net.member(e, rows) for e, rows in enumerate(inputs[order].split(sizes)) if rows.shape[0]]
        )
        return grouped[torch.argsort(order)]

    def next_state(
        self, state: torch.Tensor, action: torch.Tensor, member: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.batched and state.device.type == "cpu" and not torch.compiler.is_compiling():
            return state + self.own_member_deltas(state, action, member), member
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
        return 1, batch_size * self.members

    def training_loss(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(10) with T = 1 for each member on its own slice, summed over members.
        states: (E*B, 2, D), actions: (E*B, 1, A)."""
        states = states.view(self.members, -1, *states.shape[1:])
        actions = actions.view(self.members, -1, *actions.shape[1:])
        x, u = states[:, :, 0], actions[:, :, 0]
        predicted = (x + self.net(torch.cat([x, u], dim=-1), self.batched)).unsqueeze(2)  # (E, B, 1, D)
        return torch.stack(
            [multi_step_dynamics_loss(predicted[e], states[e, :, 1:]) for e in range(self.members)]
        ).sum()

    def clip_gradient(self, max_norm_of_mean: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Clip each member's gradient on its own, as the authors' code clips its one model:
        a member's loss is eq. (10) with T = 1 on its own minibatch, summed over D state
        dimensions, so its threshold is ``max_norm_of_mean * D``. The members share no
        parameters and the ensemble's loss is their plain sum, so a member's gradient is
        exactly its own loss's; one clip over the whole ensemble would let one member's
        large gradient shrink every other member's step. Gradient norms and whether
        clipped, each (E,)."""
        threshold = clip_threshold(max_norm_of_mean, steps * self.state_dim)
        return clip_member_gradients(self.parameters(), threshold)

    def clipped_gradients(
        self, grads: list[torch.Tensor], max_norm_of_mean: float, steps: int
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """``clip_gradient`` on gradients held apart from the parameters (a compiled update's,
        in ``parameters()`` order): the clipped gradients, the norms and whether clipped (E,)."""
        threshold = clip_threshold(max_norm_of_mean, steps * self.state_dim)
        coefficients, norms = member_clip_coefficients(grads, threshold)
        return [g * c for g, c in zip(grads, coefficients)], norms, norms > threshold
