"""SIGKILL at several points of a run, resumed by rerunning the same command, ends exactly
where an uninterrupted run of the same seed ends (issue 8, "Done means").

The run is driven as a user drives it: ``python -m harness.cli run ...`` in a subprocess,
killed with SIGKILL (no handler runs, nothing is flushed or checkpointed on the way out)
at moments read from its run folder's files, then the same command is run again. From the
files' point of view a kill can leave a run folder in these states, and the test produces
each of them on one run:

1. no checkpoint yet, CSV rows already written (during the seed steps): a rerun starts over;
2. a checkpoint just written, during the seed steps: a rerun resumes the random actions;
3. an evaluation row written and its checkpoint not (yet) complete (best effort: a window of
   milliseconds; otherwise this is state 2 again, after the training began): a rerun drops
   the row and repeats the interval;
4. training rows past the last checkpoint (a kill between checkpoints, which is also what a
   kill during an evaluation leaves, as evaluation writes nothing until its row): a rerun
   truncates them and repeats the interval.

Then eval.csv (every column but wall_time), train.csv (every column but steps_per_second)
and the final checkpoint (every tensor of the agent's state, and the rest of the trainer's
state but its wall-clock time) must equal those of the uninterrupted run, bit for bit.
"""

from __future__ import annotations

import csv
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

STEPS, SEED_STEPS, EVAL_EVERY = 600, 300, 150
OVERRIDES = [
    "agent.hidden_dim=16",
    "agent.model_hidden_dim=16",
    "agent.gru_hidden_dim=16",
    "agent.step_batch_size=16",
    "agent.seq_batch_size=16",
    f"trainer.seed_steps={SEED_STEPS}",
    f"trainer.eval_every={EVAL_EVERY}",
    "trainer.eval_episodes=2",
    # one torch thread per run: the straight and the killed run train at once, and a thread per
    # core each, spinning against the other's, slows a tiny update tens of times; an
    # operational key, so it changes no number the test compares
    "trainer.torch_threads=1",
]
TIMING_COLUMNS = {"wall_time", "steps_per_second"}  # the only columns allowed to differ
TIMEOUT = 120  # seconds for one launch; a tiny run takes a few


def command(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--suite",
        "classic",
        "--task",
        "inverted-pendulum",
        "--agent",
        "sac-svg",
        "--preset",
        "quick",
        "--steps",
        str(STEPS),
        "--out",
        str(out),
        "--wandb",
        "disabled",
        *OVERRIDES,
    ]


def environment() -> dict[str, str]:
    return dict(os.environ, WANDB_SILENT="true", WANDB_MODE="disabled")


def run_folder(out: Path) -> Path | None:
    found = sorted(out.glob("classic/inverted-pendulum/*/seed_0"))
    assert len(found) <= 1, found
    return found[0] if found else None


def _complete_rows(path: Path) -> list[str]:
    """The CSV's data lines that are complete (a line being written has no newline yet)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    lines = text.split("\n")[:-1]  # the part after the last newline is incomplete (or empty)
    return lines[1:]


@dataclass
class FolderState:
    """What a run folder shows at one moment: the steps of its CSV rows and its checkpoint."""

    train_steps: list[int]
    eval_steps: list[int]
    checkpoint_mtime: int | None  # checkpoint/state.pt's mtime in ns, None when absent
    has_checkpoint: bool  # state.pt or state.prev.pt: a rerun resumes rather than starts over

    @classmethod
    def read(cls, folder: Path | None) -> FolderState:
        if folder is None:
            return cls([], [], None, False)

        def steps(name):
            return [int(line.split(",", 1)[0]) for line in _complete_rows(folder / name)]

        try:
            mtime = (folder / "checkpoint" / "state.pt").stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        has = mtime is not None or (folder / "checkpoint" / "state.prev.pt").exists()
        return cls(steps("train.csv"), steps("eval.csv"), mtime, has)


def launch_and_kill(out: Path, when: Callable[[FolderState], bool], log: Path) -> FolderState:
    """Start the command (stderr to ``log``), poll its run folder every millisecond, SIGKILL it
    the moment ``when(folder state)`` holds; returns the folder's state after the kill."""
    with open(log, "ab") as stderr:
        process = subprocess.Popen(
            command(out), stdout=subprocess.DEVNULL, stderr=stderr, env=environment(), start_new_session=True
        )
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"the run ended (exit {process.returncode}) before the kill point; "
                    f"stderr: {log.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("the kill point was never reached")
            if when(FolderState.read(run_folder(out))):
                break
            time.sleep(0.001)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: the run and anything it started
        process.wait()
    assert process.returncode == -signal.SIGKILL
    return FolderState.read(run_folder(out))


