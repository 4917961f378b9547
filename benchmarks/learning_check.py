"""Learning benchmark: does an agent solve a task within a step budget, for every seed?

Runs ``harness run`` (the real CLI) and reads the run directories it writes. Example, the
foundation issue's check:

    python benchmarks/learning_check.py --suite classic --task inverted-pendulum \
        --agents sac sac-svg --seeds 3 --preset quick --threshold 900 --out runs/bench-ip

Prints a Markdown table (for docs/results.md): per run, the first evaluation step whose mean
return reached the threshold, the best return, steps done and wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path


def first_step_reaching(eval_csv: Path, threshold: float) -> int | None:
    with open(eval_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            if float(row["return_mean"]) >= threshold:
                return int(row["step"])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--agents", nargs="+", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threshold", type=float, required=True)
    parser.add_argument("--out", default="runs/benchmark")
    args = parser.parse_args()

    lines = [
        f"| agent | seed | first eval step with return >= {args.threshold:g} | best eval return | steps "
        "| wall time (s) |",
        "|---|---|---|---|---|---|",
    ]
    commands = []
    for agent in args.agents:
        command = [
            "harness",
            "run",
            "--suite",
            args.suite,
            "--task",
            args.task,
            "--agent",
            agent,
            "--seeds",
            str(args.seeds),
            "--preset",
            args.preset,
            "--jobs",
            str(args.jobs),
            "--out",
            args.out,
            "--wandb",
            "disabled",
        ]
        if args.steps:
            command += ["--steps", str(args.steps)]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        commands.append(f"{shlex.join(command)}  # {time.perf_counter() - started:.0f} s wall")
        for seed in range(args.seeds):
            folder = Path(args.out) / args.suite / args.task / agent / f"seed_{seed}"
            summary = json.loads((folder / "summary.json").read_text())
            reached = first_step_reaching(folder / "eval.csv", args.threshold)
            lines.append(
                f"| {agent} | {seed} | {reached if reached is not None else 'not reached'} | "
                f"{summary['best_eval_return']:.1f} | {summary['steps_done']} | {summary['wall_time']:.0f} |"
            )
    print("\n".join(["```", *commands, "```", "", *lines]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
