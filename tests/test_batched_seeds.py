"""Seeds trained as one batch (agents/batched.py) compute what each seed alone computes.

For every agent of the registry (and the authors'-code variants of the model's options),
S = 3 lone ``SVGAgent``s and one ``BatchedSVGAgent`` loaded with their states act and update
side by side on the same replay contents. The batch's seed s draws its replay slots from
seed s's generator and its noise from a generator in the state of lone run s's global torch
generator (the noise is injected as that state): so each seed gets the same batches and the
same noise as its lone twin, while the seeds' own batches, noise and parameters differ.
After several updates every seed's losses, parameters, temperature, Adam moments and step
counts must equal its lone twin's to float rounding.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents import SVGAgent
from agents.batched import BatchedSVGAgent
from agents.config import AgentConfig, EntropyScheduleConfig
from agents.metrics import DivergenceError, MetricSums
from agents.replay import ReplayBuffer
from agents.seed_noise import SeedNoise
from agents.stacked_adam import StackedAdam
from agents.stacked_metrics import SeedMetrics, StackedMetricSums
from agents.stacked_replay import StackedReplay
from baselines import AGENTS as REGISTRY

OBS, ACT, SEEDS, UPDATES = 5, 2, (0, 1, 2), 4
STEP = 500  # env step of the updates: the target entropy's schedule, past the warm-up


def registry_settings(name: str, **extra) -> dict:
    settings = {key: value for key, value in REGISTRY[name].settings.items() if value is not None}
    settings.setdefault("horizon", 2)
    settings.pop("ensemble_size", None)
    return {**settings, **extra}


AGENTS = {name: registry_settings(name) for name in REGISTRY}
AGENTS["sac-svg-ensemble"].update(ensemble_size=3, dynamics_grad_clip=0.01)  # clips members: per member and seed
# the authors' code's options of the model and the losses, and MVE's other counting
AGENTS["sac-svg-authors"] = registry_settings(
    "sac-svg",
    dynamics_decoder="linear",
    dynamics_detach_predicted_state=True,
    termination_pos_weight=True,
    actor_objective_average=True,
    hidden_depth=3,
    num_step_updates=2,
    critic_target_update_every=2,
    dynamics_grad_clip=0.01,
)  # every update clipped: per seed
AGENTS["mve-authors"] = registry_settings("mve", mve_horizon_counting="authors-code", actor_update_every=2)


def tiny_config(agent: str) -> AgentConfig:
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
    )
    return AgentConfig(**{**settings, **AGENTS[agent]})


def lone_agents(config: AgentConfig) -> tuple[list[SVGAgent], list[torch.Tensor]]:
    """Each seed's agent built as a lone run builds it, and its torch generator state after."""
    agents, noise = [], []
    for seed in SEEDS:
        torch.manual_seed(seed)
        agents.append(SVGAgent(OBS, ACT, config, total_steps=1000, seed=np.random.SeedSequence(seed).spawn(2)[0]))
        noise.append(torch.get_rng_state())
    return agents, noise


def fill(
    agents: list[SVGAgent], batch: BatchedSVGAgent, capacity: int, no_sequences: int | None = None
) -> tuple[list[ReplayBuffer], StackedReplay]:
    """The same random transitions into each lone buffer and the stacked one, each seed its
    own, episodes ending at different steps per seed; seed ``no_sequences``'s every
    transition ends an episode (so it has no sequence of two transitions)."""
    buffers = [ReplayBuffer(OBS, ACT, capacity, "cpu") for _ in SEEDS]
    stacked = StackedReplay(len(SEEDS), OBS, ACT, capacity, "cpu")
    rngs = [np.random.default_rng(100 + seed) for seed in SEEDS]
    for t in range(300):
        rows = []
        for s, rng in enumerate(rngs):
            obs = rng.normal(size=OBS) * (1 + s)
            row = (
                obs,
                rng.uniform(-1, 1, ACT),
                float(rng.normal()),
                0.9 * obs + 0.1 * rng.normal(size=OBS),
                t % (61 + 13 * s) == 60,
                s == no_sequences or t % (40 + 7 * s) == 39,
            )
            buffers[s].add(*row)
            agents[s].observe(obs)
            rows.append(row)
        stacked.add(*(np.array(column) for column in zip(*rows)))
        batch.observe(np.stack([row[0] for row in rows]))
    return buffers, stacked


