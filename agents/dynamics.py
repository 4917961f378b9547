"""Deterministic recurrent dynamics f_theta of section 4.2 (GRU over encoded (x, u))."""

from __future__ import annotations

import torch
from torch import nn

from agents.networks import mlp, orthogonal_init


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
