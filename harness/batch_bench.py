"""``harness bench --batch-seeds S`` (benchmarks/batch_seeds.py): the aggregate env steps/s
of S seeds trained as one batch in one process (``harness run --batch-seeds S``) against S
lone runs of them placed as ``harness run --jobs J`` places them (J at a time, each process
on its share of the cores, with the torch threads the harness chooses for that share).

Both sides time the training loop after the seed steps on the task's real MuJoCo
environments, as ``harness bench``'s whole-loop figure does (``harness.bench.
loop_steps_per_second``): acting, env steps, replay writes, normalisers, the update, metric
sums, and each episode end's metric read and reset; no evaluation or checkpoint, on either
side. The updates run at env step ``UPDATE_STEP`` (past the authors' model-free warm-up).

The lone side's aggregate is the steady state of S runs J at a time: min(J, S) loops started
together, their rates summed (exact when J divides S; with fewer seeds than J, the S runs
alone, each on a share of 1/S of the cores, as ``harness run`` gives them).

``--batches N`` splits the batched side as ``harness run --seeds S --batch-seeds ceil(S/N)
--jobs N`` places it: the S seeds in batches of ceil(S/N), all started together, each process
on its share of the cores (on a CPU, N processes keep every core busy with whole batches,
where one batch's second thread waits on small kernels); their rates are summed.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.bench import FILLED_TRANSITIONS, UPDATE_STEP, _synchronize, concurrent_loop_rates, machine_description
from harness.process import pin_to_cores

DEFAULT_AGENTS = ("sac-svg",)
DEFAULT_PRESETS = ("quick", "paper")
DEFAULT_TASKS = ("mbpo/hopper",)
DEFAULT_SEEDS = (1, 2, 4, 8)


@dataclass
class BatchBenchSettings:
    agents: tuple[str, ...] = DEFAULT_AGENTS
    presets: tuple[str, ...] = DEFAULT_PRESETS
    tasks: tuple[str, ...] = DEFAULT_TASKS  # suite/task
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    jobs: int = 2  # the lone runs' placement, as harness run --jobs
    batches: int = 1  # the batched side as this many batches at once (harness run --batch-seeds ceil(S/N) --jobs N)
    device: str = "cpu"
    loop_steps: int = 20
    overrides: tuple[str, ...] = ()


@dataclass
class BatchBenchRow:
    agent: str
    preset: str
    task: str
    seeds: int
    jobs: int
    device: str
    batch_threads: int
    lone_threads: int
    batched_steps_per_second: float  # all seeds' env steps per second, in ``batches`` processes
    lone_steps_per_second: float  # all seeds' env steps per second, lone runs J at a time
    speedup: float
    batches: int = 1  # processes of the batched side, each a batch of ceil(S / batches) seeds


def batched_loop_steps_per_second(
    agent: str,
    preset: str,
    task: str,
    device: str,
    overrides: tuple[str, ...],
    steps: int,
    seeds: int,
    first_seed: int = 0,
    start: Any = None,
) -> tuple[float, int]:
    """Aggregate env steps/s (S x batch steps/s) of S seeds' batched loop in this process
    (seeds ``first_seed`` .. ``first_seed + S - 1``), and its torch threads (the harness's
    choice for the batch on every core this process has). ``start``: a barrier the timed
    steps wait at (batches measured at once start together)."""
    import torch

    from agents import SVGAgent
    from agents.batched import BatchedSVGAgent
    from agents.stacked_metrics import StackedMetricSums
    from agents.stacked_replay import StackedReplay
    from harness.config import build_run_config
    from harness.process import prepare_training_process
    from harness.suites import get_task

    suite, name = task.split("/")
    configs = [
        build_run_config(suite, name, agent, seed, preset=preset, overrides=[f"agent.device={device}", *overrides])
        for seed in range(first_seed, first_seed + seeds)
    ]
    config = configs[0]
    threads = prepare_training_process(config.trainer.torch_threads, config.agent, seeds=seeds)
    spec = get_task(suite, name)
    lone, noise = [], []
    for seed, seed_config in enumerate(configs, start=first_seed):  # each seed's agent as its run builds it
        total_steps = seed_config.trainer.total_steps
        if total_steps is None:
            raise ValueError("the run config's task values are not filled in (harness.config.resolve_task_values)")
        torch.manual_seed(seed)
        lone.append(
            SVGAgent(
                spec.obs_dim,
                spec.act_dim,
                seed_config.agent,
                total_steps,
                np.random.SeedSequence(seed).spawn(2)[0],
            )
        )
        noise.append(torch.cuda.get_rng_state() if lone[-1].device.type == "cuda" else torch.get_rng_state())
    batch = BatchedSVGAgent.from_agents(lone, noise)
    del lone
    capacity = max(FILLED_TRANSITIONS, config.trainer.seed_steps + 1000)
    replay = StackedReplay(
        seeds, spec.obs_dim, spec.act_dim, capacity, batch.device if config.agent.fast_path.replay_on_device else None
    )
    metrics = StackedMetricSums(seeds)
    envs = [spec.make_env() for _ in range(seeds)]
    obs = np.stack([env.reset(seed=seed)[0] for seed, env in enumerate(envs, start=first_seed)])
    rng = np.random.default_rng(0)

    def env_step(actions: np.ndarray) -> None:
        nonlocal obs
        transitions = [env.step(action) for env, action in zip(envs, actions)]
        next_obs = np.stack([t[0] for t in transitions])
        terminated, truncated = np.array([t[2] for t in transitions]), np.array([t[3] for t in transitions])
        replay.add(obs, actions, np.array([float(t[1]) for t in transitions]), next_obs, terminated, truncated)
        batch.observe(next_obs)
        for i in map(int, np.flatnonzero(terminated | truncated)):
            next_obs[i] = envs[i].reset()[0]
            batch.observe_seed(i, next_obs[i])
            metrics.read(i)
        obs = next_obs

    for _ in range(config.trainer.seed_steps):
        env_step(rng.uniform(-1, 1, (seeds, spec.act_dim)).astype(np.float32))
    for t in range(2):  # warm-up
        env_step(batch.act(obs, deterministic=False))
        metrics.add(batch.update(replay, UPDATE_STEP + t), UPDATE_STEP + t)
    if start is not None:  # batches measured at once start their timed steps together
        start.wait()
    _synchronize(batch.device)
    started = time.perf_counter()
    for t in range(steps):
        env_step(batch.act(obs, deterministic=False))
        metrics.add(batch.update(replay, UPDATE_STEP + t), UPDATE_STEP + t)
    for i in range(seeds):
        metrics.read(i)
    _synchronize(batch.device)
    elapsed = time.perf_counter() - started
    for env in envs:
        env.close()
    return seeds * steps / elapsed, threads.count


def _batch_worker(args: tuple, cores: list[int], start: Any, results: Any, threads: int | None = None) -> None:
    """One batch of a split batched side (``concurrent_loop_rates``'s worker): its aggregate
    env steps/s, pinned to its share of the cores (the batch picks its threads there)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers
    pin_to_cores(cores)
    agent, preset, task, device, overrides, steps, seeds, first_seed = args
    rate, _ = batched_loop_steps_per_second(agent, preset, task, device, overrides, steps, seeds, first_seed, start)
    results.put(rate)


def batch_sizes(seeds: int, batches: int) -> list[int]:
    """The seeds of each batch when S seeds run as ``harness run --batch-seeds ceil(S/N)``:
    batches of ceil(S/N), the last holding what is left (fewer than N batches when N does
    not divide S evenly enough, e.g. 4 seeds in 3 batches: 2, 2)."""
    size = math.ceil(seeds / batches)
    return [min(size, seeds - first) for first in range(0, seeds, size)]


def split_batches_steps_per_second(
    agent: str, preset: str, task: str, device: str, overrides: tuple[str, ...], steps: int, seeds: int, batches: int
) -> tuple[float, int]:
    """Aggregate env steps/s of S seeds as batches of ceil(S/N) trained at once, one process
    each on its share of the cores, and the first batch's torch threads."""
    from harness.config import build_run_config
    from harness.process import available_cores, choose_threads, core_share

    sizes = batch_sizes(seeds, batches)
    firsts = [sum(sizes[:k]) for k in range(len(sizes))]
    cores = available_cores()
    shares = [core_share(k, len(sizes), cores) for k in range(len(sizes))]
    suite, name = task.split("/")
    config = build_run_config(suite, name, agent, 0, preset=preset, overrides=[f"agent.device={device}", *overrides])
    threads = choose_threads(config.trainer.torch_threads, config.agent, shares[0], seeds=sizes[0]).count
    args = [(agent, preset, task, device, overrides, steps, size, first) for size, first in zip(sizes, firsts)]
    return sum(concurrent_loop_rates(args, shares, worker=_batch_worker)), threads


def lone_loops_steps_per_second(
    agent: str, preset: str, task: str, device: str, overrides: tuple[str, ...], steps: int, seeds: int, jobs: int
) -> tuple[float, int]:
    """Aggregate env steps/s of S lone loops placed J at a time, and each one's torch threads."""
    from harness.config import build_run_config
    from harness.process import available_cores, choose_threads, core_share

    suite, name = task.split("/")
    config = build_run_config(suite, name, agent, 0, preset=preset, overrides=[f"agent.device={device}", *overrides])
    at_once = min(jobs, seeds)
    cores = available_cores()
    shares = [core_share(k, at_once, cores) for k in range(at_once)]
    threads = choose_threads(config.trainer.torch_threads, config.agent, shares[0]).count
    rates = concurrent_loop_rates((agent, preset, task, device, overrides, steps), shares, threads=threads)
    return sum(rates), threads


def bench_seed_batching(agent: str, preset: str, task: str, seeds: int, settings: BatchBenchSettings) -> BatchBenchRow:
    if settings.batches > 1:
        batched, batch_threads = split_batches_steps_per_second(
            agent, preset, task, settings.device, settings.overrides, settings.loop_steps, seeds, settings.batches
        )
    else:
        batched, batch_threads = batched_loop_steps_per_second(
            agent, preset, task, settings.device, settings.overrides, settings.loop_steps, seeds
        )
    lone, lone_threads = lone_loops_steps_per_second(
        agent, preset, task, settings.device, settings.overrides, settings.loop_steps, seeds, settings.jobs
    )
    return BatchBenchRow(
        agent,
        preset,
        task,
        seeds,
        settings.jobs,
        settings.device,
        batch_threads,
        lone_threads,
        batched,
        lone,
        batched / lone,
        len(batch_sizes(seeds, settings.batches)),
    )


def run_batch_benchmark(settings: BatchBenchSettings, say=print) -> dict[str, Any]:
    """Every (agent, preset, task, S) row; ``say`` gets each row's Markdown line as it finishes."""
    rows = []
    for task in settings.tasks:
        for preset in settings.presets:
            for agent in settings.agents:
                for seeds in settings.seeds:
                    row = bench_seed_batching(agent, preset, task, seeds, settings)
                    rows.append(row)
                    say(markdown_row(row))
    return {
        "machine": machine_description(settings.device),
        "settings": asdict(settings),
        "rows": [asdict(row) for row in rows],
    }


MARKDOWN_HEADER = (
    "| agent | preset | task | seeds S | batches at once | lone runs at once (--jobs) | "
    "threads: each batch, each lone run | aggregate env steps/s: S batched | S lone runs | batched / lone |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def markdown_row(row: BatchBenchRow) -> str:
    return (
        f"| {row.agent} | {row.preset} | {row.task} | {row.seeds} | {row.batches} | {min(row.jobs, row.seeds)} | "
        f"{row.batch_threads}, {row.lone_threads} | {row.batched_steps_per_second:.2f} | "
        f"{row.lone_steps_per_second:.2f} | {row.speedup:.2f}x |"
    )


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        f"Machine: {machine['cpu']} ({machine['cores']} cores)"
        + (f", {machine['gpu']}" if "gpu" in machine else "")
        + f"; torch {machine['torch']}; commit {machine['commit']}.",
        "",
        MARKDOWN_HEADER,
    ]
    lines += [markdown_row(BatchBenchRow(**row)) for row in result["rows"]]
    return "\n".join(lines) + "\n"