def seed_metrics(parts: list[SeedMetrics], seed: int) -> dict[str, float]:
    return {
        name: float(value[seed]) if isinstance(value, torch.Tensor) else value
        for part in parts
        if part.seeds is None or part.seeds[seed]
        for name, value in part.values.items()
    }


def close(actual: float, expected: float) -> bool:
    return actual == pytest.approx(expected, rel=1e-4, abs=1e-5)


def run_side_by_side(agent: str, no_sequences: int | None = None):
    config = tiny_config(agent)
    lone, noise = lone_agents(config)
    batch = BatchedSVGAgent.from_agents(lone, noise)
    buffers, stacked = fill(lone, batch, config.replay_capacity, no_sequences)
    lone_metrics, batch_metrics, lone_actions, batch_actions = [], [], [], []
    for update in range(UPDATES):
        obs = np.stack([buffer.obs[update].numpy() for buffer in buffers])
        batch_actions.append(batch.act(obs, deterministic=False))
        batch_metrics.append(batch.update(stacked, STEP + update))
        per_seed_actions, per_seed_metrics = [], []
        for s, (agent_s, buffer) in enumerate(zip(lone, buffers)):
            torch.set_rng_state(noise[s])  # lone run s's global stream where it stood
            per_seed_actions.append(agent_s.act(obs[s], deterministic=False))
            per_seed_metrics.append({k: float(v) for k, v in agent_s.update(buffer, STEP + update).items()})
            noise[s] = torch.get_rng_state()
        lone_actions.append(np.stack(per_seed_actions))
        lone_metrics.append(per_seed_metrics)
    return config, lone, batch, lone_metrics, batch_metrics, lone_actions, batch_actions


@pytest.fixture(scope="module", params=list(AGENTS))
def side_by_side(request):
    return request.param, run_side_by_side(request.param)


def test_each_seed_computes_its_lone_twins_losses(side_by_side):
    agent, (config, _, _, lone_metrics, batch_metrics, lone_actions, batch_actions) = side_by_side
    for update, (lone_update, parts) in enumerate(zip(lone_metrics, batch_metrics)):
        np.testing.assert_allclose(batch_actions[update], lone_actions[update], rtol=1e-5, atol=1e-6)
        for s in range(len(SEEDS)):
            got = seed_metrics(parts, s)
            assert list(got) == list(lone_update[s]), (agent, update, s)
            for name, value in lone_update[s].items():
                assert close(got[name], value), (agent, update, s, name, got[name], value)
    if config.dynamics_grad_clip < 0.1:  # the clipping was exercised
        assert all(update[s]["dynamics_clipped"] > 0 for update in lone_metrics for s in range(len(SEEDS)))
    # the seeds are not one computation repeated: their losses differ
    last = lone_metrics[-1]
    assert last[0]["critic_loss"] != pytest.approx(last[1]["critic_loss"], rel=1e-3)
    if config.actor_update_every == 1:
        assert last[1]["actor_loss"] != pytest.approx(last[2]["actor_loss"], rel=1e-3)


