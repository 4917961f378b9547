"""The networks of S seeds at once: every parameter of a lone network (``agents.networks``,
``agents.dynamics``) stacked along a leading seed axis, under the
lone network's parameter names. So seed s's slice of a stacked state dict is a lone
network's state dict (``seed_state_dict``), and one product of every seed's rows with its
own weights is one batched matmul (``torch.baddbmm``): S seeds' work for one kernel's
dispatch. Inputs and outputs carry the seed axis first: (S, B, ...).

Parameters are allocated, not initialised: a batch is loaded with its seeds' lone state
dicts (``agents.batched.BatchedSVGAgent.load_seed_state``), so seed s starts exactly where
a lone run of seed s starts.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import vmap

from agents.dynamics import GRUDynamics, clip_member_gradients, clip_threshold, gru_gates
from agents.networks import MLP, TanhGaussianActor
from agents.objectives import multi_step_dynamics_loss
from agents.seed_noise import SeedNoise


def seed_state_dict(module: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seed ``seed``'s lone state dict: copies (a saved view would save every seed's storage)."""
    return {name: value[seed].clone() for name, value in module.state_dict().items()}


@torch.no_grad()
def load_seed_state_dict(module: nn.Module, seed: int, state: dict[str, torch.Tensor]) -> None:
    """Write a lone state dict into seed ``seed``'s slice; names and shapes must match."""
    own = module.state_dict(keep_vars=True)
    if own.keys() != state.keys():
        missing, unexpected = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
        raise KeyError(f"state dict does not fit {type(module).__name__}: missing {missing}, unexpected {unexpected}")
    for name, value in state.items():
        if own[name].shape[1:] != value.shape:
            raise ValueError(
                f"{name}: a seed's shape is {tuple(own[name].shape[1:])}, the state's {tuple(value.shape)}"
            )
        own[name][seed].copy_(value)


class StackedLinear(nn.Module):
    """Each seed's ``nn.Linear``: weight (S, out, in), bias (S, out); (S, N, in) -> (S, N, out)."""

    def __init__(self, seeds: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(seeds, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(seeds, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class StackedMLP(MLP):
    """Each seed's ``agents.networks.mlp``: the same layers at the same indices (so the same
    parameter names), linear layers stacked. (S, N, in) -> (S, N, out). Its ``forward``
    replaces the lone one (``lean`` is not read)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self._modules.values():
            x = layer(x) if isinstance(layer, StackedLinear) else torch.relu(x)
        return x


def stacked_mlp(seeds: int, input_dim: int, hidden_dim: int, output_dim: int, hidden_depth: int) -> StackedMLP:
    """``agents.networks.mlp`` for every seed: ``hidden_depth`` ReLU hidden layers."""
    layers: list[nn.Module] = []
    width = input_dim
    for _ in range(hidden_depth):
        layers += [StackedLinear(seeds, width, hidden_dim), nn.ReLU()]
        width = hidden_dim
    layers.append(StackedLinear(seeds, width, output_dim))
    return StackedMLP(*layers)


class StackedEnsembleLinear(nn.Module):
    """Each seed's ``EnsembleLinear``: weight (S, E, in, out), bias (S, E, 1, out); the S x E
    members as one batched matmul. (S, E, B, in) -> (S, E, B, out)."""

    def __init__(self, seeds: int, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(seeds, members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(seeds, members, 1, out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seeds, members = self.weight.shape[:2]
        out = torch.baddbmm(
            self.bias.flatten(0, 1), x.reshape(seeds * members, *x.shape[2:]), self.weight.flatten(0, 1)
        )
        return out.view(seeds, members, *out.shape[1:])


class StackedEnsembleMLP(nn.Module):
    """Each seed's ``EnsembleMLP``. x: (S, B, in), shared by a seed's members, or
    (S, E, B, in), one batch per member -> (S, E, B, out)."""

    def __init__(
        self, seeds: int, members: int, input_dim: int, hidden_dim: int, output_dim: int, hidden_depth: int
    ) -> None:
        super().__init__()
        widths = [input_dim] + [hidden_dim] * hidden_depth + [output_dim]
        self.layers = nn.ModuleList(
            StackedEnsembleLinear(seeds, members, a, b) for a, b in zip(widths[:-1], widths[1:])
        )
        self.members = members

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1).expand(x.shape[0], self.members, *x.shape[1:])
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = torch.relu(x)
        return x


class StackedTanhGaussianActor(TanhGaussianActor):
    """Each seed's tanh-Gaussian policy. The lone actor's methods (``distribution_parameters``,
    ``sample``, ``mean_action``, ``entropy_estimate``) are inherited unchanged: they act on
    the last dimension, so with this trunk they take (S, B, obs_dim) and return (S, B, ...).
    ``sample`` is always given its noise (per-seed streams: ``agents.seed_noise``)."""

    def __init__(
        self,
        seeds: int,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int,
        hidden_depth: int,
        log_std_bounds: tuple[float, float],
    ) -> None:
        nn.Module.__init__(self)  # not the lone __init__: it would build and initialise a lone trunk
        self.trunk = stacked_mlp(seeds, obs_dim, hidden_dim, 2 * act_dim, hidden_depth)
        self.log_std_min, self.log_std_max = log_std_bounds


class StackedCriticEnsemble(nn.Module):
    """Each seed's ``CriticEnsemble``: (S, B, obs_dim), (S, B, act_dim) -> (S, E, B)."""

    def __init__(
        self, seeds: int, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int, num_heads: int = 2
    ) -> None:
        super().__init__()
        self.heads = StackedEnsembleMLP(seeds, num_heads, obs_dim + act_dim, hidden_dim, 1, hidden_depth)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.heads(torch.cat([obs, action], dim=-1)).squeeze(-1)


class StackedStateActionHead(nn.Module):
    """Each seed's ``StateActionHead`` (reward, termination logit): (S, B, D), (S, B, A) -> (S, B)."""

    def __init__(self, seeds: int, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int) -> None:
        super().__init__()
        self.net = stacked_mlp(seeds, obs_dim + act_dim, hidden_dim, 1, hidden_depth)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, action], dim=-1)).squeeze(-1)


