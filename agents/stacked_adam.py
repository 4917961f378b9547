"""Adam over seed-stacked parameters: one step for all seeds, which is S independent Adams.

Adam is elementwise: the moments of an element depend on that element's gradients alone,
so stepping stacked tensors steps every seed's slice as its own Adam would. The one
per-seed quantity is the step count t of the bias corrections, kept as a vector (S,) so a
seed can skip a step (a seed with no stored sequence skips its dynamics update, as a lone
agent does). The state of one seed reads and writes as a lone ``torch.optim.Adam`` state
dict, so a seed's checkpoint is a lone run's.

While every seed has taken the same number of steps (always, unless a seed skipped one), a
step is the kernel the lone twin's optimiser runs: with ``fused`` (the lone agent's
``fast_path.fused_optimizers``) PyTorch's fused Adam, one kernel over every stacked tensor,
instead of the eight multi-tensor passes the per-seed step counts need.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class StackedAdam:
    """Adam (Kingma and Ba, 2015; ``torch.optim.Adam``'s update, no weight decay) over
    parameters whose first dimension is the seed. ``fused``: the lone agent's optimiser
    setting (``fast_path.fused_optimizers``), which a seed's state dict records and whose
    kernel the steps run while the seeds' step counts agree."""

    def __init__(
        self,
        parameters: Iterable[torch.Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        fused: bool = False,
    ) -> None:
        self.params = list(parameters)
        self.lr, self.betas, self.eps, self.fused = lr, betas, eps, fused
        seeds = self.params[0].shape[0]
        device = self.params[0].device
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.steps = torch.zeros(seeds, dtype=torch.float64, device=device)  # t of each seed
        # every seed's t while they all agree (read on the host, no device sync); None once not
        self.shared_step: int | None = 0
        self._fused_step = torch.zeros((), dtype=torch.float32, device=device)  # the fused kernel's t
        # a seed's (S,) factor broadcast against each parameter's shape
        self._views = [(-1,) + (1,) * (p.dim() - 1) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, seeds: torch.Tensor | None = None) -> None:
        """One Adam step of every seed, or only of the seeds where the bool mask ``seeds``
        (S,) is true: the others' parameters, moments and step counts stay as they were."""
        if seeds is not None and not bool(seeds.all()):
            frozen = ~seeds
            kept = [t[frozen].clone() for t in (*self.params, *self.exp_avgs, *self.exp_avg_sqs)]
            self._step_all()
            for t, old in zip((*self.params, *self.exp_avgs, *self.exp_avg_sqs), kept):
                t[frozen] = old
            self.steps -= frozen.to(self.steps.dtype)
            self.shared_step = None
            return
        if self.fused and self.shared_step is not None:
            self._step_fused(self.shared_step + 1)
        else:
            self._step_all()
        if self.shared_step is not None:
            self.shared_step += 1

    def _gradients(self) -> list[torch.Tensor]:
        grads = []
        for p in self.params:
            if p.grad is None:
                raise RuntimeError(
                    "StackedAdam.step: a parameter has no gradient (every stacked parameter takes part in its loss)"
                )
            grads.append(p.grad)
        return grads

    def _step_fused(self, t: int) -> None:
        """Step t of every seed as ``torch.optim.Adam(fused=True)`` steps each: its kernel,
        with the shared step count, over the stacked tensors (the same elementwise math)."""
        grads = self._gradients()
        self.steps += 1
        self._fused_step.fill_(float(t))
        beta1, beta2 = self.betas
        torch._fused_adam_(  # the kernel Adam(fused=True).step calls (agents.optim)
            self.params,
            grads,
            self.exp_avgs,
            self.exp_avg_sqs,
            [],
            [self._fused_step] * len(self.params),
            amsgrad=False,
            lr=self.lr,
            beta1=float(beta1),
            beta2=float(beta2),
            weight_decay=0.0,
            eps=self.eps,
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )

    def _step_all(self) -> None:
        beta1, beta2 = self.betas
        grads = self._gradients()
        self.steps += 1
        torch._foreach_lerp_(self.exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sqs, beta2)
        torch._foreach_addcmul_(self.exp_avg_sqs, grads, grads, value=1 - beta2)
        # torch.optim.Adam's formula, with t per seed (bias corrections in float64, as Python floats there)
        bias_correction1 = 1 - beta1**self.steps
        bias_correction2_sqrt = (1 - beta2**self.steps).sqrt()
        dtype = self.params[0].dtype
        step_size = (self.lr / bias_correction1).to(dtype)
        correction = bias_correction2_sqrt.to(dtype)
        denominators = torch._foreach_sqrt(self.exp_avg_sqs)  # noqa: SLF001 - the foreach kernels torch.optim.Adam uses
        torch._foreach_div_(denominators, [correction.view(v) for v in self._views])
        torch._foreach_add_(denominators, self.eps)
        updates = torch._foreach_div(self.exp_avgs, denominators)  # noqa: SLF001 - as above
        torch._foreach_mul_(updates, [step_size.view(v) for v in self._views])
        torch._foreach_sub_(self.params, updates)

    # ------------------------------------------------------------ one seed, as a lone Adam

    def seed_state_dict(self, seed: int) -> dict:
        """Seed ``seed``'s state as ``torch.optim.Adam(...).state_dict()`` gives it (the step
        count a float32 scalar: on the parameters' device when fused, else on the CPU)."""
        group = {
            "lr": self.lr,
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": 0,
            "amsgrad": False,
            "maximize": False,
            "foreach": None,
            "capturable": False,
            "differentiable": False,
            "fused": True if self.fused else None,
            "decoupled_weight_decay": False,
            "params": list(range(len(self.params))),
        }
        t = float(self.steps[seed])
        state = {}
        if t > 0:
            step_device = self.params[0].device if self.fused else torch.device("cpu")
            for i, (m, v) in enumerate(zip(self.exp_avgs, self.exp_avg_sqs)):
                state[i] = {
                    "step": torch.tensor(t, dtype=torch.float32, device=step_device),
                    "exp_avg": m[seed].clone(),
                    "exp_avg_sq": v[seed].clone(),
                }
        return {"state": state, "param_groups": [group]}

    @torch.no_grad()
    def load_seed_state_dict(self, seed: int, state_dict: dict) -> None:
        """Seed ``seed``'s state from a lone Adam state dict (of parameters of the same shapes)."""
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self.params):
            raise ValueError(
                f"an Adam state of {sum(len(g['params']) for g in groups)} parameters does not fit {len(self.params)}"
            )
        state = state_dict["state"]
        if not state:
            self.steps[seed] = 0
            for m, v in zip(self.exp_avgs, self.exp_avg_sqs):
                m[seed].zero_()
                v[seed].zero_()
            self._share_step_if_agreed()
            return
        steps = {float(entry["step"]) for entry in state.values()}
        if len(steps) != 1 or len(state) != len(self.params):
            raise ValueError("an Adam state whose parameters took different numbers of steps cannot be stacked")
        self.steps[seed] = steps.pop()
        for i, (m, v) in enumerate(zip(self.exp_avgs, self.exp_avg_sqs)):
            m[seed].copy_(state[i]["exp_avg"])
            v[seed].copy_(state[i]["exp_avg_sq"])
        self._share_step_if_agreed()

    def _share_step_if_agreed(self) -> None:
        """After a seed's state was loaded: the seeds' shared step count, if they agree."""
        counts = set(self.steps.tolist())
        self.shared_step = int(counts.pop()) if len(counts) == 1 else None
