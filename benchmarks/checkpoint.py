"""Checkpoint benchmark: time and peak memory of one save and one load of a run's state
with a full 1M-transition replay buffer (default: mbpo/humanoid, obs 45, actions 17).

    python benchmarks/checkpoint.py                       # streaming save, the old save, load
    python benchmarks/checkpoint.py --capacity 100000 --repeats 1

Each measurement runs in a fresh subprocess: it builds the agent (the task's paper preset)
and a ``ReplayBuffer`` filled with random transitions, takes the trainer's checkpoint state,
then saves it (``RunDirectory.save_checkpoint``: torch.save streamed into the file) or saves
it the old way (``torch.save`` into an ``io.BytesIO``, then its bytes written to the file),
or loads it back into a buffer. Peak memory is the process's high-water RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), read before and after the operation, so its
increase is what the operation itself added on top of the state already in memory; torch
storage is counted, which tracemalloc would miss.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("save-bytesio", "save", "load")  # load reads what the streamed save wrote


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def build_state(suite: str, task: str, agent_name: str, capacity: int, with_agent: bool) -> tuple[dict, object]:
    """The trainer's checkpoint state (agent and a full replay buffer) and the buffer."""
    import numpy as np
    import torch

    from agents.replay import ReplayBuffer
    from harness.suites import get_task

    spec = get_task(suite, task)
    replay = ReplayBuffer(spec.obs_dim, spec.act_dim, capacity)
    rng = np.random.default_rng(0)
    for name in ("obs", "next_obs", "action", "reward"):
        array = getattr(replay, name)
        array[:] = rng.standard_normal(array.shape, dtype=np.float32)
    replay.episode_end[999::1000] = True
    replay.size, replay.position = capacity, 0
    state = {"progress": {"step": capacity}, "torch_rng": torch.get_rng_state()}
    if with_agent:
        from agents import SVGAgent
        from harness.config import build_run_config

        config = build_run_config(suite, task, agent_name, 0, preset="paper", wandb="disabled")
        agent = SVGAgent(spec.obs_dim, spec.act_dim, config.agent, config.trainer.total_steps, 0)
        state["agent"] = agent.state_dict()
    state["replay"] = replay.state_dict()  # views of the stored slots, as the trainer takes them
    return state, replay


def save_via_bytesio(run_dir, state: dict) -> None:
    """The save before streaming: the whole file built in memory, then written (same payload)."""
    import torch

    from harness.contract import atomic_write_bytes
    from harness.rundir import CHECKPOINT_FORMAT, code_version

    run_dir.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, "code": code_version(), "state": state}, buffer)
    atomic_write_bytes(run_dir.checkpoint_path, buffer.getvalue())


def child(args: argparse.Namespace) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    from harness.rundir import RunDirectory

    torch.set_num_threads(1)
    suite, task = args.task.split("/")
    run_dir = RunDirectory(args.folder)
    result: dict = {"mode": args.child}
    if args.child == "load":
        from agents.replay import ReplayBuffer
        from harness.suites import get_task

        spec = get_task(suite, task)
        replay = ReplayBuffer(spec.obs_dim, spec.act_dim, args.capacity)  # the trainer holds one already
        replay.obs[:] = 0  # touch its pages, as a trainer's full buffer has
        replay.next_obs[:] = 0
        result["before_mib"], result["peak_before_mib"] = current_mib(), peak_mib()
        started = time.perf_counter()
        state = run_dir.load_checkpoint()
        replay.load_state_dict(state["replay"])
        result["seconds"] = time.perf_counter() - started
    else:
        state, _replay = build_state(suite, task, args.agent, args.capacity, not args.no_agent)
        result["before_mib"], result["peak_before_mib"] = current_mib(), peak_mib()
        started = time.perf_counter()
        if args.child == "save":
            run_dir.save_checkpoint(state)
        else:
            save_via_bytesio(run_dir, state)
        result["seconds"] = time.perf_counter() - started
        result["file_mib"] = run_dir.checkpoint_path.stat().st_size / 2**20
    result["peak_after_mib"] = peak_mib()
    result["added_peak_mib"] = result["peak_after_mib"] - max(result["before_mib"], result["peak_before_mib"])
    return result


def run_child(mode: str, folder: Path, args: argparse.Namespace) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--folder",
        str(folder),
        "--task",
        args.task,
        "--agent",
        args.agent,
        "--capacity",
        str(args.capacity),
    ] + (["--no-agent"] if args.no_agent else [])
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="mbpo/humanoid", help="suite/task (its obs and action sizes)")
    parser.add_argument("--agent", default="sac-svg", help="the agent whose paper-size state is saved too")
    parser.add_argument("--no-agent", action="store_true", help="save the replay buffer alone")
    parser.add_argument("--capacity", type=int, default=1_000_000, help="transitions in the replay buffer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=".", help="where the checkpoint files are written (then deleted)")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0
    folder = Path(tempfile.mkdtemp(prefix="checkpoint-bench-", dir=args.dir))
    results = []
    try:
        for _ in range(args.repeats):
            for mode in MODES:
                results.append(run_child(mode, folder, args))
                print(json.dumps(results[-1]), file=sys.stderr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{args.task}, {args.capacity} transitions, agent {'none' if args.no_agent else args.agent} (paper preset)")
    print(f"{'operation':<34}{'seconds (median)':>18}{'added peak MiB':>16}{'RSS before MiB':>16}{'file MiB':>10}")
    names = {
        "save": "save, streamed (RunDirectory)",
        "save-bytesio": "save, BytesIO then write (old)",
        "load": "load into a ReplayBuffer",
    }
    for mode in MODES:
        rows = [r for r in results if r["mode"] == mode]
        file_mib = rows[0].get("file_mib")
        print(
            f"{names[mode]:<34}{statistics.median(r['seconds'] for r in rows):>18.2f}"
            f"{round(statistics.median(r['added_peak_mib'] for r in rows)):>16d}"
            f"{statistics.median(r['before_mib'] for r in rows):>16.0f}"
            f"{'' if file_mib is None else f'{file_mib:.0f}':>10}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