def run_to_end(out: Path, log: Path) -> subprocess.CompletedProcess:
    with open(log, "ab") as stderr:
        done = subprocess.run(
            command(out), stdout=subprocess.DEVNULL, stderr=stderr, env=environment(), timeout=TIMEOUT
        )
    assert done.returncode == 0, log.read_text()[-3000:]
    return done


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def assert_same_csv(a: Path, b: Path) -> None:
    columns_a, rows_a = read_csv(a)
    columns_b, rows_b = read_csv(b)
    assert columns_a == columns_b, a.name
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b], a.name
    kept = [c for c in columns_a if c not in TIMING_COLUMNS]
    for row_a, row_b in zip(rows_a, rows_b):
        assert {c: row_a[c] for c in kept} == {c: row_b[c] for c in kept}, (a.name, row_a["step"])


def differences(a, b, path: str = "") -> list[str]:
    """Where two checkpoint states differ (tensors bit for bit, dtype and shape included)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
        return [] if same else [path]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path} keys {sorted(map(str, set(a) ^ set(b)))}"]
        return [d for key in a for d in differences(a[key], b[key], f"{path}/{key}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{path} length"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:  # both NaN
        return []
    return [] if (type(a) is type(b) and a == b) else [path]


SIMULATOR_ARRAYS = ("qacc", "xpos", "xquat", "cvel", "cfrc_ext", "sensordata", "qfrc_actuator", "actuator_force")


def simulator_state(mjdata: torch.Tensor) -> dict[str, torch.Tensor]:
    """The physics in a checkpoint's pickled ``MjData``: MuJoCo's integration state (time,
    qpos, qvel, act, warm start, ctrl, applied forces, mocap, user data, plugins) and the
    derived quantities envs read. Not the pickle's bytes: they also hold the profiler's
    wall-clock timings and scratch memory that the next step overwrites (e.g. the sparse
    Jacobian's arrays of a dense-Jacobian model), which differ between two runs of one seed."""
    data = pickle.loads(mjdata.numpy().tobytes())  # written by this test's own runs
    which = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(data.model, which))
    mujoco.mj_getState(data.model, data, state, which)
    arrays = {"integration": state, **{name: np.array(getattr(data, name)) for name in SIMULATOR_ARRAYS}}
    return {name: torch.from_numpy(array) for name, array in arrays.items()}


def load_state(folder: Path) -> dict:
    """The checkpoint a rerun resumes from: state.pt, or state.prev.pt when a kill fell
    between the save's two renames."""
    path = folder / "checkpoint" / "state.pt"
    if not path.exists():
        path = folder / "checkpoint" / "state.prev.pt"
    return torch.load(path, map_location="cpu", weights_only=True)["state"]


def resume_point(out: Path) -> int | None:
    """The step a rerun resumes from (None: it starts over)."""
    folder = run_folder(out)
    if folder is None or not FolderState.read(folder).has_checkpoint:
        return None
    return int(load_state(folder)["progress"]["step"])


def assert_resumed_from(log: Path, step: int | None) -> None:
    """The launch's stderr says it resumed from ``step`` (item 4's one line), or nothing of
    resuming when it started over: a rerun that silently started over would end identical too."""
    text = log.read_text()
    if step is None:
        assert "resuming" not in text, text[-2000:]
    else:
        assert re.search(rf"resuming .* from step {step}\b", text), text[-2000:]


