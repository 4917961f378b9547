"""Throughput of the agents on this machine (``harness bench``, benchmarks/throughput.py).

For each (agent, preset, task): the agent of a real run config (``harness run``'s config
for that suite, task, agent and preset), its replay buffer filled with random transitions
of the task's sizes, then

- ms per env step of updates: Algorithm 1's work for one env step (``agent.update``),
  median of ``updates`` calls after ``warmup`` calls, with min and max;
- its break-down by part (``torch.profiler`` labels in agents/agent.py: dynamics, critic,
  actor rollout forward, actor rollout backward (with the actor's optimiser step; the
  temperature's gradient comes from the same backward pass), temperature (its optimiser
  step), reward and termination, target update, replay sampling), from one profiled
  update, as fractions of the labelled parts' time (CPU time; on CUDA the device time of
  kernels launched from the labelled code: backward kernels run on autograd's thread and
  are attributed only partly);
- FLOPs per env step, counted from the matmul shapes of every layer an update runs
  (``torch.utils.flop_counter``), and the achieved fraction of this device's matmul peak
  (an fp32 matmul measured here with the same threads);
- env steps/s of the whole training loop: the trainer's per-step work (act, MuJoCo step,
  replay, normaliser, update, metrics) on the task's real environment, no evaluation;
- with ``parallel`` N > 1: env steps/s of N such loops at once, each in its own process
  on its share of the cores (as ``harness run --jobs N`` runs seeds), against one alone.

Updates are timed at env step ``UPDATE_STEP`` (past the authors' 10k-step model-free
warm-up), so the actor uses the H-step model expansion.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import platform
import queue
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from harness.config import build_run_config
from harness.contract import git_commit
from harness.process import available_cores, core_share, pin_to_cores, prepare_training_process
from harness.suites import get_task

UPDATE_STEP = 20_000
FILLED_TRANSITIONS = 20_000
PARTS = (
    "single-step update (compiled)",
    "dynamics (compiled)",
    "dynamics",
    "critic",
    "actor rollout forward",
    "actor rollout backward",
    "temperature",
    "reward and termination",
    "target update",
    "replay sampling",
)
DEFAULT_AGENTS = ("sac", "sac-svg", "mve", "sac-svg-ensemble")
DEFAULT_PRESETS = ("paper", "authors-code")
DEFAULT_TASKS = ("mbpo/hopper", "mbpo/humanoid")


@dataclass
class BenchSettings:
    agents: tuple[str, ...] = DEFAULT_AGENTS
    presets: tuple[str, ...] = DEFAULT_PRESETS
    tasks: tuple[str, ...] = DEFAULT_TASKS  # suite/task
    device: str = "cpu"
    threads: int = 1
    updates: int = 20
    warmup: int = 3
    loop_steps: int = 20  # learning steps of the whole-loop measurement (0: skip it)
    parallel: int = 1  # > 1: also N whole loops at once
    overrides: tuple[str, ...] = ()


@dataclass
class BenchRow:
    agent: str
    preset: str
    task: str
    device: str
    threads: int
    update_ms_median: float
    update_ms_min: float
    update_ms_max: float
    gflop_per_step: float
    peak_fraction: float
    breakdown: dict[str, float] = field(default_factory=dict)  # part -> fraction of one update
    loop_steps_per_second: float | None = None
    parallel: dict[str, float] | None = None
    compile_mode: str = "off"  # agent.compile as the agent applied it ("auto" resolved)


def _synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak_gflops(device: str, size: int | None = None, repeats: int = 10) -> float:
    """The best fp32 matmul rate of ``repeats`` (size x size) @ (size x size) products."""
    import torch

    dev = torch.device(device)
    size = size or (8192 if dev.type == "cuda" else 2048)
    a, b = torch.randn(size, size, device=dev), torch.randn(size, size, device=dev)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        _synchronize(dev)
        started = time.perf_counter()
        a @ b
        _synchronize(dev)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def build(agent: str, preset: str, task: str, device: str, overrides: tuple[str, ...], seed: int = 0):
    """(run config, task spec, agent, replay) for one benchmark row."""
    from agents import SVGAgent
    from agents.replay import ReplayBuffer

    suite, name = task.split("/")
    config = build_run_config(suite, name, agent, seed, preset=preset, overrides=[f"agent.device={device}", *overrides])
    spec = get_task(suite, name)
    learner = SVGAgent(spec.obs_dim, spec.act_dim, config.agent, int(config.trainer.total_steps or spec.budget), seed)
    replay_device = learner.device if config.agent.fast_path.replay_on_device else None
    replay = ReplayBuffer(
        spec.obs_dim, spec.act_dim, max(FILLED_TRANSITIONS, config.trainer.seed_steps + 1000), replay_device
    )
    return config, spec, learner, replay


def fill_random(learner, replay, obs_dim: int, act_dim: int, count: int = FILLED_TRANSITIONS) -> None:
    """Random transitions in episodes of 1000 steps (sizes, not values, set the cost)."""
    rng = np.random.default_rng(0)
    for t in range(count):
        obs = rng.normal(size=obs_dim)
        replay.add(
            obs,
            rng.uniform(-1, 1, act_dim),
            float(rng.normal()),
            obs + 0.1 * rng.normal(size=obs_dim),
            False,
            t % 1000 == 999,
        )
        learner.observe(obs)


def time_updates(learner, replay, updates: int, warmup: int) -> list[float]:
    """Seconds of each of ``updates`` timed calls of ``agent.update``, after ``warmup``."""
    from agents.metrics import MetricSums

    metrics = MetricSums()
    for _ in range(warmup):
        metrics.add(learner.update(replay, UPDATE_STEP), UPDATE_STEP)
    metrics.read()
    seconds = []
    for _ in range(updates):
        _synchronize(learner.device)
        started = time.perf_counter()
        metrics.add(learner.update(replay, UPDATE_STEP), UPDATE_STEP)
        _synchronize(learner.device)
        seconds.append(time.perf_counter() - started)
    metrics.read()
    return seconds


def update_breakdown(learner, replay) -> dict[str, float]:
    """Each part's share of one profiled update (CPU time on the CPU, device time on CUDA)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if learner.device.type == "cuda" else [])
    with quiet_stderr(), profile(activities=activities) as profiler:  # the profiler's own log lines
        learner.update(replay, UPDATE_STEP)
        _synchronize(learner.device)
    times: dict[str, float] = dict.fromkeys(PARTS, 0.0)
    total = 0.0
    for event in profiler.key_averages():
        if event.key in times:
            spent = event.device_time_total if learner.device.type == "cuda" else event.cpu_time_total
            times[event.key] += spent
            total += spent
    return {part: spent / total for part, spent in times.items() if total > 0}


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (C++ libraries write there directly) for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def count_gflop(learner, replay) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        learner.update(replay, UPDATE_STEP)
    return counter.get_total_flops() / 1e9


