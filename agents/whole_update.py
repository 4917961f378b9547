"""``agent.compile=update``: each of Algorithm 1's updates as one compiled program.

At the sizes a CPU affords (the ``quick`` preset) an update is a chain of about a thousand
small kernels, each paid for in dispatch rather than arithmetic (docs/performance.md).
Compiling the loss functions alone does not pay: their gradients and the optimiser steps
stay eager, and the compiled pieces add their own entry costs. Here the whole single-step
update (the actor's and temperature's losses, their gradients and Adam steps, then the
critic's, the reward and termination models', and the target critic's average) is one
function given to ``torch.compile``, and so is each dynamics update (eq. (10), its
gradient, the clipping and the Adam step): inductor fuses the elementwise work of the
forward pass, the backward pass and Adam into a few loops around the matrix products.

The math is the eager path's: the same loss functions of ``SVGAgent`` (so the paper's
equations in ``agents.objectives``), gradients by ``torch.autograd.grad`` with respect to the
same parameters, and ``adam_step``, which is ``torch.optim.Adam``'s update written with
tensor operations a compiler can trace, on the optimisers' own state tensors (so state
dicts and checkpoints are unchanged). tests/test_fast_path.py checks the losses and
parameters against the plain path's. Random draws inside a compiled program are PyTorch's
own, from torch's generator in the eager order (``inductor_options``), so the compiled
update draws the eager update's noise.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from agents.compile import fallback_line
from agents.normalizer import normalized
from agents.optim import one_plain_adam_group
from agents.replay import ReplayBuffer
from agents.thin_products import ThinProducts
from agents.transfer import to_device

# the agent: an agents.agent.SVGAgent, which imports this module (so not imported here)
SVGAgent = Any


def _dynamo_settings() -> Any:
    """What torch.compile must be allowed to trace here: autograd.grad inside the program,
    and the GRU module whose weights the dynamics model's written-out cell reads."""
    return torch._dynamo.config.patch(trace_autograd_ops=True, allow_rnn=True)  # noqa: SLF001 - its settings


def call_traced_with_settings(program: Callable, *args: Any) -> Any:
    """``program(*args)``, with ``_dynamo_settings`` only when it must trace.

    The settings matter only while torch.compile traces; entering and leaving them at every
    call cost about 70 microseconds of a 2.1 ms ``sac`` update (docs/performance.md). So a
    call first runs without them. Where the program must be traced (its first call, or a
    guard that no longer holds), the trace stops at ``autograd.grad`` or at the GRU with
    ``torch._dynamo.exc.Unsupported`` before any of the program has run (``fullgraph``), and
    the call is made again with the settings."""
    try:
        return program(*args)
    except torch._dynamo.exc.Unsupported:  # noqa: SLF001 - the error of a trace that needs the settings
        with _dynamo_settings():
            return program(*args)


@torch.no_grad()
def adam_step(optimizer: torch.optim.Adam, grads: Sequence[torch.Tensor]) -> None:
    """One step of ``optimizer`` (one parameter group, no amsgrad) with ``grads``, in place
    on its parameters and on its state tensors (``exp_avg``, ``exp_avg_sq``, ``step``), as
    ``torch.optim.Adam`` computes it (Kingma and Ba 2015, Algorithm 1, with PyTorch's
    placement of epsilon and its L2 weight decay):

        m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
        p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).

    The state must exist (the optimiser has stepped once)."""
    group = optimizer.param_groups[0]
    beta1, beta2 = group["betas"]
    lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
    for param, grad in zip(group["params"], grads):
        state = optimizer.state[param]
        exp_avg, exp_avg_sq, step = state["exp_avg"], state["exp_avg_sq"], state["step"]
        if weight_decay:
            grad = grad + weight_decay * param
        step.add_(1)
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denominator = exp_avg_sq.sqrt() / (1 - beta2**step).sqrt() + eps
        param.sub_(lr / (1 - beta1**step) * exp_avg / denominator)


def adam_ready(optimizer: torch.optim.Adam) -> bool:
    """Whether ``adam_step`` can step ``optimizer``: the plain case, its state created."""
    return one_plain_adam_group(optimizer) and all(
        p in optimizer.state and "exp_avg" in optimizer.state[p] for p in optimizer.param_groups[0]["params"]
    )


