"""The fast update path computes the plain path's math: every ``agent.fast_path`` option,
and ``agent.compile``, gives the same losses and parameters after a few updates on the
same batches with the same noise."""

from __future__ import annotations

import copy
import dataclasses
import re

import numpy as np
import pytest
import torch

from agents import SVGAgent
from agents.compile import AUTO_UPDATE_MIN_STEPS, choose_compile_mode
from agents.config import AgentConfig, EntropyScheduleConfig, FastPathConfig
from agents.dynamics import GRUDynamics, MLPEnsembleDynamics
from agents.metrics import DivergenceError, MetricSums
from agents.networks import MLP, EnsembleMLP
from agents.normalizer import RunningNormalizer
from agents.optim import DirectFusedAdam
from agents.replay import ReplayBuffer
from agents.whole_update import call_traced_with_settings

OBS, ACT = 5, 2
PLAIN = FastPathConfig(**{f.name: False for f in dataclasses.fields(FastPathConfig)})
OPTIONS = [f.name for f in dataclasses.fields(FastPathConfig)]

# (name, AgentConfig settings): SAC, SAC-SVG(2) with the GRU (paper and authors' code
# settings), the MLP-ensemble ablation, MVE in the critic (with the actor's expansion and the
# paper's counting: 2 critic pairs; model-free actor and the code's counting: 3 pairs)
AGENTS = {
    "sac": dict(horizon=0, actor_expansion=False),
    "sac-svg": dict(horizon=2),
    "sac-svg-authors": dict(
        horizon=2,
        dynamics_decoder="linear",
        dynamics_detach_predicted_state=True,
        termination_pos_weight=True,
        actor_objective_average=True,
        hidden_depth=3,
    ),
    "sac-svg-ensemble": dict(horizon=2, dynamics="mlp-ensemble", ensemble_size=3),
    "sac-svg-mve": dict(horizon=2, critic_expansion=True),
    "mve-authors": dict(horizon=2, actor_expansion=False, critic_expansion=True, mve_horizon_counting="authors-code"),
}


def tiny_config(agent: str, fast_path: FastPathConfig, **extra) -> AgentConfig:
    settings = dict(
        hidden_dim=32,
        hidden_depth=2,
        model_hidden_dim=32,
        gru_hidden_dim=32,
        step_batch_size=16,
        seq_batch_size=16,
        num_seq_updates=2,
        replay_capacity=2000,
        device="cpu",
        target_entropy=EntropyScheduleConfig(-1.0, -2.0, 1.0),
        fast_path=fast_path,
    )
    return AgentConfig(**{**settings, **AGENTS[agent], **extra})


def run_updates(
    config: AgentConfig, updates: int = 4, warn=None, agents: list | None = None, total_steps: int = 1000
) -> tuple[list[dict[str, float]], dict]:
    """A freshly seeded agent after ``updates`` updates on a seeded replay: the losses of
    every update and the final parameters of every network. ``agents`` receives the agent."""
    torch.manual_seed(0)
    agent = SVGAgent(OBS, ACT, config, total_steps=total_steps, seed=1, warn=warn)
    if agents is not None:
        agents.append(agent)
    device = agent.device if config.fast_path.replay_on_device else None
    replay = ReplayBuffer(OBS, ACT, config.replay_capacity, device)
    rng = np.random.default_rng(2)
    for t in range(400):
        obs = rng.normal(size=OBS)
        replay.add(
            obs,
            rng.uniform(-1, 1, ACT),
            float(rng.normal()),
            0.9 * obs + 0.1 * rng.normal(size=OBS),
            t % 97 == 96,
            t % 50 == 49,
        )
        agent.observe(obs)
    losses = []
    for _ in range(updates):
        torch.manual_seed(3 + len(losses))  # the same noise for the same draws
        losses.append({k: float(v) for k, v in agent.update(replay, 500).items()})
    state = agent.state_dict()
    parameters = {
        name: state[name] for name in ("actor", "critic", "critic_target", "log_alpha", "model") if name in state
    }
    return losses, parameters


