"""SAC-SVG(H): the agent that wires networks, world model, replay and the paper's equations
into Algorithm 1's single-step and multi-step updates."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.profiler import record_function as profiler_label

from agents import objectives as eq
from agents.compile import OneWarning, choose_compile_mode, compile_loss
from agents.config import MVE_HORIZON_COUNTINGS, AgentConfig
from agents.metrics import DivergenceError, raise_if_not_finite
from agents.networks import CriticEnsemble, TanhGaussianActor, polyak_update, use_lean_calls
from agents.normalizer import RunningNormalizer
from agents.optim import DirectFusedAdam
from agents.replay import NoSequenceError, ReplayBuffer
from agents.whole_update import WholeUpdate
from agents.world_model import WorldModel


@contextlib.contextmanager
def constants(parameters: list[torch.nn.Parameter]) -> Iterator[None]:
    """Treat the parameters as constants while the block builds a graph: the backward pass
    then computes no gradient for them (with ``backward(inputs=...)`` alone, a compiled
    backward would still compute them)."""
    parameters = [p for p in parameters if p.requires_grad]
    for p in parameters:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in parameters:
            p.requires_grad_(True)


_UNLABELLED = contextlib.nullcontext()


def record_function(name: str) -> contextlib.AbstractContextManager:
    """A ``torch.profiler`` label for the block while a profiler records (``harness bench``'s
    break-down); otherwise nothing, so an update pays no labelling call per part."""
    return profiler_label(name) if torch._C._autograd._profiler_enabled() else _UNLABELLED  # noqa: SLF001 - no public test


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def critic_target_horizon(config: AgentConfig) -> int:
    """H of the critic's target Q_{0:H}, eq. (3), at ``agent.horizon``: 1 (SAC's eq. (5),
    no model) without critic expansion; with it (MVE), Q_{0:H} under the paper's counting
    (at least Q_{0:1}: H = 0 is SAC's target too) or Q_{0:H+1} under the authors' code's."""
    counting = config.mve_horizon_counting
    if counting not in MVE_HORIZON_COUNTINGS:
        raise ValueError(f"unknown agent.mve_horizon_counting {counting!r}; valid: {', '.join(MVE_HORIZON_COUNTINGS)}")
    if not config.critic_expansion:
        return 1
    if config.horizon is None:
        raise ValueError("agent.horizon must be resolved before building the agent")
    return max(config.horizon, 1) if counting == "paper" else config.horizon + 1


def scheduled_target_entropy(config: AgentConfig, total_steps: int, step: int) -> float:
    """Eq. (14)'s target entropy at this env step (``SVGAgent.target_entropy``)."""
    s = config.target_entropy
    if s.init is None or s.final is None:
        raise ValueError("agent.target_entropy must be resolved from the task before training")
    return eq.target_entropy_schedule(step, total_steps, s.init, s.final, s.decay)


def scheduled_actor_horizon(config: AgentConfig, horizon: int, has_model: bool, step: int) -> int:
    """H of eq. (9) at this env step: 0 (SAC) without a model or actor expansion, or during
    the warm-up; else ``horizon`` (``SVGAgent.actor_horizon``)."""
    if not has_model or not config.actor_expansion or step < config.model_free_actor_warmup_steps:
        return 0
    return horizon


__all__ = ["DivergenceError", "SVGAgent", "resolve_device"]  # DivergenceError: raised by update()


class SVGAgent:
    """Actor pi, critic ensemble Q (+ EMA target), temperature alpha and, when the config
    expands values through a model (actor: SVG(H), critic: MVE), a world model (f, r, d).
    With horizon 0, or neither expansion, this is exactly SAC; so is the ``mve`` agent at
    horizon 1 under the paper's counting (its target Q_{0:1} is SAC's).

    obs_dim, act_dim: sizes; actions live in [-1, 1]^act_dim. ``total_steps`` is T of eq. (14).
    ``config.fast_path`` and ``config.compile`` choose how the same updates are computed;
    ``warn`` receives the one line that says a compile mode fell back to "off".
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: AgentConfig,
        total_steps: int,
        seed: int | np.random.SeedSequence,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if config.horizon is None:
            raise ValueError("agent.horizon must be resolved before building the agent")
        self.config = config
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.total_steps = total_steps
        self.device = resolve_device(config.device)
        self.horizon = int(config.horizon)
        self.critic_horizon = critic_target_horizon(config)  # H of the critic's Q_{0:H}, eq. (3)
        self.rng = np.random.default_rng(seed)
        c, fast = config, config.fast_path
        self.actor = TanhGaussianActor(
            obs_dim, act_dim, c.hidden_dim, c.hidden_depth, (c.log_std_min, c.log_std_max)
        ).to(self.device)
        self.critic = CriticEnsemble(obs_dim, act_dim, c.hidden_dim, c.hidden_depth, batched=fast.batched_ensembles).to(
            self.device
        )
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(c.init_temperature), device=self.device, requires_grad=True)
        self.actor_optimizer = self._adam(self.actor.parameters(), c.actor_lr)
        self.critic_optimizer = self._adam(self.critic.parameters(), c.critic_lr)
        self.temperature_optimizer = self._adam([self.log_alpha], c.temperature_lr)
        self.normalizer = RunningNormalizer(obs_dim, c.obs_std_min, c.obs_std_max)
        self.model: WorldModel | None = None
        if (c.actor_expansion and self.horizon > 0) or self.critic_horizon > 1:
            self.model = self._build_world_model(c).to(self.device)
            self.dynamics_optimizer = self._adam(self.model.dynamics.parameters(), c.model_lr)
            self.reward_optimizer = self._adam(self.model.reward_head.parameters(), c.model_lr)
            self.termination_optimizer = self._adam(self.model.termination_logit.parameters(), c.model_lr)
        if fast.lean_calls:
            for network in (self.actor, self.critic, self.critic_target, self.model):
                if network is not None:
                    use_lean_calls(network)
        # what the actor's step holds constant (gathered once, not at every update)
        self.actor_step_constants = [p for m in (self.critic, self.model) if m is not None for p in m.parameters()]
        self.actor_parameters = [*self.actor.parameters(), self.log_alpha]
        self.steppers = {name: DirectFusedAdam(optimizer) for name, optimizer in self._optimizers().items()}
        self.updates_done = 0
        # the loss functions, compiled or not (agent.compile); updates call only these
        # agent.compile=update compiles each whole update around the eager loss functions
        self.compile_choice = choose_compile_mode(c.compile, self.device, total_steps)  # "auto" resolved
        mode = self.compile_choice.mode
        compile_mode, warn = ("off" if mode == "update" else mode), OneWarning(warn)
        named = "auto (update)" if c.compile == "auto" else mode  # how a fall-back line names it
        self.whole_update = WholeUpdate(self, warn, named) if mode == "update" else None
        self.actor_losses = compile_loss(self.actor_and_temperature_losses, compile_mode, self.device, warn)
        self.critic_loss = compile_loss(self.critic_loss_of_batch, compile_mode, self.device, warn)
        self.model_losses = compile_loss(self.reward_and_termination_losses, compile_mode, self.device, warn)
        self.dynamics_loss = compile_loss(self.dynamics_loss_of_sequences, compile_mode, self.device, warn)

    def _adam(self, parameters, lr: float) -> torch.optim.Adam:
        """Adam; fused (one kernel per step) on the fast path, parameter by parameter otherwise."""
        return torch.optim.Adam(parameters, lr=lr, fused=True if self.config.fast_path.fused_optimizers else None)

    def _build_world_model(self, c: AgentConfig) -> WorldModel:
        if c.dynamics == "gru":
            return WorldModel.gru(
                self.obs_dim,
                self.act_dim,
                c.model_hidden_dim,
                c.model_hidden_depth,
                c.gru_hidden_dim,
                c.gru_layers,
                c.dynamics_decoder == "linear",
                c.dynamics_detach_predicted_state,
                fast_step=c.fast_path.gru_zero_state_step,
            )
        if c.dynamics == "mlp-ensemble":
            return WorldModel.mlp_ensemble(
                self.obs_dim,
                self.act_dim,
                c.model_hidden_dim,
                c.model_hidden_depth,
                c.ensemble_size,
                batched=c.fast_path.batched_ensembles,
            )
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
        """obs: (obs_dim,) raw -> action (act_dim,) in [-1, 1]: a sample, or tanh(mean).
        With ``lean_calls`` on the CPU the state is normalised in NumPy (the same float32
        arithmetic) and the sample skips its unused log-probability."""
        if self.config.fast_path.lean_calls:
            if self.device.type == "cpu":
                x = torch.from_numpy(self.normalizer.normalize_array(obs)[None])
            else:
                x = self.normalizer.normalize(torch.as_tensor(obs, dtype=torch.float32, device=self.device)[None])
            action = self.actor.mean_action(x) if deterministic else self.actor.sample_action(x)
        else:
            x = self.normalizer.normalize(torch.as_tensor(obs, dtype=torch.float32, device=self.device)[None])
            action = self.actor.mean_action(x) if deterministic else self.actor.sample(x)[0]
        return action[0].cpu().numpy()

    def target_entropy(self, step: int) -> float:
        return scheduled_target_entropy(self.config, self.total_steps, step)

    def actor_horizon(self, step: int) -> int:
        """H of eq. (9) at this env step: 0 (SAC) without actor expansion or during the warm-up."""
        return scheduled_actor_horizon(self.config, self.horizon, self.model is not None, step)

    # ----------------------------------------------------------------- updates

    def _tensor(self, array: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=self.device)

    def update(self, replay: ReplayBuffer, step: int) -> dict[str, torch.Tensor | float]:
        """Algorithm 1 for one env step: N_step single-step updates, then N_seq dynamics updates.

        Returns the last single-step update's metrics and the dynamics metrics averaged over
        the step's N_seq updates (so ``dynamics_clipped`` is the fraction of them clipped).
        The plain path reads them (floats) and raises ``DivergenceError`` at once; with
        ``fast_path.deferred_metrics`` they are device tensors, read at log intervals
        (``agents.metrics.MetricSums``), so an update never waits for the device."""
        c = self.config
        metrics: dict[str, torch.Tensor | float] = {}
        for _ in range(c.num_step_updates):
            with record_function("replay sampling"):
                indices = replay.sample_indices(c.step_batch_size, self.rng)
            actor_step = self.updates_done % c.actor_update_every == 0
            target_step = self.updates_done % c.critic_target_update_every == 0
            compiled = None
            if self.whole_update is not None:
                target_entropy = self.target_entropy(step)
                with record_function("single-step update (compiled)"):
                    compiled = self.whole_update.single_step(
                        replay, indices, target_entropy, self.actor_horizon(step), actor_step, target_step
                    )
            if compiled is not None:
                metrics.update(compiled)
                if actor_step:
                    metrics["target_entropy"] = target_entropy
            else:
                with record_function("replay sampling"):
                    batch = replay.batch_at(indices)
                    obs = self.normalizer.normalize(self._tensor(batch.obs))
                    next_obs = self.normalizer.normalize(self._tensor(batch.next_obs))
                    action, reward = self._tensor(batch.action), self._tensor(batch.reward)
                    terminated = self._tensor(batch.terminated)
                if actor_step:
                    metrics.update(self.update_actor_and_temperature(obs, step))
                metrics.update(self.update_critic(obs, action, reward, next_obs, terminated))
                if self.model is not None:
                    metrics.update(self.update_reward_and_termination(obs, action, reward, terminated))
                if target_step:
                    with record_function("target update"):
                        polyak_update(self.critic_target, self.critic, c.critic_tau, fused=c.fast_path.fused_optimizers)
            self.updates_done += 1
        if self.model is not None:
            dynamics_metrics = [m for m in (self.update_dynamics(replay) for _ in range(c.num_seq_updates)) if m]
            if dynamics_metrics:
                metrics.update(
                    {name: torch.stack([m[name] for m in dynamics_metrics]).mean() for name in dynamics_metrics[0]}
                )
        if not c.fast_path.deferred_metrics:
            metrics = {name: float(value) for name, value in metrics.items()}
            raise_if_not_finite(metrics, step)
        return metrics

    def actor_and_temperature_losses(
        self, obs: torch.Tensor, horizon: int, target_entropy: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        """The actor's eq. (9) (eq. (7) when H = 0) and the temperature's eq. (8), from one
        rollout; also the entropy estimate. alpha is a constant in (9), log pi in (8)."""
        value, first_log_prob = eq.entropy_regularized_value_expansion(
            obs, horizon, self.actor.sample, self.model, self.critic, self.alpha.detach(), self.config.discount
        )
        average = horizon + 1 if self.config.actor_objective_average else None
        actor_loss = eq.svg_actor_objective(value, average)
        alpha_loss = eq.temperature_objective(first_log_prob, self.alpha, target_entropy)
        return actor_loss, alpha_loss, self.actor.entropy_estimate(first_log_prob.detach())

    def update_actor_and_temperature(self, obs: torch.Tensor, step: int) -> dict[str, torch.Tensor | float]:
        """Actor by eq. (9) (eq. (7) when H = 0), then alpha by eq. (8).

        The two losses share no parameter (each treats the other's as a constant), so one
        backward pass gives each exactly its own gradient; only the actor's parameters and
        log alpha receive one (not the critic's or the model's)."""
        target_entropy = self.target_entropy(step)
        with record_function("actor rollout forward"), constants(self.actor_step_constants):
            # no gradient graph for the critic's and the model's parameters
            actor_loss, alpha_loss, entropy = self.actor_losses(
                obs, self.actor_horizon(step), torch.full((), target_entropy, device=self.device)
            )
        with record_function("actor rollout backward"):
            self.steppers["actor"].zero_grad()
            self.steppers["temperature"].zero_grad()
            (actor_loss + alpha_loss).backward(inputs=self.actor_parameters)
            self.steppers["actor"].step()
        with record_function("temperature"):
            self.steppers["temperature"].step()
        return {
            "actor_loss": actor_loss.detach(),
            "alpha_loss": alpha_loss.detach(),
            "alpha": self.alpha.detach(),
            "target_entropy": target_entropy,
            "entropy": entropy,
        }

    def critic_target_value(
        self, reward: torch.Tensor, next_obs: torch.Tensor, terminated: torch.Tensor
    ) -> torch.Tensor:
        """(5) with (6) at x' under the target critic; no gradient.

        The action at x' is a sample of the current actor, as in standard SAC and the
        authors' code; eq. (6) writes pi_theta-bar (averaged actor weights), which svgbench
        does not keep and offers no option for (docs/fidelity.md, "The critic target's policy")."""
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(next_obs)
            next_value = eq.soft_value(self.critic_target(next_obs, next_action), next_log_prob, self.alpha)
            return eq.soft_bellman_target(reward, terminated, next_value, self.config.discount)

    def critic_loss_of_batch(self, obs, action, reward, next_obs, terminated) -> torch.Tensor:
        """Eq. (4) on SAC's target eq. (5) (Q_{0:1}), or on MVE's targets Q_{0:H} of eq. (3)
        for the real pair and its H - 1 imagined pairs (H = ``critic_horizon``)."""
        if self.critic_horizon == 1:
            target = self.critic_target_value(reward, next_obs, terminated)
            return eq.soft_bellman_residual(self.critic(obs, action), target)
        states, actions, targets, weights = eq.soft_value_expansion_targets(
            reward,
            terminated,
            next_obs,
            self.critic_horizon,
            self.actor.sample,
            self.model,
            self.critic_target,
            self.alpha.detach(),
            self.config.discount,
        )
        inputs = list(zip([obs, *states], [action, *actions]))
        if self.critic.batched:  # the H pairs as one batch through the batched heads
            q_values = self.critic(torch.cat([x for x, _ in inputs]), torch.cat([u for _, u in inputs]))
            q_values = q_values.view(q_values.shape[0], len(inputs), -1).transpose(0, 1)
        else:
            q_values = torch.stack([self.critic(x, u) for x, u in inputs])
        return eq.value_expansion_critic_loss(q_values, targets, weights)

    def update_critic(self, obs, action, reward, next_obs, terminated) -> dict[str, torch.Tensor]:
        """Critic ensemble by eq. (4): on SAC's target eq. (5), or on MVE's eq. (3) targets."""
        with record_function("critic"):
            critic_loss = self.critic_loss(obs, action, reward, next_obs, terminated)
            self.steppers["critic"].zero_grad()
            critic_loss.backward()
            self.steppers["critic"].step()
        return {"critic_loss": critic_loss.detach()}

    def reward_and_termination_losses(self, obs, action, reward, terminated) -> tuple[torch.Tensor, torch.Tensor]:
        """Reward model eq. (11) and termination model eq. (13) on the single-step batch."""
        assert self.model is not None
        loss_r = eq.reward_loss(self.model.reward(obs, action), reward)
        loss_d = eq.termination_loss(
            self.model.termination_logit(obs, action), terminated, balance_classes=self.config.termination_pos_weight
        )
        return loss_r, loss_d

    def update_reward_and_termination(self, obs, action, reward, terminated) -> dict[str, torch.Tensor]:
        """Reward model by eq. (11), termination model by eq. (13): separate networks, so one
        backward pass of the summed losses gives each exactly its own loss's gradient."""
        with record_function("reward and termination"):
            loss_r, loss_d = self.model_losses(obs, action, reward, terminated)
            self.steppers["reward"].zero_grad()
            self.steppers["termination"].zero_grad()
            (loss_r + loss_d).backward()
            self.steppers["reward"].step()
            self.steppers["termination"].step()
        return {"reward_loss": loss_r.detach(), "termination_loss": loss_d.detach()}

    def dynamics_loss_of_sequences(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Eq. (10) on normalised sequences (see the dynamics model's ``training_loss``)."""
        assert self.model is not None
        return self.model.dynamics.training_loss(states, actions)

    def update_dynamics(self, replay: ReplayBuffer) -> dict[str, torch.Tensor]:
        """Dynamics by eq. (10) on sequences that stay inside one episode (H transitions for
        the GRU, one-step transitions per member for the MLP ensemble).

        The gradient is clipped as the authors' code clips it (``agent.dynamics_grad_clip``
        is a norm for the mean-reduced loss; ``GRUDynamics.clip_gradient``). Metrics:
        ``dynamics_grad_norm``, the norm of eq. (10)'s gradient before clipping (mean over
        ensemble members), and ``dynamics_clipped``, the fraction of models clipped."""
        assert self.model is not None
        length, count = self.model.dynamics.training_batch(self.horizon, self.config.seq_batch_size)
        with record_function("replay sampling"):
            try:
                sequences = replay.sample_sequences(count, length, self.rng)
            except NoSequenceError:  # too few steps stored yet (seed_steps < H, or tiny episodes)
                return {}
            states = self.normalizer.normalize(self._tensor(sequences.states))
            actions = self._tensor(sequences.actions)
        if self.whole_update is not None:
            with record_function("dynamics (compiled)"):
                compiled = self.whole_update.dynamics_step(states, actions)
            if compiled is not None:
                return compiled
        with record_function("dynamics"):
            loss = self.dynamics_loss(states, actions)
            self.steppers["dynamics"].zero_grad()
            loss.backward()
            norms, clipped = self.model.dynamics.clip_gradient(self.config.dynamics_grad_clip, length)
            self.steppers["dynamics"].step()
        return {
            "dynamics_loss": loss.detach(),
            "dynamics_grad_norm": norms.mean(),
            "dynamics_clipped": clipped.float().mean(),
        }

    @torch.no_grad()
    def model_error(self, states: np.ndarray | torch.Tensor, actions: np.ndarray | torch.Tensor) -> float:
        """Multi-step prediction error (Fig. 7): mean over sequences, steps and state
        dimensions of the squared error of the open-loop rollout, in normalised space.
        states: (B, T+1, D) raw; actions: (B, T, A)."""
        assert self.model is not None
        normalized = self.normalizer.normalize(self._tensor(states))
        predicted = self.model.dynamics.unroll(normalized[:, 0], self._tensor(actions))
        return float(((predicted - normalized[:, 1:]) ** 2).mean())

    # ----------------------------------------------------------------- state

    def _optimizers(self) -> dict[str, torch.optim.Adam]:
        optimizers = {
            "actor": self.actor_optimizer,
            "critic": self.critic_optimizer,
            "temperature": self.temperature_optimizer,
        }
        if self.model is not None:
            optimizers.update(
                dynamics=self.dynamics_optimizer, reward=self.reward_optimizer, termination=self.termination_optimizer
            )
        return optimizers

    def state_dict(self) -> dict:
        """Networks, optimisers, temperature, normaliser, sampling RNG and update counter."""
        state = {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "optimizers": {k: o.state_dict() for k, o in self._optimizers().items()},
            "normalizer": self.normalizer.state_dict(),
            "rng": self.rng.bit_generator.state,
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
            self.steppers[name].reset()
        self.normalizer.load_state_dict(state["normalizer"])
        self.rng.bit_generator.state = state["rng"]
        self.updates_done = int(state["updates_done"])