@pytest.mark.slow
def test_sigkill_at_several_points_then_rerun_ends_identical_to_an_uninterrupted_run(tmp_path):
    straight_out, killed_out = tmp_path / "straight", tmp_path / "killed"
    logs = (tmp_path / f"launch_{n}.log" for n in range(100))
    # the uninterrupted run, alongside the interrupted one
    with open(tmp_path / "straight.log", "wb") as straight_log:
        straight = subprocess.Popen(
            command(straight_out),
            stdout=subprocess.DEVNULL,
            stderr=straight_log,
            env=environment(),
            start_new_session=True,
        )
    try:
        hit = []

        # 1. during the seed steps, before the first checkpoint (a window of tens of
        # milliseconds: tried again on a fresh folder when the checkpoint came first)
        for _attempt in range(5):
            after = launch_and_kill(
                killed_out, lambda now: bool(now.train_steps) and not now.has_checkpoint, next(logs)
            )
            if not after.has_checkpoint:
                hit.append("before any checkpoint")
                break
            shutil.rmtree(killed_out)
        assert hit, "could not kill the run before its first checkpoint in 5 tries"
        assert after.train_steps and not after.eval_steps

        # 2. right after the first checkpoint (step 150, still acting randomly)
        log = next(logs)
        after = launch_and_kill(killed_out, lambda now: now.checkpoint_mtime is not None, log)
        assert_resumed_from(log, None)
        assert after.has_checkpoint and after.eval_steps[-1] < SEED_STEPS
        resumed = resume_point(killed_out)
        hit.append(f"right after the checkpoint at step {resumed}")

        # 3. the moment the evaluation row of step 300 appears, before its checkpoint is complete
        log = next(logs)
        after = launch_and_kill(killed_out, lambda now: SEED_STEPS in now.eval_steps, log)
        assert_resumed_from(log, resumed)
        resumed = resume_point(killed_out)
        if resumed < SEED_STEPS:
            hit.append(f"between the eval row of step {SEED_STEPS} and its checkpoint (resumes from {resumed})")
        else:
            hit.append(f"just after the checkpoint at step {SEED_STEPS} (the eval-row window was missed)")

        # 4. between checkpoints, with training rows past the last one
        middle = SEED_STEPS + EVAL_EVERY // 2
        log = next(logs)
        after = launch_and_kill(
            killed_out,
            lambda now: bool(now.train_steps) and now.train_steps[-1] >= middle and now.eval_steps[-1:] == [SEED_STEPS],
            log,
        )
        assert_resumed_from(log, resumed)
        assert after.train_steps[-1] > after.eval_steps[-1] == SEED_STEPS
        resumed = resume_point(killed_out)
        assert resumed == SEED_STEPS
        hit.append(f"between checkpoints at train step {after.train_steps[-1]}")

        log = next(logs)
        run_to_end(killed_out, log)
        assert_resumed_from(log, resumed)
        assert straight.wait(timeout=TIMEOUT) == 0, (tmp_path / "straight.log").read_text()[-3000:]
    finally:
        if straight.poll() is None:
            os.killpg(straight.pid, signal.SIGKILL)
            straight.wait()
    print("killed:", "; ".join(hit))

    a, b = run_folder(straight_out), run_folder(killed_out)
    assert a is not None and b is not None and a.relative_to(straight_out) == b.relative_to(killed_out)
    assert_same_csv(a / "eval.csv", b / "eval.csv")
    assert [int(r["step"]) for r in read_csv(b / "eval.csv")[1]] == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    assert_same_csv(a / "train.csv", b / "train.csv")

    state_a, state_b = load_state(a), load_state(b)
    agent_a, agent_b = state_a["agent"], state_b["agent"]
    for network in ("actor", "critic", "critic_target", "model"):
        assert agent_a[network].keys() == agent_b[network].keys()
        for name, tensor in agent_a[network].items():
            assert torch.equal(tensor, agent_b[network][name]), f"{network}.{name}"
    assert torch.equal(agent_a["log_alpha"], agent_b["log_alpha"])
    # and everything else the trainer carries (optimisers, replay, normaliser, RNGs, env,
    # counters) but the wall-clock time
    for state in (state_a, state_b):
        state["progress"].pop("wall_time")
        state["env"]["mjdata"] = simulator_state(state["env"]["mjdata"])
    assert differences(state_a, state_b) == []
