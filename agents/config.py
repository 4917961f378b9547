"""Typed configuration of the agent. Defaults are the paper's Table 3; presets change them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class EntropyScheduleConfig:
    """Target-entropy schedule of eq. (14). ``None`` fields are filled from the task."""

    init: Optional[float] = None
    final: Optional[float] = None
    decay: Optional[float] = None  # beta of eq. (14); None means a constant target (init)


COMPILE_MODES = ("auto", "off", "compile", "cudagraphs", "update")  # agent.compile
MVE_HORIZON_COUNTINGS = ("paper", "authors-code")  # agent.mve_horizon_counting


@dataclass
class FastPathConfig:
    """The fast update path: the same math as the plain path (every option off), less
    work and no host synchronisation per update. Each option is tested against the plain
    path for the same losses and parameters (tests/test_fast_path.py)."""

    # critic heads and MLP-ensemble members as one batched matmul (stacked weights), not a
    # Python loop; an ensemble rollout on the CPU evaluates only each rollout's own member
    batched_ensembles: bool = True
    # the GRU cell written out, its first step (h = 0) without the W_hh h matmuls
    gru_zero_state_step: bool = True
    # update metrics stay tensors on the device and are read at log intervals (a train.csv
    # row, an evaluation); the divergence check reads one flag per metric there
    deferred_metrics: bool = True
    # fused Adam (one kernel per optimiser step, called directly: agents.optim) and the
    # target-critic update as one multi-tensor lerp; the plain path steps and lerps
    # parameter by parameter through torch.optim
    fused_optimizers: bool = True
    # networks evaluated by functional calls (one module call per network, not one per
    # layer), the GRU's r and z gates as one sigmoid, and acting without computing the
    # log-probability it discards: fewer kernels and less Python per update and per step
    lean_calls: bool = True
    # replay storage as tensors on the agent's device: sampled batches are gathered there
    # (indices drawn on the host with the same RNG stream, so no host-device sync)
    replay_on_device: bool = True


@dataclass
class AgentConfig:
    """Every knob of SAC / SAC-SVG(H). Paper values (Table 3) unless a comment says otherwise."""

    name: str = "sac-svg"
    # H = number of model transitions in the actor's value expansion (eq. 3, 9); None = task's.
    horizon: Optional[int] = None
    # Where the H-step model expansion is used (section 5.1.2): in the actor (SVG(H), eq. 9)
    # and/or in the critic target (MVE, Feinberg et al. 2018). Neither: model-free SAC, and
    # no dynamics, reward or termination model is built or trained.
    actor_expansion: bool = True
    critic_expansion: bool = False
    # What the MVE critic's target is at agent.horizon = H (docs/fidelity.md, "Ablation
    # agents"): "paper", Q_{0:H} of eq. (3), the real transition and H - 1 model transitions
    # (H = 1 is SAC's target, eq. 5; so is H = 0), so actor and critic both sum H rewards from
    # their first state; "authors-code", Q_{0:H+1}, H model transitions after the real one,
    # one step beyond the SVG(H) actor's V_{0:H}, as the authors' code counts.
    mve_horizon_counting: str = "paper"
    # "gru" (section 4.2) or "mlp-ensemble" (the architecture of Fig. 3: ensemble_size MLPs
    # trained on one-step transitions, one member sampled per rollout)
    dynamics: str = "gru"
    ensemble_size: int = 5
    discount: float = 0.99
    # actor and critic MLPs
    hidden_dim: int = 512
    hidden_depth: int = 2
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    init_temperature: float = 0.1
    actor_lr: float = 1e-4
    critic_lr: float = 1e-4
    temperature_lr: float = 5e-4
    critic_tau: float = 0.005
    critic_target_update_every: int = 1
    actor_update_every: int = 1
    # world model (section 4.2)
    model_hidden_dim: int = 512
    model_hidden_depth: int = 2
    gru_hidden_dim: int = 512
    gru_layers: int = 2
    model_lr: float = 1e-3
    # "mlp" (paper) or "linear" (authors' code: one linear layer)
    dynamics_decoder: str = "mlp"
    # Authors' code feeds the predicted state to the next GRU step detached; the paper does not
    # say, and eq. (10) differentiates the whole unroll, so by default we do not detach.
    dynamics_detach_predicted_state: bool = False
    # Paper silent; the authors' code clips at 1.0 the gradient norm of its dynamics loss, a
    # mean over steps, batch and state dims. Eq. (10) sums steps and dims, so this is the norm
    # for the mean-reduced loss: eq. (10)'s gradient is clipped at this x T x D
    # (agents.dynamics.clip_summed_loss_gradient; per member for the ensemble). 0 disables.
    dynamics_grad_clip: float = 1.0
    # Authors' code weights eq. (13) with pos_weight = negatives / positives; paper: plain NLL.
    termination_pos_weight: bool = False
    # Authors' code averages the H+1 terms of eq. (9) (divides by H+1); paper: plain sum.
    actor_objective_average: bool = False
    # schedule (Algorithm 1)
    num_step_updates: int = 1
    num_seq_updates: int = 4
    step_batch_size: int = 512
    seq_batch_size: int = 1024
    replay_capacity: int = 1_000_000
    # The actor stays model-free (SVG(0) = SAC) for this many env steps (authors' code: 10k).
    model_free_actor_warmup_steps: int = 0
    # observation normaliser: std clamp (authors' code: [0.1, 10]; the paper is silent)
    obs_std_min: float = 0.1
    obs_std_max: float = 10.0
    target_entropy: EntropyScheduleConfig = field(default_factory=EntropyScheduleConfig)
    # "auto": CUDA when available, else CPU
    device: str = "auto"
    fast_path: FastPathConfig = field(default_factory=FastPathConfig)
    # "off", "compile" (torch.compile of the loss functions), "cudagraphs" (on CUDA,
    # torch.compile with CUDA graphs) or "update" (each whole update, its gradients and Adam
    # steps included, as one compiled program: agents.whole_update); one warning line and
    # "off" where that cannot run. "auto": "update" where it was measured to pay (a run of
    # at least agents.compile.AUTO_UPDATE_MIN_STEPS env steps on a CPU with a C++
    # compiler), else "off" (agents.compile.choose_compile_mode)
    compile: str = "auto"