def inductor_options(device: torch.device) -> dict[str, str | int | bool | Callable]:
    """Inductor's settings for the update programs, measured at the quick preset on a CPU
    (docs/performance.md, "The whole update compiled"):

    - ``fallback_random``: random draws by PyTorch's own kernels from torch's generator, in
      the eager order, so a compiled update draws the eager update's noise (the same run to
      float rounding, and the seed's stream is unchanged when a run falls back to eager).
      On a CPU it is also faster than inductor's generated random numbers.
    - ``cpp_wrapper`` (CPU only): the program that calls the kernels and matrix products is
      C++, not Python; an update at these sizes makes hundreds of such calls.
    - ``post_grad_custom_post_pass`` (CPU only): ``agents.thin_products.ThinProducts``, the
      matrix products with a dimension of one computed in inductor's fused loops instead
      of by MKL (about 40 microseconds each there)."""
    options: dict[str, str | int | bool | Callable] = {"fallback_random": True}
    if device.type == "cpu":
        options["cpp_wrapper"] = True
        options["post_grad_custom_post_pass"] = ThinProducts()
    return options


def _compiled_for_one_agent(owner: WholeUpdate, method: Callable) -> Callable:
    """``method`` of ``owner`` through torch.compile, on a copy of its code: torch.compile
    keeps its compiled programs per code object and recompiles for each new agent, up to a
    limit (8) past which it refuses; several agents in one process (a search's trials) would
    reach it. A copy per agent keeps each agent's programs apart."""
    code = method.__code__.replace(co_name=f"{method.__name__}_{id(owner):x}")
    copy = types.FunctionType(code, method.__globals__, code.co_name, method.__defaults__, method.__closure__)
    options = inductor_options(owner.agent.device)
    return functools.partial(torch.compile(copy, fullgraph=True, dynamic=False, options=options), owner)


