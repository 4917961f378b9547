"""Actor and critic networks: a tanh-Gaussian policy and an ensemble of Q functions."""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Sequential):
    """Linear layers with ReLU between them, as an ``nn.Sequential`` (its parameter names).

    ``lean`` (the fast path's ``lean_calls``): the forward pass calls the layers' functions
    directly (``F.linear``, ``torch.relu``: what the layer modules call) instead of one
    module call per layer; the same kernels on the same tensors."""

    lean: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.lean:
            return super().forward(x)
        for layer in self._modules.values():
            x = F.linear(x, layer.weight, layer.bias) if isinstance(layer, nn.Linear) else torch.relu(x)
        return x


def mlp(input_dim: int, hidden_dim: int, output_dim: int, hidden_depth: int) -> MLP:
    """An MLP with ``hidden_depth`` ReLU hidden layers (0 gives one linear layer)."""
    layers: list[nn.Module] = []
    width = input_dim
    for _ in range(hidden_depth):
        layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
        width = hidden_dim
    layers.append(nn.Linear(width, output_dim))
    return MLP(*layers)


def use_lean_calls(module: nn.Module, lean: bool = True) -> None:
    """Switch every lean-capable part of ``module`` (``MLP``, ``EnsembleMLP``, the GRU
    dynamics) to functional calls (``lean``) or back to one module call per layer."""
    for part in module.modules():
        if hasattr(type(part), "lean"):
            part.lean = lean  # type: ignore[assignment]  # torch types Module.__setattr__ for tensors and modules


def orthogonal_init(module: nn.Module) -> None:
    """Orthogonal weights and zero biases for linear layers (the authors' code; paper silent)."""
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def tanh_log_abs_det_jacobian(pre_tanh: torch.Tensor) -> torch.Tensor:
    """log |d tanh(y)/dy| = log(1 - tanh(y)^2), in the stable form 2 (log 2 - y - softplus(-2y))."""
    return 2.0 * (math.log(2.0) - pre_tanh - nn.functional.softplus(-2.0 * pre_tanh))


class TanhGaussianActor(nn.Module):
    """pi(u|x): u = tanh(mu(x) + sigma(x) eps), eps ~ N(0, I); log-std squashed into bounds."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int, log_std_bounds: tuple[float, float]
    ) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, hidden_dim, 2 * act_dim, hidden_depth)
        self.log_std_min, self.log_std_max = log_std_bounds
        self.apply(orthogonal_init)

    def distribution_parameters(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs: (B, obs_dim) -> pre-squash mean and log-std, each (B, act_dim)."""
        mean, log_std = self.trunk(obs).chunk(2, dim=-1)
        log_std = torch.tanh(log_std)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (log_std + 1.0)
        return mean, log_std

    def sample(self, obs: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised sample u and its log-probability log pi(u|x).

        obs: (B, obs_dim); noise: (B, act_dim) standard normal, drawn if None.
        Returns u (B, act_dim) in (-1, 1) and log_prob (B,).
        """
        mean, log_std = self.distribution_parameters(obs)
        std = log_std.exp()
        if noise is None:
            noise = torch.randn_like(mean)
        pre_tanh = mean + std * noise
        gaussian_log_prob = (-0.5 * noise**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = gaussian_log_prob - tanh_log_abs_det_jacobian(pre_tanh).sum(-1)
        return torch.tanh(pre_tanh), log_prob

    def sample_action(self, obs: torch.Tensor) -> torch.Tensor:
        """``sample``'s action alone (the same noise draw and arithmetic), without the
        log-probability: what acting in the environment needs."""
        mean, log_std = self.distribution_parameters(obs)
        return torch.tanh(mean + log_std.exp() * torch.randn_like(mean))

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action tanh(mu(x)) used for evaluation."""
        return torch.tanh(self.distribution_parameters(obs)[0])

    def entropy_estimate(self, log_prob: torch.Tensor) -> torch.Tensor:
        """Single-sample estimate of the policy entropy -E[log pi]."""
        return -log_prob.mean()


class EnsembleLinear(nn.Module):
    """E independent affine maps y_e = x_e W_e + b_e with stacked weights: (E, in, out).

    Each member is initialised as ``orthogonal_init`` initialises one ``nn.Linear``.
    """

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_features))
        with torch.no_grad():
            for member in self.weight:
                member.copy_(nn.init.orthogonal_(torch.empty(out_features, in_features)).T)

    def forward(self, x: torch.Tensor, batched: bool) -> torch.Tensor:
        """x: (B, in), shared by every member, or (E, B, in), one batch per member -> (E, B, out).

        ``batched``: one batched matmul for all members (the fast path); otherwise one
        matmul per member in a Python loop (the plain path). Same math."""
        members = self.weight.shape[0]
        if batched:
            if x.dim() == 2:
                x = x.expand(members, *x.shape)
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.stack(
            [torch.addmm(self.bias[e], x if x.dim() == 2 else x[e], self.weight[e]) for e in range(members)]
        )

    def member(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Member e alone: (N, in) -> (N, out)."""
        return torch.addmm(self.bias[e], x, self.weight[e])


class EnsembleMLP(nn.Module):
    """E independent MLPs of the same shape (``mlp``'s layers), as stacked weights.
    ``lean``: batched layers computed by ``torch.baddbmm`` calls directly, not through one
    module call per layer (the same kernel)."""

    lean: bool = False

    def __init__(self, members: int, input_dim: int, hidden_dim: int, output_dim: int, hidden_depth: int) -> None:
        super().__init__()
        widths = [input_dim] + [hidden_dim] * hidden_depth + [output_dim]
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.members = members

    def forward(self, x: torch.Tensor, batched: bool) -> torch.Tensor:
        """(B, in) or (E, B, in) -> (E, B, out); see ``EnsembleLinear.forward``."""
        if self.lean and batched:
            last = len(self.layers) - 1
            for i, layer in enumerate(cast("list[EnsembleLinear]", self.layers)):
                if x.dim() == 2:
                    x = x.expand(layer.weight.shape[0], *x.shape)
                x = torch.baddbmm(layer.bias, x, layer.weight)
                if i < last:
                    x = torch.relu(x)
            return x
        for i, layer in enumerate(cast("list[EnsembleLinear]", self.layers)):
            x = layer(x, batched)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x

    def member(self, e: int, x: torch.Tensor) -> torch.Tensor:
        """Member e alone on its own rows: (N, in) -> (N, out)."""
        for i, layer in enumerate(cast("list[EnsembleLinear]", self.layers)):
            x = layer.member(e, x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class CriticEnsemble(nn.Module):
    """E independent Q networks Q_i(x, u); forward returns (E, B).

    ``batched`` evaluates the heads as one batched module (the fast path) instead of a
    loop over heads; the parameters and the math are the same."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int, num_heads: int = 2, batched: bool = False
    ) -> None:
        super().__init__()
        self.heads = EnsembleMLP(num_heads, obs_dim + act_dim, hidden_dim, 1, hidden_depth)
        self.batched = batched

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.heads(torch.cat([obs, action], dim=-1), self.batched).squeeze(-1)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float, fused: bool = False) -> None:
    """Exponential moving average target <- tau * source + (1 - tau) * target.

    ``fused``: one multi-tensor lerp over every parameter (the fast path) instead of one
    lerp per parameter; same arithmetic."""
    targets: list[torch.Tensor] = list(target.parameters())
    sources: list[torch.Tensor] = list(source.parameters())
    if fused:
        torch._foreach_lerp_(targets, sources, tau)
        return
    for target_param, param in zip(targets, sources):
        target_param.lerp_(param, tau)
