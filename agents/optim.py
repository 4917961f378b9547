"""One network's Adam step as one call of PyTorch's fused Adam kernel, without the
per-step Python of ``torch.optim`` (the fast path's ``fused_optimizers``)."""

from __future__ import annotations

from typing import cast

import torch


def one_plain_adam_group(optimizer: torch.optim.Adam) -> bool:
    """One parameter group of Adam's plain update: no amsgrad, maximize or decoupled
    weight decay (what the steppers that bypass ``Adam.step`` compute)."""
    group = optimizer.param_groups[0]
    return (
        len(optimizer.param_groups) == 1
        and not group["amsgrad"]
        and not group["maximize"]
        and not group.get("decoupled_weight_decay", False)
    )


class DirectFusedAdam:
    """Steps a ``torch.optim.Adam(..., fused=True)`` of one parameter group by calling its
    kernel directly: ``torch._fused_adam_`` over every parameter of the network at once,
    after ``torch._foreach_add_`` of the step counters, which is what ``Adam.step`` does on
    the fused path. The optimiser keeps its state (``state_dict`` and checkpoints are
    unchanged); the first step, and the first after ``reset`` (a loaded state dict), goes
    through ``Adam.step`` itself, which creates the state tensors this class then uses.

    Only the plain case is taken directly (one group, no amsgrad, maximize, weight decay
    decoupling, capturable or differentiable, every parameter with a gradient); anything
    else is handed to ``Adam.step``. The parameters, the gradients and the two moments
    come out exactly as ``Adam.step`` leaves them (tests/test_fast_path.py)."""

    def __init__(self, optimizer: torch.optim.Adam) -> None:
        self.optimizer = optimizer
        group = optimizer.param_groups[0]
        self.params: list[torch.Tensor] = list(group["params"])
        self.direct = (
            one_plain_adam_group(optimizer)
            and group.get("fused") is True
            and not group["capturable"]
            and not group["differentiable"]
        )
        self._state: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] | None = None

    def reset(self) -> None:
        """Forget the state tensors (after ``optimizer.load_state_dict`` replaced them)."""
        self._state = None

    def zero_grad(self) -> None:
        """Every gradient to None, as ``zero_grad(set_to_none=True)``."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if not self.direct or self._state is None or any(g is None for g in grads):
            self.optimizer.step()
            if self.direct and all(p in self.optimizer.state for p in self.params):
                state = [self.optimizer.state[p] for p in self.params]
                self._state = (
                    [s["exp_avg"] for s in state],
                    [s["exp_avg_sq"] for s in state],
                    [s["step"] for s in state],
                )
            return
        exp_avgs, exp_avg_sqs, steps = self._state
        group = self.optimizer.param_groups[0]
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, 1)
        present = cast(list[torch.Tensor], grads)  # none is None: checked above
        torch._fused_adam_(
            self.params,
            present,
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=float(beta1),
            beta2=float(beta2),
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )
