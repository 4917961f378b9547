"""Throughput benchmark: agent updates per second (Algorithm 1's work per env step).

    python benchmarks/throughput.py --task mbpo/humanoid --preset paper --updates 200

Builds the agent of a real run config, fills the replay buffer with random transitions of
the task's sizes and times ``agent.update``; reports ms per env step for each agent. Runs
on CUDA when available (``agent.device=auto``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from agents import SVGAgent
from agents.replay import ReplayBuffer
from harness.config import build_run_config


def time_updates(suite: str, task: str, agent: str, preset: str, updates: int, overrides: list[str]) -> float:
    config = build_run_config(suite, task, agent, 0, preset=preset, overrides=overrides)
    from harness.suites import get_task

    spec = get_task(suite, task)
    learner = SVGAgent(spec.obs_dim, spec.act_dim, config.agent, config.trainer.total_steps, 0)
    replay = ReplayBuffer(spec.obs_dim, spec.act_dim, 20_000)
    rng = np.random.default_rng(0)
    for t in range(20_000):
        obs = rng.normal(size=spec.obs_dim)
        replay.add(obs, rng.uniform(-1, 1, spec.act_dim), 1.0, obs + 0.1 * rng.normal(size=spec.obs_dim),
                   False, t % 1000 == 999)
        learner.observe(obs)
    for _ in range(10):
        learner.update(replay, 20_000)
    if learner.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(updates):
        learner.update(replay, 20_000)
    if learner.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / updates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="mbpo/humanoid", help="suite/task")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--agents", nargs="+", default=["sac", "sac-svg"])
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    suite, task = args.task.split("/")
    device = "cuda" if torch.cuda.is_available() else f"cpu ({args.threads} threads)"
    print(f"| agent | task | preset | device | ms per env step | env steps/s (updates only) |")
    print("|---|---|---|---|---|---|")
    for agent in args.agents:
        seconds = time_updates(suite, task, agent, args.preset, args.updates, args.overrides)
        print(f"| {agent} | {args.task} | {args.preset} | {device} | {1000 * seconds:.1f} | {1 / seconds:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
