"""S seeds of one agent trained as one computation: ``SVGAgent``'s updates (Algorithm 1) on
seed-stacked networks (``agents.stacked``), with the paper's equations of
``agents.objectives`` applied unchanged.

How the equations see a batch: the value expansions, eq. (2)+(3) and the MVE targets, are
elementwise over the batch but for the networks they call, so they are given one batch of
S x B rows (seed s's rows are s*B .. s*B + B - 1) and networks that apply each seed's
weights to its own rows (``SeedRows``); alpha is given per row. The losses, which reduce
over a seed's batch, are mapped over the seed axis (``torch.func.vmap``), so each seed has
its own loss (S,) and the backward pass of their sum gives every seed exactly its own
gradient (the seeds share no parameter).

What each seed keeps of its own, as a lone agent: parameters, Adam moments and step
counts (``agents.stacked_adam``), temperature, target critic, gradient clipping, replay
sampling generator, normaliser, torch noise stream (``agents.seed_noise``) and update
metrics. ``seed_state(s)`` is exactly a lone ``SVGAgent.state_dict()`` and
``load_seed_state(s, ...)`` takes one, so a seed's checkpoint is a lone run's. Given the
same state, the same replay contents and the same noise, seed s's losses and parameters
after any number of updates are a lone agent's to float rounding (tests/test_batched_seeds.py).

Not applied here: ``agent.compile`` (the batch runs eagerly) and the ``fast_path`` options,
which choose between two computations of the same math in the lone agent; this is a third.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.func import vmap

from agents import objectives as eq
from agents.agent import (
    SVGAgent,
    constants,
    critic_target_horizon,
    resolve_device,
    scheduled_actor_horizon,
    scheduled_target_entropy,
)
from agents.config import AgentConfig
from agents.seed_noise import SeedNoise
from agents.stacked import (
    StackedCriticEnsemble,
    StackedGRUDynamics,
    StackedMLPEnsembleDynamics,
    StackedStateActionHead,
    StackedTanhGaussianActor,
    StackedWorldModel,
    load_seed_state_dict,
    seed_state_dict,
)
from agents.stacked_adam import StackedAdam
from agents.stacked_metrics import SeedMetrics
from agents.stacked_replay import StackedNormalizer, StackedReplay

# the networks of a lone agent's state dict, in its order
NETWORKS = ("actor", "critic", "critic_target")


class SeedRows:
    """The stacked networks as functions of S x B rows (seed-major), for the equations'
    callables: ``sample_action``, ``q_function`` and the ``RolloutModel`` interface."""

    def __init__(self, agent: BatchedSVGAgent, batch: int) -> None:
        self.agent, self.seeds, self.batch = agent, agent.seeds, batch

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """(S, B, ...) -> (S*B, ...)."""
        return x.reshape(self.seeds * self.batch, *x.shape[2:])

    def stacked(self, x: torch.Tensor) -> torch.Tensor:
        """(S*B, ...) -> (S, B, ...)."""
        return x.view(self.seeds, self.batch, *x.shape[1:])

    def per_row(self, value: torch.Tensor) -> torch.Tensor:
        """A per-seed value (S,) repeated for each of its rows: (S*B,)."""
        return value.repeat_interleave(self.batch)

    def sample_action(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u ~ pi(x) reparameterised, each seed with its own actor and noise stream."""
        agent = self.agent
        action, log_prob = agent.actor.sample(self.stacked(state), agent.noise.normal(self.batch, agent.act_dim))
        return self.rows(action), self.rows(log_prob)

    def q_function(self, critic: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Q_i(x, u) of each seed's critic, (E, S*B)."""

        def q_values(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
            q = critic(self.stacked(state), self.stacked(action))  # (S, E, B)
            return q.transpose(0, 1).reshape(q.shape[1], -1)

        return q_values

    # agents.objectives.RolloutModel, for each seed's world model
    @property
    def model(self) -> StackedWorldModel:
        if self.agent.model is None:
            raise RuntimeError("a rollout through the world model of a batch that has none (no value expansion)")
        return self.agent.model

    def initial_hidden(self, state: torch.Tensor) -> torch.Tensor | None:
        return self.model.initial_hidden(self.stacked(state))

    def next_state(
        self, state: torch.Tensor, action: torch.Tensor, hidden: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        next_state, hidden = self.model.next_state(self.stacked(state), self.stacked(action), hidden)
        return self.rows(next_state), hidden

    def reward(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.rows(self.model.reward(self.stacked(state), self.stacked(action)))

    def termination_probability(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.rows(self.model.termination_probability(self.stacked(state), self.stacked(action)))


def seed_actor_losses(
    value: torch.Tensor, first_log_prob: torch.Tensor, alpha: torch.Tensor, average: int | None, target_entropy: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One seed's (9) and (8) from its expansion: actor loss, temperature loss, entropy estimate."""
    actor_loss = eq.svg_actor_objective(value, average)
    alpha_loss = eq.temperature_objective(first_log_prob, alpha, target_entropy)
    return actor_loss, alpha_loss, -first_log_prob.detach().mean()


def seed_model_losses(
    predicted_reward: torch.Tensor,
    logit: torch.Tensor,
    reward: torch.Tensor,
    terminated: torch.Tensor,
    balance_classes: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One seed's (11) and (13)."""
    return eq.reward_loss(predicted_reward, reward), eq.termination_loss(logit, terminated, balance_classes)


class BatchedSVGAgent:
    """``SVGAgent`` for S seeds at once (see the module's docstring). Networks are allocated,
    not initialised: load each seed's lone state (``load_seed_state``) and noise generator
    state (``noise.set_state``) before use; ``from_agents`` does both from lone agents."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: AgentConfig,
        total_steps: int,
        seeds: int,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if config.horizon is None:
            raise ValueError("agent.horizon must be resolved before building the agent")
        self.config, self.seeds = config, seeds
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.total_steps = total_steps
        self.device = resolve_device(config.device)
        self.horizon = int(config.horizon)
        self.critic_horizon = critic_target_horizon(config)
        if config.compile not in ("off", "auto") and warn is not None:
            warn(f"agent.compile={config.compile} is not applied to seeds trained as a batch; they run eagerly")
        c = config
        self.noise = SeedNoise(seeds, self.device)
        self.rngs = [np.random.default_rng() for _ in range(seeds)]  # replay sampling, one per seed
        self.actor = StackedTanhGaussianActor(
            seeds, obs_dim, act_dim, c.hidden_dim, c.hidden_depth, (c.log_std_min, c.log_std_max)
        ).to(self.device)
        self.critic = StackedCriticEnsemble(seeds, obs_dim, act_dim, c.hidden_dim, c.hidden_depth).to(self.device)
        self.critic_target = (
            StackedCriticEnsemble(seeds, obs_dim, act_dim, c.hidden_dim, c.hidden_depth)
            .to(self.device)
            .requires_grad_(False)
        )
        self.log_alpha = torch.full((seeds,), math.log(c.init_temperature), device=self.device, requires_grad=True)
        self.normalizer = StackedNormalizer(seeds, obs_dim, c.obs_std_min, c.obs_std_max)
        self.model: StackedWorldModel | None = None
        optimizers = {
            "actor": (self.actor.parameters(), c.actor_lr),
            "critic": (self.critic.parameters(), c.critic_lr),
            "temperature": ([self.log_alpha], c.temperature_lr),
        }
        if (c.actor_expansion and self.horizon > 0) or self.critic_horizon > 1:
            self.model = self._build_world_model(c).to(self.device)
            optimizers.update(
                dynamics=(self.model.dynamics.parameters(), c.model_lr),
                reward=(self.model.reward_head.parameters(), c.model_lr),
                termination=(self.model.termination_logit.parameters(), c.model_lr),
            )
        fused = c.fast_path.fused_optimizers
        self.optimizers = {
            name: StackedAdam(parameters, lr, fused=fused) for name, (parameters, lr) in optimizers.items()
        }
        self.actor_step_constants = [p for m in (self.critic, self.model) if m is not None for p in m.parameters()]
        self.actor_parameters = [*self.actor.parameters(), self.log_alpha]
        self.updates_done = 0
        self._loaded_updates: dict[int, int] = {}
        self._lone: SVGAgent | None = None  # one seed as a lone agent (``seed_agent``)
        self._warn = warn

    def _build_world_model(self, c: AgentConfig) -> StackedWorldModel:
        s = self.seeds
        dynamics: StackedGRUDynamics | StackedMLPEnsembleDynamics
        if c.dynamics == "gru":
            dynamics = StackedGRUDynamics(
                s,
                self.obs_dim,
                self.act_dim,
                c.model_hidden_dim,
                c.model_hidden_depth,
                c.gru_hidden_dim,
                c.gru_layers,
                0 if c.dynamics_decoder == "linear" else None,
                c.dynamics_detach_predicted_state,
            )
        elif c.dynamics == "mlp-ensemble":
            dynamics = StackedMLPEnsembleDynamics(
                s, self.obs_dim, self.act_dim, c.model_hidden_dim, c.model_hidden_depth, c.ensemble_size, self.noise
            )
        else:
            raise ValueError(f"unknown dynamics {c.dynamics!r}; valid: gru, mlp-ensemble")
        head = partial(StackedStateActionHead, s, self.obs_dim, self.act_dim, c.model_hidden_dim, c.model_hidden_depth)
        return StackedWorldModel(dynamics, head(), head())

    @classmethod
    def from_agents(
        cls, agents: list[SVGAgent], noise_states: list[torch.Tensor], warn: Callable[[str], None] | None = None
    ) -> BatchedSVGAgent:
        """A batch whose seed s is lone agent s as it is now, drawing its noise from a
        generator in state ``noise_states[s]``."""
        first = agents[0]
        batch = cls(first.obs_dim, first.act_dim, first.config, first.total_steps, len(agents), warn)
        for seed, (agent, state) in enumerate(zip(agents, noise_states)):
            batch.load_seed_state(seed, agent.state_dict())
            batch.noise.set_state(seed, state)
        return batch

    # ----------------------------------------------------------------- acting

    @property
    def alpha(self) -> torch.Tensor:
        """Each seed's temperature, (S,)."""
        return self.log_alpha.exp()

    def observe(self, obs: np.ndarray) -> None:
        """One newly observed raw state per seed, (S, obs_dim), to its normaliser."""
        self.normalizer.update(obs)

    def observe_seed(self, seed: int, obs: np.ndarray) -> None:
        """A raw state (obs_dim,) of one seed alone (its episode's first, after a reset)."""
        self.normalizer.normalizers[seed].update(obs)
        self.normalizer.changed()

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """obs (S, obs_dim) raw -> actions (S, act_dim): each seed's sample (its own noise) or tanh(mean)."""
        x = self.normalizer.normalize(torch.as_tensor(obs, dtype=torch.float32, device=self.device)).unsqueeze(1)
        if deterministic:
            action = self.actor.mean_action(x)
        else:
            action = self.actor.sample(x, self.noise.normal(1, self.act_dim))[0]
        return action[:, 0].cpu().numpy()

    # the lone agent's rules, the same for every seed: eq. (14)'s target, and H of eq. (9) at a step
    def target_entropy(self, step: int) -> float:
        return scheduled_target_entropy(self.config, self.total_steps, step)

    def actor_horizon(self, step: int) -> int:
        return scheduled_actor_horizon(self.config, self.horizon, self.model is not None, step)

    # ----------------------------------------------------------------- updates

    def _tensor(self, array: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=self.device)

    def update(self, replay: StackedReplay, step: int) -> list[SeedMetrics]:
        """``SVGAgent.update`` for every seed: N_step single-step updates, then N_seq dynamics
        updates. Returns the last single-step update's metrics, and the dynamics metrics
        averaged over each seed's dynamics updates (a seed with no stored sequence yet skips
        one, as a lone agent does, and reports none when it skipped all). Metrics stay
        tensors on the device (``agents.stacked_metrics.StackedMetricSums`` reads them)."""
        if len(set(self._loaded_updates.values())) > 1:
            raise ValueError(f"the seeds of a batch must be at the same update; loaded: {self._loaded_updates}")
        c = self.config
        metrics: dict[str, torch.Tensor | float] = {}
        for _ in range(c.num_step_updates):
            batch = replay.sample(c.step_batch_size, self.rngs)
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
                with torch.no_grad():
                    torch._foreach_lerp_(
                        list(self.critic_target.parameters()), list(self.critic.parameters()), c.critic_tau
                    )
            self.updates_done += 1
        parts = [SeedMetrics(metrics)]
        if self.model is not None:
            dynamics = [
                result
                for result in (self.update_dynamics(replay) for _ in range(c.num_seq_updates))
                if result is not None
            ]
            if dynamics:
                parts.append(self._average_dynamics_metrics(dynamics))
        return parts

    def update_actor_and_temperature(self, obs: torch.Tensor, step: int) -> dict[str, torch.Tensor | float]:
        """Actor by eq. (9) (eq. (7) when H = 0), then alpha by eq. (8), every seed at once.
        obs: (S, B, D) normalised. One backward pass gives each seed's actor and log alpha
        exactly their own gradients; the critic's and the model's parameters are constants."""
        target_entropy = self.target_entropy(step)
        horizon = self.actor_horizon(step)
        rows = SeedRows(self, obs.shape[1])
        with constants(self.actor_step_constants):
            value, first_log_prob = eq.entropy_regularized_value_expansion(
                rows.rows(obs),
                horizon,
                rows.sample_action,
                rows if self.model is not None else None,
                rows.q_function(self.critic),
                rows.per_row(self.alpha.detach()),
                self.config.discount,
            )
            average = horizon + 1 if self.config.actor_objective_average else None
            losses = partial(seed_actor_losses, average=average, target_entropy=target_entropy)
            actor_loss, alpha_loss, entropy = vmap(losses)(
                rows.stacked(value), rows.stacked(first_log_prob), self.alpha
            )
        for name in ("actor", "temperature"):
            self.optimizers[name].zero_grad()
        (actor_loss.sum() + alpha_loss.sum()).backward(inputs=self.actor_parameters)
        self.optimizers["actor"].step()
        self.optimizers["temperature"].step()
        return {
            "actor_loss": actor_loss.detach(),
            "alpha_loss": alpha_loss.detach(),
            "alpha": self.alpha.detach(),
            "target_entropy": target_entropy,
            "entropy": entropy,
        }

    def critic_loss_of_batch(self, obs, action, reward, next_obs, terminated) -> torch.Tensor:
        """Each seed's eq. (4) on SAC's target eq. (5), or on MVE's Q_{0:H} targets of eq. (3)
        (``SVGAgent.critic_loss_of_batch``). All (S, B, ...); returns (S,)."""
        rows = SeedRows(self, obs.shape[1])
        if self.critic_horizon == 1:
            with torch.no_grad():  # SVGAgent.critic_target_value
                next_action, next_log_prob = rows.sample_action(rows.rows(next_obs))
                next_value = eq.soft_value(
                    rows.q_function(self.critic_target)(rows.rows(next_obs), next_action),
                    next_log_prob,
                    rows.per_row(self.alpha),
                )
                target = eq.soft_bellman_target(
                    rows.rows(reward), rows.rows(terminated), next_value, self.config.discount
                )
            return vmap(eq.soft_bellman_residual)(self.critic(obs, action), rows.stacked(target))
        states, actions, targets, weights = eq.soft_value_expansion_targets(
            rows.rows(reward),
            rows.rows(terminated),
            rows.rows(next_obs),
            self.critic_horizon,
            rows.sample_action,
            rows,
            rows.q_function(self.critic_target),
            rows.per_row(self.alpha.detach()),
            self.config.discount,
        )
        pairs = len(states) + 1
        inputs = torch.cat([obs, *(rows.stacked(x) for x in states)], dim=1)  # (S, H*B, D): the H pairs per seed
        chosen = torch.cat([action, *(rows.stacked(u) for u in actions)], dim=1)
        q_values = self.critic(inputs, chosen)  # (S, E, H*B)
        q_values = q_values.view(self.seeds, q_values.shape[1], pairs, -1).transpose(1, 2)  # (S, H, E, B)
        per_seed = lambda x: x.view(pairs, self.seeds, -1).transpose(0, 1)  # noqa: E731 - (H, S*B) -> (S, H, B)
        return vmap(eq.value_expansion_critic_loss)(q_values, per_seed(targets), per_seed(weights))

    def update_critic(self, obs, action, reward, next_obs, terminated) -> dict[str, torch.Tensor]:
        critic_loss = self.critic_loss_of_batch(obs, action, reward, next_obs, terminated)
        self.optimizers["critic"].zero_grad()
        critic_loss.sum().backward()
        self.optimizers["critic"].step()
        return {"critic_loss": critic_loss.detach()}

    def update_reward_and_termination(self, obs, action, reward, terminated) -> dict[str, torch.Tensor]:
        """Each seed's reward model by eq. (11) and termination model by eq. (13)."""
        assert self.model is not None
        losses = partial(seed_model_losses, balance_classes=self.config.termination_pos_weight)
        loss_r, loss_d = vmap(losses)(
            self.model.reward(obs, action), self.model.termination_logit(obs, action), reward, terminated
        )
        for name in ("reward", "termination"):
            self.optimizers[name].zero_grad()
        (loss_r.sum() + loss_d.sum()).backward()
        self.optimizers["reward"].step()
        self.optimizers["termination"].step()
        return {"reward_loss": loss_r.detach(), "termination_loss": loss_d.detach()}

    def update_dynamics(self, replay: StackedReplay) -> tuple[dict[str, torch.Tensor], np.ndarray] | None:
        """Each seed's dynamics by eq. (10), its gradient clipped on its own
        (``SVGAgent.update_dynamics``). A seed with no stored sequence yet keeps its model,
        moments and step count. Returns the metrics (S,) and which seeds updated; None if none did."""
        assert self.model is not None
        length, count = self.model.dynamics.training_batch(self.horizon, self.config.seq_batch_size)
        sequences, present = replay.sample_sequences(count, length, self.rngs)
        if not present.any():
            return None
        states = self.normalizer.normalize(self._tensor(sequences.states))
        loss = self.model.dynamics.training_loss(states, self._tensor(sequences.actions))
        optimizer = self.optimizers["dynamics"]
        optimizer.zero_grad()
        loss.sum().backward()
        norms, clipped = self.model.dynamics.clip_gradient(self.config.dynamics_grad_clip, length)
        optimizer.step(None if present.all() else torch.as_tensor(present, device=self.device))
        return {
            "dynamics_loss": loss.detach(),
            "dynamics_grad_norm": norms.mean(1),
            "dynamics_clipped": clipped.float().mean(1),
        }, present

    def _average_dynamics_metrics(self, results: list[tuple[dict[str, torch.Tensor], np.ndarray]]) -> SeedMetrics:
        """Each seed's mean over the dynamics updates it made."""
        made = np.stack([present for _, present in results])  # (updates, S)
        mask = torch.as_tensor(made, device=self.device)
        counts = mask.sum(0).clamp(min=1)
        means = {
            name: torch.where(mask, torch.stack([m[name] for m, _ in results]), 0.0).sum(0) / counts
            for name in results[0][0]
        }
        return SeedMetrics(means, seeds=np.any(made, axis=0))

    # ----------------------------------------------------------------- one seed

    def _stepped_networks(self) -> dict[str, torch.nn.Module]:
        networks = {"actor": self.actor, "critic": self.critic, "critic_target": self.critic_target}
        if self.model is not None:
            networks["model"] = self.model
        return networks

    def seed_state(self, seed: int) -> dict:
        """Seed ``seed``'s state exactly as ``SVGAgent.state_dict`` writes it (copies)."""
        networks = self._stepped_networks()
        state: dict[str, Any] = {name: seed_state_dict(networks[name], seed) for name in NETWORKS}
        state.update(
            log_alpha=self.log_alpha[seed].detach().clone(),
            optimizers={name: o.seed_state_dict(seed) for name, o in self.optimizers.items()},
            normalizer=self.normalizer.normalizers[seed].state_dict(),
            rng=self.rngs[seed].bit_generator.state,
            updates_done=self.updates_done,
        )
        if self.model is not None:
            state["model"] = seed_state_dict(self.model, seed)
        return state

    def load_seed_state(self, seed: int, state: dict) -> None:
        """Seed ``seed`` from a lone ``SVGAgent.state_dict()`` (or ``seed_state``)."""
        networks = self._stepped_networks()
        for name, network in networks.items():
            load_seed_state_dict(network, seed, state[name])
        with torch.no_grad():
            self.log_alpha[seed] = state["log_alpha"]
        for name, optimizer in self.optimizers.items():
            optimizer.load_seed_state_dict(seed, state["optimizers"][name])
        self.normalizer.normalizers[seed].load_state_dict(state["normalizer"])
        self.normalizer.changed()
        self.rngs[seed].bit_generator.state = state["rng"]
        self._loaded_updates[seed] = int(state["updates_done"])
        self.updates_done = int(state["updates_done"])

    def seed_agent(self, seed: int) -> SVGAgent:
        """A lone agent holding seed ``seed``'s state now (one agent, reloaded at each call):
        for what a run does with one seed at a time (evaluation, the model's error)."""
        if self._lone is None:
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                self._lone = SVGAgent(self.obs_dim, self.act_dim, self.config, self.total_steps, 0, self._warn)
        self._lone.load_state_dict(self.seed_state(seed))
        return self._lone

    def model_error(self, seed: int, states: np.ndarray, actions: np.ndarray) -> float:
        """``SVGAgent.model_error`` of seed ``seed`` (an ensemble's member draws from its stream)."""
        with self.noise.as_global(seed):
            return self.seed_agent(seed).model_error(states, actions)

    def drop_seeds(self, keep: list[int]) -> BatchedSVGAgent:
        """A batch of the seeds ``keep`` alone, each in its state now (a diverged seed leaves)."""
        batch = BatchedSVGAgent(self.obs_dim, self.act_dim, self.config, self.total_steps, len(keep), self._warn)
        for new, old in enumerate(keep):
            batch.load_seed_state(new, self.seed_state(old))
            batch.noise.set_state(new, self.noise.state(old))
        return batch