def test_each_seed_ends_with_its_lone_twins_state(side_by_side):
    agent, (config, lone, batch, *_) = side_by_side
    states = [batch.seed_state(s) for s in range(len(SEEDS))]
    for s, agent_s in enumerate(lone):
        expected = agent_s.state_dict()
        assert list(states[s]) == list(expected), agent
        assert states[s]["updates_done"] == expected["updates_done"] == UPDATES * config.num_step_updates
        assert states[s]["rng"] == expected["rng"]  # the same replay slots were drawn
        networks = [name for name in ("actor", "critic", "critic_target", "model") if name in expected]
        torch.testing.assert_close(
            {n: states[s][n] for n in networks},
            {n: expected[n] for n in networks},
            rtol=1e-4,
            atol=1e-5,
            msg=lambda m, s=s: f"{agent}, seed {s}: {m}",
        )
        torch.testing.assert_close(states[s]["log_alpha"], expected["log_alpha"], rtol=1e-5, atol=1e-6)
        for name, optimizer in expected["optimizers"].items():
            got = states[s]["optimizers"][name]
            assert got["param_groups"] == optimizer["param_groups"], (agent, name)
            assert got["state"].keys() == optimizer["state"].keys(), (agent, name)
            for i, entry in optimizer["state"].items():
                assert float(got["state"][i]["step"]) == float(entry["step"]), (agent, name, i)
                torch.testing.assert_close(got["state"][i]["exp_avg"], entry["exp_avg"], rtol=1e-4, atol=1e-6)
                torch.testing.assert_close(got["state"][i]["exp_avg_sq"], entry["exp_avg_sq"], rtol=1e-4, atol=1e-9)
        assert states[s]["normalizer"]["count"] == expected["normalizer"]["count"]
        torch.testing.assert_close(states[s]["normalizer"]["mean"], expected["normalizer"]["mean"], rtol=0, atol=0)
    actor = lambda state: state["actor"]["trunk.0.weight"]  # noqa: E731
    assert not torch.allclose(actor(states[0]), actor(states[1]))  # each seed its own parameters


def test_a_seed_without_sequences_skips_its_dynamics_updates_as_alone():
    """Seed 1 stores only one-transition episodes: like its lone twin it makes no dynamics
    update and reports no dynamics metric, while seeds 0 and 2 make theirs."""
    config, lone, batch, lone_metrics, batch_metrics, *_ = run_side_by_side("sac-svg", no_sequences=1)
    for lone_update, parts in zip(lone_metrics, batch_metrics):
        for s in range(len(SEEDS)):
            got = seed_metrics(parts, s)
            assert list(got) == list(lone_update[s])
            assert ("dynamics_loss" in got) == (s != 1)
            for name, value in lone_update[s].items():
                assert close(got[name], value), (s, name)
    steps = [
        float(batch.seed_state(s)["optimizers"]["dynamics"]["state"].get(0, {"step": 0})["step"])
        for s in range(len(SEEDS))
    ]
    assert steps == [UPDATES * config.num_seq_updates, 0, UPDATES * config.num_seq_updates]
    torch.testing.assert_close(batch.seed_state(1)["model"], lone[1].state_dict()["model"], rtol=1e-4, atol=1e-5)


def test_a_seeds_state_resumes_a_lone_agent_and_a_batch():
    config = tiny_config("sac-svg-ensemble")
    lone, noise = lone_agents(config)
    batch = BatchedSVGAgent.from_agents(lone, noise)
    _, stacked = fill(lone, batch, config.replay_capacity)
    batch.update(stacked, STEP)
    state = batch.seed_state(2)
    other = SVGAgent(OBS, ACT, config, total_steps=1000, seed=7)
    other.load_state_dict(state)  # a batched seed's checkpoint is a lone run's
    assert_same_state(other.state_dict(), state)
    again = BatchedSVGAgent(OBS, ACT, config, 1000, len(SEEDS))
    for s in range(len(SEEDS)):
        again.load_seed_state(s, batch.seed_state(s))
    assert_same_state(again.seed_state(1), batch.seed_state(1))
    with pytest.raises(AssertionError):
        assert_same_state(again.seed_state(1), batch.seed_state(0))


def assert_same_state(actual: dict, expected: dict) -> None:
    assert actual["rng"] == expected["rng"]
    torch.testing.assert_close(
        {k: v for k, v in actual.items() if k != "rng"},
        {k: v for k, v in expected.items() if k != "rng"},
        rtol=0,
        atol=0,
    )