def assert_same(plain: tuple, fast: tuple) -> None:
    (plain_losses, plain_parameters), (fast_losses, fast_parameters) = plain, fast
    for before, after in zip(plain_losses, fast_losses):
        assert before.keys() == after.keys()
        for name in before:
            assert after[name] == pytest.approx(before[name], rel=1e-4, abs=1e-5), name
    torch.testing.assert_close(fast_parameters, plain_parameters, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def plain_results():
    return {agent: run_updates(tiny_config(agent, PLAIN)) for agent in AGENTS}


@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("option", OPTIONS + ["all"])
def test_each_fast_path_option_gives_the_plain_losses_and_parameters(agent, option, plain_results):
    fast = FastPathConfig() if option == "all" else dataclasses.replace(PLAIN, **{option: True})
    result = run_updates(tiny_config(agent, fast))
    assert_same(plain_results[agent], result)
    # and the updates did learn: the parameters moved away from their initial values
    initial = run_updates(tiny_config(agent, fast), updates=0)[1]
    assert not torch.equal(result[1]["actor"]["trunk.0.weight"], initial["actor"]["trunk.0.weight"])


def test_the_defaults_are_the_fast_path():
    assert all(getattr(AgentConfig().fast_path, option) for option in OPTIONS)
    assert AgentConfig().compile == "auto"


CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("mode", "device", "steps", "compiler", "chosen", "reason"),
    [
        ("auto", CPU, AUTO_UPDATE_MIN_STEPS, "g++", "update", "agent.compile=auto: 50000 env steps on a CPU"),
        ("auto", CPU, AUTO_UPDATE_MIN_STEPS - 1, "g++", "off", "49999 env steps, too few to pay for compiling"),
        ("auto", CPU, 10**6, None, "off", r"no C\+\+ compiler \(g\+\+\) found"),
        ("auto", CUDA, 10**6, "g++", "off", "on cuda: compiling pays only on a CPU"),
        ("off", CPU, 10**6, "g++", "off", "^agent.compile$"),
        ("update", CPU, 10, None, "update", "^agent.compile$"),  # asked for: tried, and falls back if it fails
    ],
)
def test_auto_compiles_the_update_of_long_cpu_runs(mode, device, steps, compiler, chosen, reason, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("agents.compile.shutil.which", lambda name: f"/usr/bin/{name}" if name == compiler else None)
    choice = choose_compile_mode(mode, device, steps)
    assert choice.mode == chosen
    assert re.search(reason, choice.reason)


def test_auto_uses_the_compiler_named_by_cxx(monkeypatch):
    monkeypatch.setenv("CXX", "clang++")
    monkeypatch.setattr("agents.compile.shutil.which", lambda name: "/usr/bin/clang++" if name == "clang++" else None)
    assert choose_compile_mode("auto", CPU, 10**6).mode == "update"
    monkeypatch.setenv("CXX", "icpx")
    assert choose_compile_mode("auto", CPU, 10**6).reason == "agent.compile=auto: no C++ compiler (icpx) found"


def test_auto_builds_a_short_run_eagerly_and_a_long_one_compiled(monkeypatch):
    monkeypatch.setattr("agents.compile.shutil.which", lambda name: f"/usr/bin/{name}")
    short = SVGAgent(OBS, ACT, tiny_config("sac", PLAIN), AUTO_UPDATE_MIN_STEPS - 1, 0)
    long = SVGAgent(OBS, ACT, tiny_config("sac", PLAIN), AUTO_UPDATE_MIN_STEPS, 0)
    assert (short.compile_choice.mode, short.whole_update) == ("off", None)
    assert long.compile_choice.mode == "update" and long.whole_update is not None


def test_the_plain_and_fast_paths_differ_in_how_they_compute():
    """The options are not no-ops: each changes the code that runs (and not the math)."""
    plain = SVGAgent(OBS, ACT, tiny_config("sac-svg-ensemble", PLAIN), 1000, 0)
    fast = SVGAgent(OBS, ACT, tiny_config("sac-svg-ensemble", FastPathConfig()), 1000, 0)
    assert not plain.critic.batched and fast.critic.batched
    assert not plain.model.dynamics.batched and fast.model.dynamics.batched
    assert plain.actor_optimizer.defaults["fused"] is None and fast.actor_optimizer.defaults["fused"] is True
    assert not plain.steppers["actor"].direct and fast.steppers["actor"].direct
    assert not plain.critic.heads.lean and fast.critic.heads.lean
    gru = SVGAgent(OBS, ACT, tiny_config("sac-svg", FastPathConfig()), 1000, 0).model.dynamics
    assert gru.initial_hidden(torch.zeros(3, OBS)) is None  # h_1 = 0 skipped, not multiplied


def test_the_gru_zero_state_step_equals_torch_gru_from_a_zero_state():
    torch.manual_seed(0)
    model = GRUDynamics(OBS, ACT, 16, 1, 16, 2)
    x, u = torch.randn(7, OBS), torch.randn(7, 4, ACT)
    expected = model.unroll(x, u)
    model.fast_step = True
    torch.testing.assert_close(model.unroll(x, u), expected, rtol=1e-5, atol=1e-6)


def test_the_ensemble_rollout_evaluates_only_each_rollouts_member():
    torch.manual_seed(0)
    ensemble = MLPEnsembleDynamics(OBS, ACT, 16, 2, members=4, batched=True)
    x, u = torch.randn(50, OBS), torch.randn(50, ACT)
    member = torch.randint(0, 4, (50,))
    everyone = ensemble.member_deltas(x, u)[member, torch.arange(50)]
    torch.testing.assert_close(ensemble.own_member_deltas(x, u, member), everyone)


def test_device_replay_holds_and_samples_the_same_transitions():
    rng = np.random.default_rng(0)
    host, device = ReplayBuffer(3, 1, 64), ReplayBuffer(3, 1, 64, device="cpu")
    for t in range(100):  # wraps the ring
        row = (
            rng.normal(size=3),
            rng.uniform(-1, 1, 1),
            float(rng.normal()),
            rng.normal(size=3),
            t % 13 == 12,
            t % 10 == 9,
        )
        host.add(*row)
        device.add(*row)
    a, b = host.sample(32, np.random.default_rng(5)), device.sample(32, np.random.default_rng(5))
    assert isinstance(b.obs, torch.Tensor)
    for name in ("obs", "action", "reward", "next_obs", "terminated"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name).numpy())
    a, b = (
        host.sample_sequences(16, 3, np.random.default_rng(6)),
        device.sample_sequences(16, 3, np.random.default_rng(6)),
    )
    np.testing.assert_array_equal(a.states, b.states.numpy())
    np.testing.assert_array_equal(a.actions, b.actions.numpy())
    restored = ReplayBuffer(3, 1, 64, device="cpu")
    restored.load_state_dict(host.state_dict())
    np.testing.assert_array_equal(
        restored.sample(8, np.random.default_rng(1)).obs.numpy(), host.sample(8, np.random.default_rng(1)).obs
    )