class WholeUpdate:
    """The agent's single-step and dynamics updates as compiled programs.

    ``single_step`` and ``dynamics_step`` return the update's metrics (tensors), or None when
    the caller must run the eager update instead: before every optimiser has stepped once
    (the first update creates Adam's state eagerly), and for good after a compilation failed
    (one line through ``warn``; the run goes on eagerly, with the same math)."""

    def __init__(self, agent: SVGAgent, warn: Callable[[str], None], mode: str = "update") -> None:
        self.agent = agent
        self.warn = warn
        self.mode = mode  # as the fall-back line names it: "update", or "auto" that chose it
        self.failed = False
        self.compiled_runs = 0  # updates the compiled programs ran (the rest ran eagerly)
        self._single_step = _compiled_for_one_agent(self, WholeUpdate._single_step_program)
        self._dynamics_step = _compiled_for_one_agent(self, WholeUpdate._dynamics_step_program)

    def _ready(self) -> bool:
        return not self.failed and all(adam_ready(s.optimizer) for s in self.agent.steppers.values())

    def _run(self, program: Callable, *args: Any) -> dict[str, torch.Tensor] | None:
        if not self._ready() or _get_current_dispatch_mode() is not None:
            # a dispatch mode (FLOP counting, `harness bench`) sees each eager operation;
            # torch.compile does not trace under one
            return None
        try:
            metrics = call_traced_with_settings(program, *args)
        except Exception as error:  # noqa: BLE001 - any compiler failure: fall back to eager
            self.failed = True
            self.warn(fallback_line(self.mode, error))
            return None
        self.compiled_runs += 1
        return metrics

    def single_step(
        self,
        replay: ReplayBuffer,
        indices: np.ndarray,
        target_entropy: float,
        horizon: int,
        actor_step: bool,
        target_step: bool,
    ) -> dict[str, torch.Tensor] | None:
        """Algorithm 1's single-step update on the transitions in the replay's slots
        ``indices``: what ``update_actor_and_temperature`` (if ``actor_step``),
        ``update_critic``, ``update_reward_and_termination`` (with a model) and the target
        average (if ``target_step``) do, in that order. Where the replay stores tensors on
        the agent's device the program gathers the batch from them itself (one fused loop
        instead of five indexing calls); otherwise it is given the gathered rows."""
        agent = self.agent
        stored = replay.stored_tensors()
        if stored is not None and stored[0].device == agent.device:
            rows, slots = stored, to_device(indices, agent.device, np.int64)
        else:
            batch = replay.batch_at(indices)
            fields = (batch.obs, batch.action, batch.reward, batch.next_obs, batch.terminated)
            rows = tuple(torch.as_tensor(x, dtype=torch.float32, device=agent.device) for x in fields)
            slots = None
        mean, std = agent.normalizer.tensors(agent.device, torch.float32)
        entropy = torch.full((), target_entropy, device=agent.device)
        return self._run(self._single_step, rows, slots, mean, std, entropy, horizon, actor_step, target_step)

    def dynamics_step(self, states: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """One dynamics update on normalised sequences: what ``update_dynamics`` does after
        sampling them."""
        return self._run(self._dynamics_step, states, actions)

    def _single_step_program(
        self,
        rows: tuple[torch.Tensor, ...],
        slots: torch.Tensor | None,
        mean: torch.Tensor,
        std: torch.Tensor,
        target_entropy: torch.Tensor,
        horizon: int,
        actor_step: bool,
        target_step: bool,
    ) -> dict[str, torch.Tensor]:
        agent = self.agent
        if slots is not None:  # the replay's storage: the batch is the rows in these slots
            rows = tuple(row[slots] for row in rows)
        raw_obs, action, reward, raw_next_obs, terminated = rows
        obs, next_obs = normalized(raw_obs, mean, std), normalized(raw_next_obs, mean, std)
        metrics: dict[str, torch.Tensor] = {}
        if actor_step:
            actor_loss, alpha_loss, entropy = agent.actor_and_temperature_losses(obs, horizon, target_entropy)
            grads = torch.autograd.grad(actor_loss + alpha_loss, agent.actor_parameters)
            actor_count = len(agent.actor_optimizer.param_groups[0]["params"])
            adam_step(agent.actor_optimizer, grads[:actor_count])
            adam_step(agent.temperature_optimizer, grads[actor_count:])
            metrics.update(
                actor_loss=actor_loss.detach(),
                alpha_loss=alpha_loss.detach(),
                alpha=agent.alpha.detach(),
                entropy=entropy,
            )
        critic_loss = agent.critic_loss_of_batch(obs, action, reward, next_obs, terminated)
        critic_parameters = agent.critic_optimizer.param_groups[0]["params"]
        adam_step(agent.critic_optimizer, torch.autograd.grad(critic_loss, critic_parameters))
        metrics["critic_loss"] = critic_loss.detach()
        if agent.model is not None:
            loss_r, loss_d = agent.reward_and_termination_losses(obs, action, reward, terminated)
            reward_parameters = agent.reward_optimizer.param_groups[0]["params"]
            termination_parameters = agent.termination_optimizer.param_groups[0]["params"]
            grads = torch.autograd.grad(loss_r + loss_d, [*reward_parameters, *termination_parameters])
            adam_step(agent.reward_optimizer, grads[: len(reward_parameters)])
            adam_step(agent.termination_optimizer, grads[len(reward_parameters) :])
            metrics.update(reward_loss=loss_r.detach(), termination_loss=loss_d.detach())
        if target_step:
            with torch.no_grad():
                torch._foreach_lerp_(
                    list(agent.critic_target.parameters()), list(agent.critic.parameters()), agent.config.critic_tau
                )
        return metrics

    def _dynamics_step_program(self, states: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        agent = self.agent
        assert agent.model is not None
        loss = agent.dynamics_loss_of_sequences(states, actions)
        parameters = agent.dynamics_optimizer.param_groups[0]["params"]
        grads = torch.autograd.grad(loss, parameters)
        grads, norms, clipped = agent.model.dynamics.clipped_gradients(
            list(grads), agent.config.dynamics_grad_clip, actions.shape[1]
        )
        adam_step(agent.dynamics_optimizer, grads)
        return {
            "dynamics_loss": loss.detach(),
            "dynamics_grad_norm": norms.mean(),
            "dynamics_clipped": clipped.float().mean(),
        }