def test_seed_noise_is_the_global_stream_of_its_state():
    noise = SeedNoise(2, torch.device("cpu"))
    for s in range(2):
        torch.manual_seed(10 + s)
        noise.set_state(s, torch.get_rng_state())
    normal, members = noise.normal(16, 3), noise.integers(5, 16)
    for s in range(2):
        torch.manual_seed(10 + s)
        assert torch.equal(normal[s], torch.randn_like(torch.zeros(16, 3)))
        assert torch.equal(members[s], torch.randint(0, 5, (16,)))
    assert not torch.equal(normal[0], normal[1])
    with noise.as_global(1):  # lone code drawing from the global generator draws seed 1's stream
        drawn = torch.randn(4)
    torch.manual_seed(11)
    torch.randn(16, 3), torch.randint(0, 5, (16,))
    assert torch.equal(drawn, torch.randn(4))


@pytest.mark.parametrize("fused", [False, True])
def test_stacked_adam_is_independent_adams(fused):
    generator = torch.Generator().manual_seed(0)
    shapes = [(3, 4, 5), (3, 5)]
    stacked = [torch.randn(shape, generator=generator).requires_grad_() for shape in shapes]
    lone = [[p[s].detach().clone().requires_grad_() for p in stacked] for s in range(3)]
    adams = [torch.optim.Adam(params, lr=1e-2, fused=fused or None) for params in lone]
    optimizer = StackedAdam(stacked, lr=1e-2, fused=fused)
    for step in range(5):
        grads = [torch.randn(shape, generator=generator) * (1 + step) for shape in shapes]
        active = torch.tensor([True, step != 2, True])  # seed 1 skips its third step
        for p, g in zip(stacked, grads):
            p.grad = g.clone()
        optimizer.step(active)
        for s in range(3):
            if active[s]:
                for p, g in zip(lone[s], grads):
                    p.grad = g[s].clone()
                adams[s].step()
    for s in range(3):
        for p, q in zip(stacked, lone[s]):
            torch.testing.assert_close(p[s].detach(), q.detach(), rtol=1e-5, atol=1e-7)
        expected = adams[s].state_dict()
        got = optimizer.seed_state_dict(s)
        assert got["param_groups"] == expected["param_groups"]
        for i in expected["state"]:
            assert float(got["state"][i]["step"]) == float(expected["state"][i]["step"]) == (4 if s == 1 else 5)
            torch.testing.assert_close(got["state"][i]["exp_avg_sq"], expected["state"][i]["exp_avg_sq"])
    assert not torch.allclose(stacked[0][0], stacked[0][1])