def seed_loss(loss, *args: torch.Tensor) -> torch.Tensor:
    """A lone loss of (B, ...) inputs applied to each seed's (S, B, ...) slice: (S,)."""
    return vmap(loss)(*args)


class StackedGRU(nn.Module):
    """Each seed's ``nn.GRU`` parameters under its names (``weight_ih_l0``, ...), stacked."""

    def __init__(self, seeds: int, input_size: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.zeros(seeds, 3 * hidden_size, width)))
            self.register_parameter(
                f"weight_hh_l{layer}", nn.Parameter(torch.zeros(seeds, 3 * hidden_size, hidden_size))
            )
            self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.zeros(seeds, 3 * hidden_size)))
            self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.zeros(seeds, 3 * hidden_size)))

    def step(self, x: torch.Tensor, hidden: torch.Tensor | None) -> torch.Tensor:
        """Every layer of one step (``GRUDynamics._cell_step`` per seed): x (S, B, in),
        hidden (L, S, B, Hd) or None (zero: the W_hh h products are skipped) -> (L, S, B, Hd)."""
        layers = []
        for layer in range(self.num_layers):
            w_ih, w_hh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
            b_ih, b_hh = (
                getattr(self, f"bias_ih_l{layer}").unsqueeze(1),
                getattr(self, f"bias_hh_l{layer}").unsqueeze(1),
            )
            h = None if hidden is None else hidden[layer]
            gates_x = torch.baddbmm(b_ih, x, w_ih.transpose(1, 2))
            gates_h = b_hh if h is None else torch.baddbmm(b_hh, h, w_hh.transpose(1, 2))
            x = gru_gates(gates_x, gates_h, h, joint_gates=True)
            layers.append(x)
        return torch.stack(layers)