def loop_steps_per_second(
    agent: str,
    preset: str,
    task: str,
    device: str,
    overrides: tuple[str, ...],
    steps: int,
    threads: int | None = None,
    start: Any = None,
) -> float:
    """Env steps/s of the trainer's per-step work (act, env step, replay, normaliser,
    update, metric sums; a train.csv read at each episode end), after the seed steps."""
    from agents.metrics import MetricSums

    prepare_training_process(threads)  # in a --parallel worker, its first call
    config, spec, learner, replay = build(agent, preset, task, device, overrides)
    env = spec.make_env()
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    metrics = MetricSums()

    def env_step(action):
        nonlocal obs
        next_obs, reward, terminated, truncated, _ = env.step(action)
        replay.add(obs, action, float(reward), next_obs, terminated, truncated)
        learner.observe(next_obs)
        if terminated or truncated:
            next_obs, _ = env.reset()
            learner.observe(next_obs)
            metrics.read()
        obs = next_obs

    for _ in range(config.trainer.seed_steps):
        env_step(rng.uniform(-1, 1, spec.act_dim).astype(np.float32))
    for t in range(2):  # warm-up
        env_step(learner.act(obs, deterministic=False))
        metrics.add(learner.update(replay, UPDATE_STEP + t), UPDATE_STEP + t)
    if start is not None:  # parallel runs start their timed steps together
        start.wait()
    _synchronize(learner.device)
    started = time.perf_counter()
    for t in range(steps):
        env_step(learner.act(obs, deterministic=False))
        metrics.add(learner.update(replay, UPDATE_STEP + t), UPDATE_STEP + t)
    metrics.read()
    _synchronize(learner.device)
    return steps / (time.perf_counter() - started)