# ------------------------------------------------------------------ deferred metrics


def test_deferred_metrics_report_the_first_divergence_at_the_log_interval():
    sums = MetricSums()
    sums.add({"critic_loss": torch.tensor(1.0), "actor_loss": torch.tensor(2.0)}, step=10)
    sums.add({"critic_loss": torch.tensor(float("inf")), "actor_loss": torch.tensor(2.0)}, step=11)
    sums.add({"critic_loss": torch.tensor(float("nan")), "actor_loss": torch.tensor(float("nan"))}, step=12)
    with pytest.raises(DivergenceError) as raised:
        sums.read()
    assert (raised.value.loss, raised.value.step, raised.value.value) == ("critic_loss", 11, float("inf"))


def test_deferred_metrics_read_means_once_and_survive_a_checkpoint():
    sums = MetricSums()
    for step, value in enumerate([1.0, 2.0, 6.0]):
        sums.add({"critic_loss": torch.tensor(value), "target_entropy": -1.0}, step)
    state = sums.state_dict()
    assert state == {
        "metric_sums": {"critic_loss": 9.0, "target_entropy": -3.0},
        "metric_counts": {"critic_loss": 3, "target_entropy": 3},
    }
    restored = MetricSums()
    restored.load_state_dict(state)
    restored.add({"critic_loss": torch.tensor(3.0), "target_entropy": -1.0}, 3)
    assert restored.read() == {"critic_loss": 3.0, "target_entropy": -1.0}
    assert restored.read() == {}


