"""The floor under one env step of training at a preset's sizes: the matrix products an
update runs, each timed alone at its own shape, plus the simulator's step.

    python benchmarks/floor.py --agent sac --agent sac-svg --preset quick --task mbpo/hopper

For each (agent, preset, task): one update of a real agent (``harness bench``'s set-up:
a run config, a replay buffer of 20,000 random transitions, env step 20,000) is recorded
with ``torch.profiler`` (shapes, strides and transposition of every ``mm``, ``addmm``,
``bmm`` and ``baddbmm``, forward and backward); each distinct product is then timed alone,
on fresh tensors of the same shapes and layout, in this process with the same threads
(median of many calls), and the floor is the sum over the update's products of their
times, plus the median of the task's MuJoCo ``env.step`` under random actions. Everything
else an update does (elementwise kernels, autograd's bookkeeping, Python) is above the
floor; so is acting. The update's own time is measured by ``harness bench``.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def recorded_products(agent: str, preset: str, task: str, overrides: tuple[str, ...]) -> list[tuple]:
    """(op, input shapes, input strides) of every matrix product of one update."""
    from torch.profiler import ProfilerActivity, profile

    from harness import bench

    # the eager update: its products are aten calls the profiler records one by one
    _, spec, learner, replay = bench.build(agent, preset, task, "cpu", ("agent.compile=off", *overrides))
    bench.fill_random(learner, replay, spec.obs_dim, spec.act_dim)
    for _ in range(3):
        learner.update(replay, bench.UPDATE_STEP)
    with bench.quiet_stderr(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        learner.update(replay, bench.UPDATE_STEP)
    products = []
    for event in profiler.events():
        if event.name in MATMULS:
            pairs = [
                (tuple(shape), tuple(stride))
                for shape, stride in zip(
                    event.input_shapes, event.structured_input_strides or [[]] * len(event.input_shapes)
                )
                if shape
            ]
            products.append((event.name, tuple(s for s, _ in pairs), tuple(t for _, t in pairs)))
    return products


def _operand(shape: tuple, strides: tuple | None):
    import torch

    if strides and len(shape) >= 2 and len(strides) == len(shape) and strides[-2] == 1 and strides[-1] > 1:
        # column-major operand (a transposed view, as autograd's backward passes them)
        return torch.randn(*shape[:-2], shape[-1], shape[-2]).transpose(-1, -2)
    return torch.randn(*shape)


def time_product(op: str, shapes: tuple, strides: tuple, calls: int = 200) -> float:
    """Median seconds of one product of these shapes and layouts, timed alone."""
    import torch

    layouts = list(strides) + [None] * (len(shapes) - len(strides))
    args = [_operand(shape, layout) for shape, layout in zip(shapes, layouts)]
    fn = {"aten::mm": torch.mm, "aten::addmm": torch.addmm, "aten::bmm": torch.bmm, "aten::baddbmm": torch.baddbmm}[op]
    for _ in range(20):
        fn(*args)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def env_step_seconds(task: str, steps: int = 2000) -> float:
    from harness.suites import get_task

    suite, name = task.split("/")
    spec = get_task(suite, name)
    env = spec.make_env()
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(steps):
        action = rng.uniform(-1, 1, spec.act_dim).astype(np.float32)
        started = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        samples.append(time.perf_counter() - started)
        if terminated or truncated:
            env.reset()
    env.close()
    return statistics.median(samples)


def floor(agent: str, preset: str, task: str, overrides: tuple[str, ...] = ()) -> dict:
    products = recorded_products(agent, preset, task, overrides)
    counts = collections.Counter(products)
    seconds = {key: time_product(*key) for key in counts}
    matmul = sum(seconds[key] * n for key, n in counts.items())
    flop = sum(n * _flop(op, shapes) for (op, shapes, _), n in counts.items())
    env = env_step_seconds(task)
    return {
        "agent": agent,
        "preset": preset,
        "task": task,
        "products": sum(counts.values()),
        "distinct_products": len(counts),
        "matmul_ms": 1000 * matmul,
        "gflop": flop / 1e9,
        "matmul_gflops": flop / matmul / 1e9,
        "env_step_ms": 1000 * env,
        "floor_ms": 1000 * (matmul + env),
        "floor_steps_per_second": 1.0 / (matmul + env),
    }


def _flop(op: str, shapes: tuple) -> float:
    """2 m n k of the product (times the batch for bmm)."""
    a, b = (shapes[1], shapes[2]) if op in ("aten::addmm", "aten::baddbmm") else (shapes[0], shapes[1])
    batch = a[0] if len(a) == 3 else 1
    return 2.0 * batch * a[-2] * a[-1] * b[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", action="append", dest="agents")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--task", action="append", dest="tasks")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    from harness.process import prepare_training_process

    prepare_training_process(args.threads)
    rows = [
        floor(agent, args.preset, task, tuple(args.overrides))
        for task in args.tasks or ["mbpo/hopper"]
        for agent in args.agents or ["sac", "sac-svg"]
    ]
    print(
        "| agent | preset | task | products per update | GFLOP | matmul ms (alone) | GFLOP/s | env step ms "
        "| floor ms/env step | floor env steps/s |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['agent']} | {r['preset']} | {r['task']} | {r['products']} | {r['gflop']:.3f} | "
            f"{r['matmul_ms']:.2f} | {r['matmul_gflops']:.0f} | {r['env_step_ms']:.3f} | {r['floor_ms']:.2f} | "
            f"{r['floor_steps_per_second']:.0f} |"
        )
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