# loop_steps_per_second's positional arguments: agent, preset, task, device, overrides, steps
LoopArgs: TypeAlias = tuple[str, str, str, str, tuple[str, ...], int]


def _parallel_worker(args: LoopArgs, cores: list[int], start: Any, results: Any, threads: int | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers
    pin_to_cores(cores)
    results.put(loop_steps_per_second(*args, threads=threads or len(cores), start=start))


def concurrent_loop_rates(
    args: tuple | list[tuple],
    core_sets: list[list[int]],
    threads: int | None = None,
    worker: Callable[..., None] = _parallel_worker,
) -> list[float]:
    """Env steps/s of ``loop_steps_per_second(*args)`` in one process per core set, all
    started together (each pinned to its cores, with ``threads`` torch threads: by default
    one per core). ``worker`` (a module-level function, as ``_parallel_worker``) measures
    something else in each process: it receives (its args, its cores, the start barrier, the
    result queue, ``threads``) and puts one rate. ``args`` is one tuple for every process, or
    a list of one per core set."""
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(len(core_sets)), context.Queue()
    each = args if isinstance(args, list) else [args] * len(core_sets)
    workers = [
        context.Process(target=worker, args=(own, chosen, start, results, threads))
        for own, chosen in zip(each, core_sets)
    ]
    for process in workers:
        process.start()
    measured: list[float] = []
    try:
        while len(measured) < len(workers):
            try:
                measured.append(results.get(timeout=5))
            except queue.Empty:
                dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
                if dead:  # the others would wait for it at the barrier for ever
                    raise RuntimeError(f"a benchmark process died (exit code {dead[0]})") from None
    finally:
        for process in workers:
            if process.is_alive() and len(measured) < len(workers):
                process.terminate()
            process.join()
    return measured


def parallel_steps_per_second(
    agent: str, preset: str, task: str, device: str, overrides: tuple[str, ...], steps: int, processes: int
) -> dict[str, float]:
    """``processes`` loops at once, each on its share of the cores (``harness run --jobs N``'s
    rule), against one loop alone on all the cores and one alone on one share: env steps/s
    of each, and the speed-ups."""
    cores = available_cores()

    def rates(core_sets: list[list[int]]) -> list[float]:
        return concurrent_loop_rates((agent, preset, task, device, overrides, steps), core_sets)

    all_cores = rates([cores])[0]
    one_share = rates([core_share(0, processes, cores)])[0]
    together = sum(rates([core_share(k, processes, cores) for k in range(processes)]))
    return {
        "processes": processes,
        "cores": len(cores),
        "alone_steps_per_second": all_cores,
        "alone_on_a_share_steps_per_second": one_share,
        "together_steps_per_second": together,
        "speedup": together / all_cores,
        "speedup_over_a_share": together / one_share,
    }


def bench_row(agent: str, preset: str, task: str, settings: BenchSettings, peak: float) -> BenchRow:
    """One row, in a process ``run_benchmark`` has prepared."""
    _, spec, learner, replay = build(agent, preset, task, settings.device, settings.overrides)
    fill_random(learner, replay, spec.obs_dim, spec.act_dim)
    seconds = time_updates(learner, replay, settings.updates, settings.warmup)
    gflop = count_gflop(learner, replay)
    median = statistics.median(seconds)
    row = BenchRow(
        agent,
        preset,
        task,
        str(learner.device),
        settings.threads,
        1000 * median,
        1000 * min(seconds),
        1000 * max(seconds),
        gflop,
        gflop / median / peak,
        update_breakdown(learner, replay),
        compile_mode=learner.compile_choice.mode,
    )
    if settings.loop_steps > 0:
        row.loop_steps_per_second = loop_steps_per_second(
            agent, preset, task, settings.device, settings.overrides, settings.loop_steps, settings.threads
        )
    if settings.parallel > 1:
        row.parallel = parallel_steps_per_second(
            agent, preset, task, settings.device, settings.overrides, settings.loop_steps or 20, settings.parallel
        )
    return row


def machine_description(device: str) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": len(available_cores()),
        "torch": torch.__version__,
        "commit": git_commit(),
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def run_benchmark(settings: BenchSettings, say=print) -> dict[str, Any]:
    """Every (agent, preset, task) row; ``say`` gets one line per row as it finishes."""
    prepare_training_process(settings.threads)
    peak = matmul_peak_gflops(settings.device)
    rows = []
    for task in settings.tasks:
        for preset in settings.presets:
            for agent in settings.agents:
                row = bench_row(agent, preset, task, settings, peak)
                rows.append(row)
                say(markdown_row(row))
    return {
        "machine": machine_description(settings.device),
        "matmul_peak_gflops": peak,
        "settings": asdict(settings),
        "rows": [asdict(row) for row in rows],
    }


MARKDOWN_HEADER = (
    "| agent | preset | task | device, threads (, compile mode if not off) | ms/env step: median (min-max) | "
    "GFLOP/step | % of matmul peak | loop env steps/s | largest parts of an update |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def markdown_row(row: BenchRow) -> str:
    parts = sorted(row.breakdown.items(), key=lambda item: -item[1])[:4]
    largest = ", ".join(f"{name} {100 * share:.0f}%" for name, share in parts)
    loop = f"{row.loop_steps_per_second:.2f}" if row.loop_steps_per_second else "-"
    compiled = "" if row.compile_mode == "off" else f", {row.compile_mode}"
    return (
        f"| {row.agent} | {row.preset} | {row.task} | {row.device}, {row.threads}{compiled} | "
        f"{row.update_ms_median:.1f} ({row.update_ms_min:.1f}-{row.update_ms_max:.1f}) | "
        f"{row.gflop_per_step:.2f} | {100 * row.peak_fraction:.0f}% | {loop} | {largest} |"
    )


PARALLEL_HEADER = (
    "| agent | preset | task | runs at once | cores | env steps/s: one run on all cores | "
    "one run on its share | all runs together | speed-up over one on all cores | over one on its share |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def parallel_row(row: BenchRow) -> str:
    p = row.parallel or {}
    return (
        f"| {row.agent} | {row.preset} | {row.task} | {p['processes']} | {p['cores']} | "
        f"{p['alone_steps_per_second']:.2f} | {p['alone_on_a_share_steps_per_second']:.2f} | "
        f"{p['together_steps_per_second']:.2f} | {p['speedup']:.2f}x | {p['speedup_over_a_share']:.2f}x |"
    )


def markdown(result: dict[str, Any]) -> str:
    machine = result["machine"]
    lines = [
        f"Machine: {machine['cpu']} ({machine['cores']} cores)"
        + (f", {machine['gpu']}" if "gpu" in machine else "")
        + f"; torch {machine['torch']}; commit {machine['commit']}; "
        f"measured fp32 matmul peak {result['matmul_peak_gflops']:.0f} GFLOP/s.",
        "",
        MARKDOWN_HEADER,
    ]
    rows = [BenchRow(**row) for row in result["rows"]]
    lines += [markdown_row(row) for row in rows]
    parallel = [row for row in rows if row.parallel]
    if parallel:
        lines += ["", PARALLEL_HEADER]
        lines += [parallel_row(r) for r in parallel]
    return "\n".join(lines) + "\n"


def write_outputs(result: dict[str, Any], json_path: str | None, markdown_path: str | None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    if markdown_path:
        Path(markdown_path).write_text(markdown(result))