def test_the_plain_path_raises_at_the_diverging_update_and_the_fast_path_does_not_wait():
    for fast_path, raises in ((PLAIN, True), (FastPathConfig(), False)):
        torch.manual_seed(0)
        agent = SVGAgent(OBS, ACT, tiny_config("sac", fast_path), 1000, 0)
        replay = ReplayBuffer(OBS, ACT, 100)
        for _ in range(50):
            replay.add(np.ones(OBS), np.zeros(ACT), float("nan"), np.ones(OBS), False, False)
        if raises:
            with pytest.raises(DivergenceError, match="critic_loss is nan at env step 7"):
                agent.update(replay, 7)
        else:
            metrics = agent.update(replay, 7)
            assert isinstance(metrics["critic_loss"], torch.Tensor)
            sums = MetricSums()
            sums.add(metrics, 7)
            with pytest.raises(DivergenceError, match="critic_loss is nan at env step 7"):
                sums.read()


# ------------------------------------------------------------------ agent.compile


def test_compile_mode_gives_the_plain_losses_and_parameters(plain_results):
    """torch.compile of the loss functions on the CPU (inductor), with eager RNG so the
    noise is the same draws."""
    import torch._inductor.config as inductor_config  # noqa: PLC0415 - inductor loads for this test only

    torch._dynamo.reset()
    lines = []
    with inductor_config.patch(fallback_random=True):
        result = run_updates(tiny_config("sac-svg", FastPathConfig(), compile="compile"), updates=3, warn=lines.append)
    assert lines == []  # it compiled: no fall-back
    plain = plain_results["sac-svg"]
    assert_same((plain[0][:3], run_updates(tiny_config("sac-svg", PLAIN), updates=3)[1]), result)


@pytest.mark.parametrize("agent", ["sac", "sac-svg", "sac-svg-ensemble", "mve-authors"])
def test_update_compile_mode_gives_the_plain_losses_and_parameters(agent, plain_results):
    """agent.compile=update: the single-step and dynamics updates as compiled programs give
    the plain path's losses and parameters; they draw the plain path's noise (PyTorch's own
    random kernels, in the eager order), with no setting changed here."""
    torch._dynamo.reset()
    lines: list[str] = []
    built: list[SVGAgent] = []
    result = run_updates(tiny_config(agent, FastPathConfig(), compile="update"), 3, lines.append, built)
    assert lines == []  # it compiled: no fall-back
    whole_update = built[0].whole_update
    assert whole_update is not None
    # every single-step and dynamics update but the first of each (eager: it creates Adam's
    # state) ran as a compiled program
    has_model = built[0].model is not None
    per_update = 1 + (tiny_config(agent, PLAIN).num_seq_updates if has_model else 0)
    assert whole_update.compiled_runs == 3 * per_update - (2 if has_model else 1)
    assert_same((plain_results[agent][0][:3], run_updates(tiny_config(agent, PLAIN), updates=3)[1]), result)


def test_update_compile_mode_on_a_host_replay_gives_the_plain_losses_and_parameters(plain_results):
    """With the replay in host memory (``replay_on_device=false``) the compiled program is
    given the gathered rows instead of gathering them from the storage itself."""
    torch._dynamo.reset()
    lines: list[str] = []
    built: list[SVGAgent] = []
    config = tiny_config("sac", FastPathConfig(replay_on_device=False), compile="update")
    result = run_updates(config, 3, lines.append, built)
    assert lines == [] and built[0].whole_update is not None and built[0].whole_update.compiled_runs == 2
    assert_same((plain_results["sac"][0][:3], run_updates(tiny_config("sac", PLAIN), updates=3)[1]), result)


def test_cudagraphs_on_the_cpu_falls_back_to_off_with_one_line(plain_results):
    lines = []
    result = run_updates(tiny_config("sac-svg", PLAIN, compile="cudagraphs"), warn=lines.append)
    assert len(lines) == 1 and "agent.compile=cudagraphs needs a CUDA device" in lines[0]
    assert_same(plain_results["sac-svg"], result)