class StackedGRUDynamics(GRUDynamics):
    """Each seed's ``GRUDynamics``: x_{t+1} = x_t + dec(h_{t+1}), h_{t+1} = GRU(enc(x_t, u_t), h_t),
    h_1 = 0, in the normaliser's space; states (S, B, D), actions (S, B, A). The lone model's
    ``next_state`` and ``unroll`` are inherited unchanged (its fast path: the cell written
    out, h_1 = 0 passed as None); the cell's step is each seed's (``StackedGRU.step``)."""

    def __init__(
        self,
        seeds: int,
        obs_dim: int,
        act_dim: int,
        hidden_dim: int,
        hidden_depth: int,
        gru_hidden_dim: int,
        gru_layers: int,
        decoder_depth: int | None = None,
        detach_predicted_state: bool = False,
    ) -> None:
        nn.Module.__init__(self)  # not the lone __init__: it would build and initialise lone layers
        self.encoder = stacked_mlp(seeds, obs_dim + act_dim, hidden_dim, gru_hidden_dim, hidden_depth)
        self.gru: StackedGRU = StackedGRU(seeds, gru_hidden_dim, gru_hidden_dim, gru_layers)
        depth = hidden_depth if decoder_depth is None else decoder_depth
        self.decoder = stacked_mlp(seeds, gru_hidden_dim, hidden_dim, obs_dim, depth)
        self.state_dim = obs_dim
        self.detach_predicted_state = detach_predicted_state
        self.fast_step = True

    def _cell_step(self, x: torch.Tensor, hidden: torch.Tensor | None) -> torch.Tensor:
        return self.gru.step(x, hidden)

    def training_loss(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(10) for each seed: states (S, B, T+1, D), actions (S, B, T, A) -> (S,)."""
        return seed_loss(multi_step_dynamics_loss, self.unroll(states[:, :, 0], actions), states[:, :, 1:])

    def clip_gradient(self, max_norm_of_mean: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``GRUDynamics.clip_gradient`` for each seed on its own: norms and clipped, (S, 1)."""
        threshold = clip_threshold(max_norm_of_mean, steps * self.state_dim)
        norms, clipped = clip_member_gradients(self.parameters(), threshold)
        return norms.unsqueeze(1), clipped.unsqueeze(1)


class StackedMLPEnsembleDynamics(nn.Module):
    """Each seed's ``MLPEnsembleDynamics``: E one-step MLPs per seed, one member sampled per
    rollout from the seed's own stream (``noise``) and kept for every step. Every member is
    evaluated and each row's own one gathered (no host synchronisation)."""

    def __init__(
        self, seeds: int, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int, members: int, noise: SeedNoise
    ) -> None:
        super().__init__()
        self.net = StackedEnsembleMLP(seeds, members, obs_dim + act_dim, hidden_dim, obs_dim, hidden_depth)
        self.members = members
        self.state_dim = obs_dim
        self.noise = noise

    def initial_hidden(self, state: torch.Tensor) -> torch.Tensor:
        """A member index per rollout, (S, B): what the lone model's ``torch.randint`` draws."""
        return self.noise.integers(self.members, state.shape[1])

    def next_state(
        self, state: torch.Tensor, action: torch.Tensor, member: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        deltas = self.net(torch.cat([state, action], dim=-1))  # (S, E, B, D)
        index = member[:, None, :, None].expand(-1, 1, -1, deltas.shape[-1])
        return state + deltas.gather(1, index).squeeze(1), member

    def training_batch(self, horizon: int, batch_size: int) -> tuple[int, int]:
        return 1, batch_size * self.members

    def training_loss(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(10) with T = 1 for each member on its own slice, summed over members, per seed:
        states (S, E*B, 2, D), actions (S, E*B, 1, A) -> (S,)."""
        seeds = states.shape[0]
        states = states.view(seeds, self.members, -1, *states.shape[2:])
        actions = actions.view(seeds, self.members, -1, *actions.shape[2:])
        x, u = states[:, :, :, 0], actions[:, :, :, 0]
        predicted = (x + self.net(torch.cat([x, u], dim=-1))).unsqueeze(3)  # (S, E, B, 1, D)
        member_losses = seed_loss(vmap(multi_step_dynamics_loss), predicted, states[:, :, :, 1:])
        return member_losses.sum(1)

    def clip_gradient(self, max_norm_of_mean: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``MLPEnsembleDynamics.clip_gradient`` for each seed: norms and clipped, (S, E)."""
        threshold = clip_threshold(max_norm_of_mean, steps * self.state_dim)
        return clip_member_gradients(self.parameters(), threshold, leading_dims=2)


class StackedWorldModel(nn.Module):
    """Each seed's ``WorldModel``: the stacked dynamics, reward and termination heads under
    the lone model's names (so a seed's slice of its state dict is a lone model's), with the
    lone model's rollout interface on (S, B, ...) inputs."""

    def __init__(
        self,
        dynamics: StackedGRUDynamics | StackedMLPEnsembleDynamics,
        reward: StackedStateActionHead,
        termination_logit: StackedStateActionHead,
    ) -> None:
        super().__init__()
        self.dynamics = dynamics
        self.reward_head = reward
        self.termination_logit = termination_logit

    def initial_hidden(self, state: torch.Tensor) -> torch.Tensor | None:
        return self.dynamics.initial_hidden(state)

    def next_state(
        self, state: torch.Tensor, action: torch.Tensor, hidden: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden: the dynamics' own (the GRU's state or None, the ensemble's members)."""
        return self.dynamics.next_state(state, action, hidden)

    def reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.reward_head(state, action)

    def termination_probability(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.termination_logit(state, action))
