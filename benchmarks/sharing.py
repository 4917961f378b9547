"""Commands sharing the machine: one alone, then the same beside others.

    # two separate `harness run` commands started at once, against one alone
    python benchmarks/sharing.py pair -- harness run --suite mbpo --task hopper --agent sac --preset quick \\
        --steps 4000 --out {out} --wandb disabled
    # the README demo alone, then beside one other run
    python benchmarks/sharing.py beside --other "harness run --suite mbpo --task hopper --agent sac \\
        --preset quick --steps 100000 --out {out} --wandb disabled" -- bash -c "harness run ... --out {out} && ..."

``{out}`` in a command is replaced by a fresh folder for each start, so no two starts share
run folders. ``pair`` runs COMMAND alone, then two copies started at the same moment; ``beside``
runs COMMAND alone, then again while OTHER runs (OTHER is started first, given
``--head-start`` seconds, and stopped once COMMAND ends). Each start's wall time is measured,
and where COMMAND wrote ``harness run`` folders, the env steps/s that their summary.json
files report (the trainer's own clock: steps over training time). Nothing is set for the
commands: their thread counts are whatever the harness chooses, as for a user.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _start(command: list[str], root: Path, label: str) -> tuple[subprocess.Popen, Path]:
    out = root / label
    out.mkdir(parents=True, exist_ok=True)
    argv = [part.replace("{out}", str(out)) for part in command]
    log = open(root / f"{label}.log", "w")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return process, out


def _rates(out: Path) -> list[float]:
    """steps_per_second of every run folder below ``out`` (summary.json)."""
    return [json.loads(p.read_text()).get("steps_per_second") or 0.0 for p in sorted(out.rglob("summary.json"))]


def _wait(process: subprocess.Popen, started: float) -> float:
    code = process.wait()
    if code != 0:
        raise SystemExit(f"sharing: a command exited with code {code} (see its .log)")
    return time.perf_counter() - started


def alone(command: list[str], root: Path) -> dict:
    started = time.perf_counter()
    process, out = _start(command, root, "alone")
    seconds = _wait(process, started)
    return {"seconds": seconds, "steps_per_second": _rates(out)}


def pair(command: list[str], root: Path) -> dict:
    started = time.perf_counter()
    starts = [_start(command, root, f"together_{k}") for k in range(2)]
    seconds = [_wait(process, started) for process, _ in starts]
    return {"seconds": seconds, "steps_per_second": [_rates(out) for _, out in starts]}


def beside(command: list[str], other: list[str], root: Path, head_start: float) -> dict:
    background, _ = _start(other, root, "other")
    time.sleep(head_start)
    if background.poll() is not None:
        raise SystemExit("sharing: the other command ended before COMMAND started; give it more work")
    try:
        started = time.perf_counter()
        process, out = _start(command, root, "beside")
        seconds = _wait(process, started)
    finally:
        os.killpg(background.pid, signal.SIGTERM)
        background.wait()
    return {"seconds": seconds, "steps_per_second": _rates(out)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], usage="%(prog)s MODE [options] -- COMMAND")
    parser.add_argument("mode", choices=["pair", "beside"])
    parser.add_argument("--other", help="beside: the command running meanwhile ({out} allowed)")
    parser.add_argument("--head-start", type=float, default=10.0, help="beside: seconds OTHER runs first")
    parser.add_argument("--keep", help="keep the run folders and logs here (default: a temporary folder)")
    parser.add_argument("--json", dest="json_path")
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]
    if not command or (args.mode == "beside" and not args.other):
        raise SystemExit("sharing: give -- COMMAND (and --other for beside)")
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.keep or scratch)
        result = {"mode": args.mode, "command": command, "alone": alone(command, root)}
        if args.mode == "pair":
            result["together"] = pair(command, root)
            base = result["alone"]["seconds"]
            result["wall_time_ratios"] = [base / s for s in result["together"]["seconds"]]
        else:
            result["other"] = args.other
            result["beside"] = beside(command, shlex.split(args.other), root, args.head_start)
            result["slowdown"] = result["beside"]["seconds"] / result["alone"]["seconds"]
    print(json.dumps(result, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