def test_update_compile_mode_steps_the_state_a_checkpoint_loads():
    """A loaded state dict replaces the optimisers' state tensors: the compiled programs then
    step the loaded tensors, so two updates after loading a snapshot repeat the two that
    followed it (the noise is drawn from torch's generator, seeded alike)."""
    torch._dynamo.reset()
    built: list[SVGAgent] = []
    run_updates(tiny_config("sac", FastPathConfig(), compile="update"), updates=2, agents=built)
    agent = built[0]
    replay = ReplayBuffer(OBS, ACT, 100, agent.device)
    rng = np.random.default_rng(4)
    for t in range(100):
        replay.add(rng.normal(size=OBS), rng.uniform(-1, 1, ACT), 0.5, rng.normal(size=OBS), False, t % 50 == 49)

    def two_updates() -> dict:
        for seed in (5, 6):
            torch.manual_seed(seed)
            agent.update(replay, 500)
        return copy.deepcopy({k: agent.state_dict()[k] for k in ("actor", "critic", "log_alpha", "optimizers")})

    snapshot = copy.deepcopy(agent.state_dict())
    first = two_updates()
    agent.load_state_dict(snapshot)
    again = two_updates()
    assert agent.whole_update is not None and agent.whole_update.compiled_runs == 1 + 4
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    assert not torch.equal(first["actor"]["trunk.0.weight"], snapshot["actor"]["trunk.0.weight"])


def test_the_compiled_programs_enter_dynamos_settings_only_to_trace(monkeypatch):
    """The settings that let torch.compile trace autograd.grad are entered for the first
    call (a trace) and for a call whose guards fail (a new trace), not for the calls between:
    entering them costs about 70 microseconds a call."""
    import agents.whole_update as whole_update  # noqa: PLC0415 - its settings, counted

    entered = []
    settings = whole_update._dynamo_settings

    def counted():
        entered.append(True)
        return settings()

    monkeypatch.setattr(whole_update, "_dynamo_settings", counted)
    torch._dynamo.reset()

    def gradient(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad((weight * x).sum(), weight)[0]

    program = torch.compile(gradient, fullgraph=True, dynamic=False)
    weight = torch.ones(3, requires_grad=True)
    for x in (torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0])):
        torch.testing.assert_close(call_traced_with_settings(program, weight, x), x)
    assert len(entered) == 1  # the first call traced; the second ran the program as it was
    longer = torch.ones(4, requires_grad=True)  # a new shape: the guards fail, a new trace
    torch.testing.assert_close(call_traced_with_settings(program, longer, torch.arange(4.0)), torch.arange(4.0))
    assert len(entered) == 2
    with pytest.raises(torch._dynamo.exc.Unsupported):  # the trace needs them: they are what it adds
        program(torch.ones(5, requires_grad=True), torch.ones(5))


def failing_compile(message: str):
    """A stand-in for torch.compile whose programs raise RuntimeError(message) when called."""

    def broken_compile(fn, **kwargs):
        def compiled(*args):
            raise RuntimeError(message)

        return compiled

    return broken_compile


@pytest.mark.parametrize("mode", ["compile", "update", "auto"])
def test_a_failing_compilation_falls_back_to_off_with_one_line(mode, plain_results, monkeypatch):
    monkeypatch.setattr(torch, "compile", failing_compile("backend exploded\nwith a long traceback"))
    monkeypatch.setattr("agents.compile.shutil.which", lambda name: f"/usr/bin/{name}")
    lines = []
    # a run long enough for auto to compile its update: the line names auto, which chose it
    steps = AUTO_UPDATE_MIN_STEPS if mode == "auto" else 1000
    result = run_updates(tiny_config("sac-svg", PLAIN, compile=mode), warn=lines.append, total_steps=steps)
    named = "auto (update)" if mode == "auto" else mode
    assert lines == [f"agent.compile={named} failed (RuntimeError: backend exploded); running with agent.compile=off"]
    # (T of eq. (14), the run's length, sets the target entropy: the plain run of as many steps)
    plain = (
        run_updates(tiny_config("sac-svg", PLAIN), total_steps=steps) if mode == "auto" else plain_results["sac-svg"]
    )
    assert_same(plain, result)


def test_a_run_whose_compiled_update_falls_back_records_that_it_ran_eagerly(tmp_path, monkeypatch, capsys):
    from harness.config import build_run_config  # noqa: PLC0415 - a run, for its summary.json
    from harness.trainer import train_run  # noqa: PLC0415

    monkeypatch.setattr(torch, "compile", failing_compile("no compiler"))
    settings = ["agent.compile=update", "agent.hidden_dim=16", "agent.step_batch_size=16", "trainer.seed_steps=50"]
    settings += ["trainer.eval_every=100", "trainer.eval_episodes=1", "trainer.progress=false"]
    config = build_run_config(
        "classic", "inverted-pendulum", "sac", 0, preset="quick", steps=100, out=str(tmp_path), overrides=settings
    )
    summary = train_run(config, tmp_path / "run")
    line = "warning: agent.compile=update failed (RuntimeError: no compiler); running with agent.compile=off"
    assert capsys.readouterr().err.splitlines().count(line) == 1
    assert summary["status"] == "done" and summary["compile_mode"] == "off"
    assert summary["compile_reason"] == "agent.compile; compiling the update failed, so it runs eagerly"


