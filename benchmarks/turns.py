"""Whole-loop env steps/s of two or more codes, timed in turns in one run.

    python benchmarks/turns.py --code before=/tmp/before --code after=. \\
        --agent sac --agent sac-svg --task mbpo/hopper --task poplin/pets-cheetah --rounds 3
    python benchmarks/turns.py --code after=. --agent sac --task mbpo/hopper \\
        --command "sb3=python /tmp/sb3bench/sb3_sac.py 500"

The machine's speed drifts from minute to minute, so codes are compared in turns: every
round measures every (agent, task) once with every code, one process at a time, and the
ratios are taken within a round. ``--code LABEL=PATH`` is an svgbench source tree (another
checkout or ``git worktree``, e.g. the commit before a change), optionally followed by
settings of its own after "+" (``--code update=.+agent.compile=update``): its own
``harness.bench.loop_steps_per_second`` runs in a fresh process with that tree first on
``sys.path``, so each code times its own trainer work (act, MuJoCo step, replay, normaliser,
update, metrics) after the seed steps, with ``--threads`` torch threads. ``--command
LABEL=CMD`` is any other program (e.g. another library's SAC in a scratch folder) run once
per round; the last line it prints is its env steps/s.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

MEASURE = (
    "import sys, json; from harness.bench import loop_steps_per_second; "
    "a = json.loads(sys.argv[1]); "
    "print(loop_steps_per_second(a['agent'], a['preset'], a['task'], 'cpu', tuple(a['overrides']), "
    "a['steps'], a['threads']))"
)


def measure_code(
    path: str, agent: str, preset: str, task: str, steps: int, threads: int, overrides: list[str]
) -> float:
    """Env steps/s of one whole-loop measurement by the svgbench tree at ``path``."""
    root = str(Path(path).resolve())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    arguments = json.dumps(
        {"agent": agent, "preset": preset, "task": task, "steps": steps, "threads": threads, "overrides": overrides}
    )
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, arguments], cwd=root, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"turns: {path} failed on {agent} {task}: {done.stderr.strip().splitlines()[-1:]}")
    return float(done.stdout.strip().splitlines()[-1])


def measure_command(command: str) -> float:
    done = subprocess.run(shlex.split(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"turns: {command!r} failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(done.stdout.strip().splitlines()[-1])


def labelled(pairs: list[str], what: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        label, sep, value = pair.partition("=")
        if not sep or not label or not value:
            raise SystemExit(f"turns: {what} must be LABEL=VALUE, not {pair!r}")
        out[label] = value
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--code", action="append", default=[], help="LABEL=PATH of an svgbench tree (+key=value: its own settings)"
    )
    parser.add_argument("--command", action="append", default=[], help="LABEL=CMD printing env steps/s last")
    parser.add_argument("--agent", action="append", dest="agents")
    parser.add_argument("--task", action="append", dest="tasks")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--steps", type=int, default=400, help="timed learning steps per measurement")
    parser.add_argument(
        "--threads",
        type=int,
        action="append",
        help="torch threads (repeatable: each code is timed at each count, labelled CODE/Nt); default 1",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("overrides", nargs="*", help="key=value settings for every svgbench code")
    args = parser.parse_args(argv)
    codes, commands = labelled(args.code, "--code"), labelled(args.command, "--command")
    thread_counts = args.threads or [1]
    if len(thread_counts) > 1:
        codes = {f"{label}/{n}t": (path, n) for label, path in codes.items() for n in thread_counts}
    else:
        codes = {label: (path, thread_counts[0]) for label, path in codes.items()}
    own = {label: path.split("+") for label, (path, _) in codes.items()}  # a tree, then its own settings
    agents, tasks = args.agents or ["sac", "sac-svg"], args.tasks or ["mbpo/hopper"]
    records = []
    for round_number in range(1, args.rounds + 1):
        for task in tasks:
            for agent in agents:
                for label, (_, threads) in codes.items():
                    tree, *settings = own[label]
                    rate = measure_code(tree, agent, args.preset, task, args.steps, threads, args.overrides + settings)
                    records.append({"round": round_number, "code": label, "agent": agent, "task": task, "rate": rate})
                    print(f"round {round_number} {label:>10} {agent:>8} {task:<22} {rate:8.1f} env steps/s", flush=True)
        for label, command in commands.items():
            rate = measure_command(command)
            records.append({"round": round_number, "code": label, "agent": "-", "task": "-", "rate": rate})
            print(f"round {round_number} {label:>10} {'-':>8} {'-':<22} {rate:8.1f} env steps/s", flush=True)
    print()
    print(summary(records, list(codes) + list(commands)))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"settings": vars(args), "records": records}, indent=2) + "\n")


def summary(records: list[dict], labels: list[str]) -> str:
    """A markdown table: per (agent, task), each code's rate in every round and its median."""
    rows = ["| agent | task | code | env steps/s by round | median |", "|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["agent"], r["task"]) for r in records))
    for agent, task in keys:
        for label in labels:
            rates = [r["rate"] for r in records if (r["agent"], r["task"], r["code"]) == (agent, task, label)]
            if rates:
                rows.append(
                    f"| {agent} | {task} | {label} | {', '.join(f'{x:.1f}' for x in rates)} | "
                    f"{statistics.median(rates):.1f} |"
                )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
