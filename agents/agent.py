"""SAC-SVG(H): the agent that wires networks, world model, replay and the paper's equations
into Algorithm 1's single-step and multi-step updates."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from agents import objectives as eq
from agents.config import AgentConfig
from agents.networks import CriticEnsemble, TanhGaussianActor, polyak_update
from agents.normalizer import RunningNormalizer
from agents.replay import NoSequenceError, ReplayBuffer
from agents.world_model import WorldModel


class DivergenceError(FloatingPointError):
    """A loss became NaN or infinite: the run cannot continue. Names the loss and the step."""

    def __init__(self, loss: str, value: float, step: int) -> None:
        super().__init__(loss, value, step)  # the args pickle, so it crosses process boundaries
        self.loss, self.value, self.step = loss, value, step

    def __str__(self) -> str:
        return f"{self.loss} is {self.value} at env step {self.step}"


def _mean_of_metrics(metrics: list[dict[str, float]]) -> dict[str, float]:
    """Each key's mean over a list of metric dicts with the same keys ({} for none)."""
    return {name: float(np.mean([m[name] for m in metrics])) for name in (metrics[0] if metrics else {})}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class SVGAgent:
    """Actor pi, critic ensemble Q (+ EMA target), temperature alpha and, when the config
    expands values through a model (actor: SVG(H), critic: MVE), a world model (f, r, d).
    With horizon 0, or neither expansion, this is exactly SAC.

    obs_dim, act_dim: sizes; actions live in [-1, 1]^act_dim. ``total_steps`` is T of eq. (14).
    """

    def __init__(self, obs_dim: int, act_dim: int, config: AgentConfig, total_steps: int,
                 seed: int | np.random.SeedSequence) -> None:
        if config.horizon is None:
            raise ValueError("agent.horizon must be resolved before building the agent")
        self.config = config
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.total_steps = total_steps
        self.device = resolve_device(config.device)
        self.horizon = int(config.horizon)
        self.rng = np.random.default_rng(seed)
        c = config
        self.actor = TanhGaussianActor(obs_dim, act_dim, c.hidden_dim, c.hidden_depth,
                                       (c.log_std_min, c.log_std_max)).to(self.device)
        self.critic = CriticEnsemble(obs_dim, act_dim, c.hidden_dim, c.hidden_depth).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(c.init_temperature), device=self.device, requires_grad=True)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr)
        self.temperature_optimizer = torch.optim.Adam([self.log_alpha], lr=c.temperature_lr)
        self.normalizer = RunningNormalizer(obs_dim, c.obs_std_min, c.obs_std_max)
        self.model: WorldModel | None = None
        if (c.actor_expansion or c.critic_expansion) and self.horizon > 0:
            self.model = self._build_world_model(c).to(self.device)
            self.dynamics_optimizer = torch.optim.Adam(self.model.dynamics.parameters(), lr=c.model_lr)
            self.reward_optimizer = torch.optim.Adam(self.model.reward_head.parameters(), lr=c.model_lr)
            self.termination_optimizer = torch.optim.Adam(self.model.termination_logit.parameters(), lr=c.model_lr)
        self.updates_done = 0

    def _build_world_model(self, c: AgentConfig) -> WorldModel:
        if c.dynamics == "gru":
            return WorldModel.gru(self.obs_dim, self.act_dim, c.model_hidden_dim, c.model_hidden_depth,
                                  c.gru_hidden_dim, c.gru_layers, c.dynamics_decoder == "linear",
                                  c.dynamics_detach_predicted_state)
        if c.dynamics == "mlp-ensemble":
            return WorldModel.mlp_ensemble(self.obs_dim, self.act_dim, c.model_hidden_dim, c.model_hidden_depth,
                                           c.ensemble_size)
        raise ValueError(f"unknown dynamics {c.dynamics!r}; valid: gru, mlp-ensemble")

    # ----------------------------------------------------------------- acting

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def observe(self, obs: np.ndarray) -> None:
        """Feed a newly observed raw state to the running normaliser."""
        self.normalizer.update(obs)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """obs: (obs_dim,) raw -> action (act_dim,) in [-1, 1]: a sample, or tanh(mean)."""
        x = self.normalizer.normalize(torch.as_tensor(obs, dtype=torch.float32, device=self.device)[None])
        action = self.actor.mean_action(x) if deterministic else self.actor.sample(x)[0]
        return action[0].cpu().numpy()

    def target_entropy(self, step: int) -> float:
        s = self.config.target_entropy
        return eq.target_entropy_schedule(step, self.total_steps, s.init, s.final, s.decay)

    def actor_horizon(self, step: int) -> int:
        """H of eq. (9) at this env step: 0 (SAC) without actor expansion or during the warm-up."""
        if self.model is None or not self.config.actor_expansion or step < self.config.model_free_actor_warmup_steps:
            return 0
        return self.horizon

    # ----------------------------------------------------------------- updates

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=self.device)

    def update(self, replay: ReplayBuffer, step: int) -> dict[str, float]:
        """Algorithm 1 for one env step: N_step single-step updates, then N_seq dynamics updates.

        Returns the last single-step update's metrics and the dynamics metrics averaged over
        the step's N_seq updates (so ``dynamics_clipped`` is the fraction of them clipped)."""
        c = self.config
        metrics: dict[str, float] = {}
        for _ in range(c.num_step_updates):
            batch = replay.sample(c.step_batch_size, self.rng)
            obs = self.normalizer.normalize(self._tensor(batch.obs))
            next_obs = self.normalizer.normalize(self._tensor(batch.next_obs))
            action, reward = self._tensor(batch.action), self._tensor(batch.reward)
            terminated = self._tensor(batch.terminated)
            if self.updates_done % c.actor_update_every == 0:
                metrics.update(self.update_actor_and_temperature(obs, step))
            metrics.update(self.update_critic(obs, action, reward, next_obs, terminated))
            if self.model is not None:
                metrics.update(self.update_reward_and_termination(obs, action, reward, terminated))
            if self.updates_done % c.critic_target_update_every == 0:
                polyak_update(self.critic_target, self.critic, c.critic_tau)
            self.updates_done += 1
        if self.model is not None:
            dynamics_metrics = [self.update_dynamics(replay) for _ in range(c.num_seq_updates)]
            metrics.update(_mean_of_metrics([m for m in dynamics_metrics if m]))
        for name, value in metrics.items():
            if not math.isfinite(value):
                raise DivergenceError(name, value, step)
        return metrics

    def update_actor_and_temperature(self, obs: torch.Tensor, step: int) -> dict[str, float]:
        """Actor by eq. (9) (eq. (7) when H = 0), then alpha by eq. (8)."""
        alpha = self.alpha.detach()
        horizon = self.actor_horizon(step)
        value, first_log_prob = eq.entropy_regularized_value_expansion(
            obs, horizon, self.actor.sample, self.model, self.critic, alpha, self.config.discount)
        average = horizon + 1 if self.config.actor_objective_average else None
        actor_loss = eq.svg_actor_objective(value, average)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=list(self.actor.parameters()))
        self.actor_optimizer.step()

        target_entropy = self.target_entropy(step)
        alpha_loss = eq.temperature_objective(first_log_prob, self.alpha, target_entropy)
        self.temperature_optimizer.zero_grad(set_to_none=True)
        alpha_loss.backward(inputs=[self.log_alpha])
        self.temperature_optimizer.step()
        return {"actor_loss": actor_loss.item(), "alpha_loss": alpha_loss.item(),
                "alpha": self.alpha.item(), "target_entropy": target_entropy,
                "entropy": self.actor.entropy_estimate(first_log_prob.detach()).item()}

    def critic_target_value(self, reward: torch.Tensor, next_obs: torch.Tensor,
                            terminated: torch.Tensor) -> torch.Tensor:
        """(5) with (6) at x' under the target critic; no gradient."""
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(next_obs)
            next_value = eq.soft_value(self.critic_target(next_obs, next_action), next_log_prob, self.alpha)
            return eq.soft_bellman_target(reward, terminated, next_value, self.config.discount)

    def update_critic(self, obs, action, reward, next_obs, terminated) -> dict[str, float]:
        """Critic ensemble by eq. (4): on SAC's target eq. (5), or on MVE's H-step targets."""
        if self.config.critic_expansion and self.model is not None:
            states, actions, targets, weights = eq.soft_value_expansion_targets(
                reward, terminated, next_obs, self.horizon, self.actor.sample, self.model, self.critic_target,
                self.alpha.detach(), self.config.discount)
            q_values = torch.stack([self.critic(x, u) for x, u in zip([obs, *states], [action, *actions])])
            critic_loss = eq.value_expansion_critic_loss(q_values, targets, weights)
        else:
            target = self.critic_target_value(reward, next_obs, terminated)
            critic_loss = eq.soft_bellman_residual(self.critic(obs, action), target)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()
        return {"critic_loss": critic_loss.item()}

    def update_reward_and_termination(self, obs, action, reward, terminated) -> dict[str, float]:
        """Reward model by eq. (11), termination model by eq. (13), on the single-step batch."""
        assert self.model is not None
        loss_r = eq.reward_loss(self.model.reward(obs, action), reward)
        self.reward_optimizer.zero_grad(set_to_none=True)
        loss_r.backward()
        self.reward_optimizer.step()
        loss_d = eq.termination_loss(self.model.termination_logit(obs, action), terminated,
                                     balance_classes=self.config.termination_pos_weight)
        self.termination_optimizer.zero_grad(set_to_none=True)
        loss_d.backward()
        self.termination_optimizer.step()
        return {"reward_loss": loss_r.item(), "termination_loss": loss_d.item()}

    def update_dynamics(self, replay: ReplayBuffer) -> dict[str, float]:
        """Dynamics by eq. (10) on sequences that stay inside one episode (H transitions for
        the GRU, one-step transitions per member for the MLP ensemble).

        The gradient is clipped as the authors' code clips it (``agent.dynamics_grad_clip``
        is a norm for the mean-reduced loss; ``GRUDynamics.clip_gradient``). Metrics:
        ``dynamics_grad_norm``, the norm of eq. (10)'s gradient before clipping (mean over
        ensemble members), and ``dynamics_clipped``, the fraction of models clipped."""
        assert self.model is not None
        length, count = self.model.dynamics.training_batch(self.horizon, self.config.seq_batch_size)
        try:
            sequences = replay.sample_sequences(count, length, self.rng)
        except NoSequenceError:  # too few steps stored yet (seed_steps < H, or tiny episodes)
            return {}
        states = self.normalizer.normalize(self._tensor(sequences.states))
        loss = self.model.dynamics.training_loss(states, self._tensor(sequences.actions))
        self.dynamics_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clipping = self.model.dynamics.clip_gradient(self.config.dynamics_grad_clip, length)
        self.dynamics_optimizer.step()
        norms, clipped = zip(*clipping)
        return {"dynamics_loss": loss.item(), "dynamics_grad_norm": float(np.mean(norms)),
                "dynamics_clipped": float(np.mean(clipped))}

    @torch.no_grad()
    def model_error(self, states: np.ndarray, actions: np.ndarray) -> float:
        """Multi-step prediction error (Fig. 7): mean over sequences, steps and state
        dimensions of the squared error of the open-loop rollout, in normalised space.
        states: (B, T+1, D) raw; actions: (B, T, A)."""
        assert self.model is not None
        normalized = self.normalizer.normalize(self._tensor(states))
        predicted = self.model.dynamics.unroll(normalized[:, 0], self._tensor(actions))
        return float(((predicted - normalized[:, 1:]) ** 2).mean())

    # ----------------------------------------------------------------- state

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = {"actor": self.actor_optimizer, "critic": self.critic_optimizer,
                      "temperature": self.temperature_optimizer}
        if self.model is not None:
            optimizers.update(dynamics=self.dynamics_optimizer, reward=self.reward_optimizer,
                              termination=self.termination_optimizer)
        return optimizers

    def state_dict(self) -> dict:
        """Networks, optimisers, temperature, normaliser, sampling RNG and update counter."""
        state = {
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
            "optimizers": {k: o.state_dict() for k, o in self._optimizers().items()},
            "normalizer": self.normalizer.state_dict(), "rng": self.rng.bit_generator.state,
            "updates_done": self.updates_done,
        }
        if self.model is not None:
            state["model"] = self.model.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        if self.model is not None:
            self.model.load_state_dict(state["model"])
        for name, optimizer in self._optimizers().items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.normalizer.load_state_dict(state["normalizer"])
        self.rng.bit_generator.state = state["rng"]
        self.updates_done = int(state["updates_done"])