def test_an_unknown_compile_mode_is_refused():
    modes = "auto, off, compile, cudagraphs, update"
    with pytest.raises(ValueError, match=f"agent.compile must be one of {modes}, not 'fast'"):
        SVGAgent(OBS, ACT, tiny_config("sac", PLAIN, compile="fast"), 1000, 0)


def test_one_backward_pass_gives_each_loss_exactly_its_own_gradient():
    """Actor (9) + temperature (8), and reward (11) + termination (13), share a backward
    pass (both paths): each sum's gradient is each loss's own, and neither loss reaches the
    other's parameters."""
    torch.manual_seed(0)
    agent = SVGAgent(OBS, ACT, tiny_config("sac-svg", PLAIN), 1000, 0)
    obs, action = torch.randn(16, OBS), torch.rand(16, ACT) * 2 - 1
    actor_loss, alpha_loss, _ = agent.actor_and_temperature_losses(obs, 2, torch.tensor(-1.0))
    actor_parameters = list(agent.actor.parameters())

    def grad(loss, inputs):
        return torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)

    combined = grad(actor_loss + alpha_loss, [*actor_parameters, agent.log_alpha])
    torch.testing.assert_close(list(combined[:-1]), list(grad(actor_loss, actor_parameters)), rtol=0, atol=0)
    torch.testing.assert_close(combined[-1], grad(alpha_loss, [agent.log_alpha])[0], rtol=0, atol=0)
    assert grad(actor_loss, [agent.log_alpha]) == (None,)
    assert all(g is None for g in grad(alpha_loss, actor_parameters))

    loss_r, loss_d = agent.reward_and_termination_losses(obs, action, torch.randn(16), torch.zeros(16))
    reward, termination = list(agent.model.reward_head.parameters()), list(agent.model.termination_logit.parameters())
    combined = grad(loss_r + loss_d, reward + termination)
    torch.testing.assert_close(
        list(combined), list(grad(loss_r, reward)) + list(grad(loss_d, termination)), rtol=0, atol=0
    )
    assert all(g is None for g in grad(loss_r, termination)) and all(g is None for g in grad(loss_d, reward))


def test_the_actor_step_leaves_the_critic_and_model_trainable_and_without_gradients():
    torch.manual_seed(0)
    agent = SVGAgent(OBS, ACT, tiny_config("sac-svg", FastPathConfig(), num_seq_updates=0), 1000, 0)
    obs = torch.randn(16, OBS)
    agent.update_actor_and_temperature(obs, 500)
    others = [*agent.critic.parameters(), *agent.model.parameters()]
    assert all(p.requires_grad for p in others)  # restored after the step
    assert all(p.grad is None for p in others)  # and no gradient was computed for them
    assert all(p.grad is not None for p in agent.actor.parameters())


def test_deferred_divergence_at_one_step_names_the_first_metric_reported():
    sums = MetricSums()
    sums.add({"entropy": torch.tensor(float("nan")), "critic_loss": torch.tensor(float("nan"))}, step=4)
    with pytest.raises(DivergenceError, match="entropy is nan at env step 4"):
        sums.read()


# ------------------------------------------------------------------ lean calls and direct Adam


def test_lean_calls_switch_the_networks_to_functional_forward_passes_with_the_same_bits():
    plain = SVGAgent(OBS, ACT, tiny_config("sac-svg", PLAIN), 1000, 0)
    lean = SVGAgent(OBS, ACT, tiny_config("sac-svg", dataclasses.replace(PLAIN, lean_calls=True)), 1000, 0)
    parts = [m for m in lean.actor.modules()] + [m for m in lean.model.modules()] + [m for m in lean.critic.modules()]
    assert any(isinstance(m, MLP) for m in parts) and all(m.lean for m in parts if isinstance(m, (MLP, EnsembleMLP)))
    assert lean.model.dynamics.lean and not plain.model.dynamics.lean
    assert not any(m.lean for m in plain.actor.modules() if isinstance(m, MLP))
    x = torch.randn(9, OBS)
    lean.actor.load_state_dict(plain.actor.state_dict())
    assert torch.equal(lean.actor.trunk(x), plain.actor.trunk(x))