def test_stacked_adam_runs_the_lone_fused_kernel_while_the_seeds_step_together(monkeypatch):
    """With ``fused``, steps the seeds take together are one call of the fused Adam kernel
    that lone ``Adam(fused=True)`` runs, giving each seed its lone twin's parameters; after a
    seed skips a step the per-seed path takes over, and a loaded state whose seeds agree
    again brings the kernel back."""
    calls = []
    kernel = torch._fused_adam_
    monkeypatch.setattr(torch, "_fused_adam_", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    generator = torch.Generator().manual_seed(1)
    shapes = [(2, 6, 3), (2, 3)]
    stacked = [torch.randn(shape, generator=generator).requires_grad_() for shape in shapes]
    lone = [[p[s].detach().clone().requires_grad_() for p in stacked] for s in range(2)]
    adams = [torch.optim.Adam(params, lr=1e-2, fused=True) for params in lone]
    optimizer = StackedAdam(stacked, lr=1e-2, fused=True)
    for _ in range(3):
        grads = [torch.randn(shape, generator=generator) for shape in shapes]
        for p, g in zip(stacked, grads):
            p.grad = g.clone()
        optimizer.step()
        for s in range(2):
            for p, g in zip(lone[s], grads):
                p.grad = g[s].clone()
            adams[s].step()
    assert optimizer.shared_step == 3 and len(calls) == 3 + 2 * 3  # the batch's 3 and the lone Adams' 6
    for s in range(2):
        for p, q in zip(stacked, lone[s]):
            torch.testing.assert_close(p[s].detach(), q.detach(), rtol=0, atol=0)
    for p in stacked:
        p.grad = torch.ones_like(p)
    optimizer.step(torch.tensor([True, False]))  # seed 1 skips: step counts 4 and 3
    optimizer.step()
    assert optimizer.shared_step is None and len(calls) == 9  # the per-seed path
    optimizer.load_seed_state_dict(1, optimizer.seed_state_dict(0))
    assert optimizer.shared_step == 5
    optimizer.step()
    assert len(calls) == 10


def test_stacked_metric_sums_are_each_seeds_metric_sums():
    """Means, state dicts and the divergence (earliest step, its metric and value) of each
    seed equal a lone ``MetricSums`` fed that seed's metrics, with a part some seeds skip."""
    lone = [MetricSums() for _ in range(3)]
    stacked = StackedMetricSums(3)
    for step in range(1, 6):
        loss = torch.tensor([1.0, 2.0, 3.0]) * step
        if step == 3:
            loss[1] = float("nan")
        dynamics = loss + 0.5
        if step == 1:
            dynamics[2] = float("inf")  # seed 2 does not report it: no divergence
        parts = [
            SeedMetrics({"critic_loss": loss, "target_entropy": -1.0 * step}),
            SeedMetrics({"dynamics_loss": dynamics}, seeds=np.array([True, False, step > 2])),
        ]
        stacked.add(parts, step)
        for s in range(3):
            values = {"critic_loss": loss[s], "target_entropy": -1.0 * step}
            if parts[1].seeds[s]:
                values["dynamics_loss"] = loss[s] + 0.5
            lone[s].add(values, step)
        if step == 4:  # seed 2 reads (an episode ended): only its sums restart
            assert stacked.read(2) == lone[2].read()
    assert set(stacked.diverged()) == {1}
    with pytest.raises(DivergenceError) as batched_error:
        stacked.read(1)
    with pytest.raises(DivergenceError) as lone_error:
        lone[1].read()
    assert (
        (batched_error.value.loss, batched_error.value.step)
        == (lone_error.value.loss, lone_error.value.step)
        == ("critic_loss", 3)
    )
    for s in (0, 2):
        assert stacked.state_dict(s) == lone[s].state_dict()
        restored = StackedMetricSums(3)
        restored.load_state_dict(s, stacked.state_dict(s))
        assert restored.read(s) == stacked.read(s) == lone[s].read()


@pytest.mark.parametrize("device", [None, "cpu"])
def test_stacked_replay_samples_what_each_seeds_buffer_samples(device):
    """Host (NumPy) or tensor storage: each seed's rows of a batch are what its lone buffer
    samples with the same generator; a seed with no sequence is reported absent."""
    buffers = [ReplayBuffer(OBS, ACT, 50, device) for _ in SEEDS]
    stacked = StackedReplay(len(SEEDS), OBS, ACT, 50, device)
    rng = np.random.default_rng(0)
    for t in range(70):  # wraps the ring
        rows = [
            (
                rng.normal(size=OBS),
                rng.uniform(-1, 1, ACT),
                float(rng.normal()),
                rng.normal(size=OBS),
                False,
                s == 2 or t % 9 == 8,
            )
            for s in SEEDS
        ]
        for buffer, row in zip(buffers, rows):
            buffer.add(*row)
        stacked.add(*(np.array(column) for column in zip(*rows)))
    as_array = lambda x: np.asarray(x)  # noqa: E731
    batch = stacked.sample(8, [np.random.default_rng(s) for s in SEEDS])
    sequences, present = stacked.sample_sequences(6, 3, [np.random.default_rng(s) for s in SEEDS])
    assert present.tolist() == [True, True, False]
    for s, buffer in enumerate(buffers):
        lone = buffer.sample(8, np.random.default_rng(s))
        for name in ("obs", "action", "reward", "next_obs", "terminated"):
            np.testing.assert_array_equal(as_array(getattr(batch, name))[s], as_array(getattr(lone, name)))
        if s < 2:
            lone_sequences = buffer.sample_sequences(6, 3, np.random.default_rng(s))
            np.testing.assert_array_equal(as_array(sequences.states)[s], as_array(lone_sequences.states))
            np.testing.assert_array_equal(as_array(sequences.actions)[s], as_array(lone_sequences.actions))
        assert stacked.seed_buffer(s).state_dict()["position"] == buffer.position
    assert not np.array_equal(as_array(batch.obs)[0], as_array(batch.obs)[1])
