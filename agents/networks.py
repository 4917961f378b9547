"""Actor and critic networks: a tanh-Gaussian policy and an ensemble of Q functions."""

from __future__ import annotations

import math

import torch
from torch import nn


def mlp(input_dim: int, hidden_dim: int, output_dim: int, hidden_depth: int) -> nn.Sequential:
    """An MLP with ``hidden_depth`` ReLU hidden layers (0 gives one linear layer)."""
    layers: list[nn.Module] = []
    width = input_dim
    for _ in range(hidden_depth):
        layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
        width = hidden_dim
    layers.append(nn.Linear(width, output_dim))
    return nn.Sequential(*layers)


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

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int,
                 log_std_bounds: tuple[float, float]) -> None:
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

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic action tanh(mu(x)) used for evaluation."""
        return torch.tanh(self.distribution_parameters(obs)[0])

    def entropy_estimate(self, log_prob: torch.Tensor) -> torch.Tensor:
        """Single-sample estimate of the policy entropy -E[log pi]."""
        return -log_prob.mean()


class CriticEnsemble(nn.Module):
    """E independent Q networks Q_i(x, u); forward returns (E, B)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden_dim: int, hidden_depth: int, num_heads: int = 2) -> None:
        super().__init__()
        self.heads = nn.ModuleList(mlp(obs_dim + act_dim, hidden_dim, 1, hidden_depth) for _ in range(num_heads))
        self.apply(orthogonal_init)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([obs, action], dim=-1)
        return torch.stack([head(inputs).squeeze(-1) for head in self.heads], dim=0)


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Exponential moving average target <- tau * source + (1 - tau) * target."""
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.lerp_(param, tau)