def test_lean_acting_draws_the_same_actions_from_the_same_noise():
    plain = SVGAgent(OBS, ACT, tiny_config("sac", PLAIN), 1000, 0)
    lean = SVGAgent(OBS, ACT, tiny_config("sac", dataclasses.replace(PLAIN, lean_calls=True)), 1000, 0)
    lean.actor.load_state_dict(plain.actor.state_dict())
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs = rng.normal(size=OBS) * 3 + 1
        plain.observe(obs)
        lean.observe(obs)
    for deterministic in (False, True):
        obs = rng.normal(size=OBS)
        torch.manual_seed(7)
        expected = plain.act(obs, deterministic)
        torch.manual_seed(7)
        np.testing.assert_array_equal(lean.act(obs, deterministic), expected)


def test_the_normaliser_is_the_same_one_state_at_a_time_and_on_the_host():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(30, OBS)) * 5
    one = RunningNormalizer(OBS)
    mean, m2, count = np.zeros(OBS), np.zeros(OBS), 0
    for x in states:
        one.update(x)
        batch = x[None]  # the batch formulas (Chan et al.) with a batch of one, bit for bit
        batch_mean = batch.mean(axis=0)
        total = count + 1
        delta = batch_mean - mean
        mean = mean + delta * 1 / total
        m2 = m2 + ((batch - batch_mean) ** 2).sum(axis=0) + delta**2 * count * 1 / total
        count = total
    np.testing.assert_array_equal(one.mean, mean)
    np.testing.assert_array_equal(one.sum_squared_deviation, m2)
    obs = rng.normal(size=OBS)
    np.testing.assert_array_equal(
        one.normalize_array(obs), one.normalize(torch.as_tensor(obs, dtype=torch.float32)).numpy()
    )
    pair = RunningNormalizer(OBS)
    pair.update(states[:2])  # batches still take the batch formulas
    np.testing.assert_allclose(pair.mean, states[:2].mean(axis=0))


def test_direct_fused_adam_steps_exactly_as_adam_and_after_a_reload():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    twin = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    twin.load_state_dict(net.state_dict())
    reference = torch.optim.Adam(net.parameters(), lr=1e-2, fused=True)
    direct = DirectFusedAdam(torch.optim.Adam(twin.parameters(), lr=1e-2, fused=True))
    assert direct.direct

    def step(model, optimizer_step, zero, x):
        zero()
        model(x).pow(2).sum().backward()
        optimizer_step()

    for t in range(5):
        x = torch.randn(16, 4)
        step(net, reference.step, lambda: reference.zero_grad(set_to_none=True), x)
        step(twin, direct.step, direct.zero_grad, x)
        if t == 2:  # a checkpoint reload replaces the state tensors
            direct.optimizer.load_state_dict(direct.optimizer.state_dict())
            direct.reset()
    for a, b in zip(net.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(reference.state.values(), direct.optimizer.state.values()):
        assert all(torch.equal(a[k], b[k]) for k in ("exp_avg", "exp_avg_sq", "step"))
    assert not DirectFusedAdam(torch.optim.Adam(twin.parameters(), lr=1e-2)).direct  # unfused: torch.optim steps


def test_metric_sums_keep_each_set_of_metrics_and_the_first_divergence_across_sets():
    sums = MetricSums()
    sums.add({"actor_loss": torch.tensor(1.0), "critic_loss": torch.tensor(2.0), "target_entropy": -1.0}, 1)
    sums.add({"critic_loss": torch.tensor(4.0)}, 2)  # an update without the actor's step
    sums.add({"actor_loss": torch.tensor(3.0), "critic_loss": torch.tensor(6.0), "target_entropy": -2.0}, 3)
    assert sums.read() == {"actor_loss": 2.0, "critic_loss": 4.0, "target_entropy": -1.5}
    sums.add({"critic_loss": torch.tensor(float("nan"))}, 5)
    sums.add({"actor_loss": torch.tensor(float("inf")), "critic_loss": torch.tensor(1.0)}, 4)
    with pytest.raises(DivergenceError, match="actor_loss is inf at env step 4"):
        sums.read()
