"""Checkpoints: streamed, rotated so a complete one always exists, refused in one line when
unusable, and never lost to a crash, a damaged file or a full disk."""

from __future__ import annotations

import csv
import errno
import hashlib
from pathlib import Path

import pytest
import torch

from harness import rundir
from harness.config import build_run_config
from harness.rundir import (
    CHECKPOINT_FORMAT,
    CheckpointWriteError,
    CorruptCheckpointError,
    IncompatibleCheckpointError,
    RunDirectory,
)
from harness.trainer import Trainer
from tests.conftest import TINY


def state_at(step: int) -> dict:
    return {"progress": {"step": step}, "weights": torch.full((1000,), float(step))}


def step_of(state: dict) -> int:
    return state["progress"]["step"]


def folder_hashes(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def two_checkpoints(tmp_path) -> RunDirectory:
    """A run folder whose checkpoints are at step 100 (previous) and 200 (latest)."""
    run_dir = RunDirectory(tmp_path)
    run_dir.save_checkpoint(state_at(100))
    run_dir.save_checkpoint(state_at(200))
    return RunDirectory(tmp_path)  # as a resumed process sees it


def test_a_save_keeps_the_checkpoint_it_replaces_and_records_its_versions(two_checkpoints):
    run_dir = two_checkpoints
    assert sorted(p.name for p in run_dir.checkpoint_dir.iterdir()) == ["state.prev.pt", "state.pt"]
    loaded = run_dir.read_checkpoint()
    assert (step_of(loaded.state), loaded.previous, loaded.message) == (200, False, None)
    assert torch.equal(loaded.state["weights"], torch.full((1000,), 200.0))
    raw = torch.load(run_dir.previous_checkpoint_path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT and step_of(raw["state"]) == 100
    assert set(raw["code"]) == {"svgbench", "git_commit"} and raw["code"]["svgbench"]


def test_a_truncated_latest_falls_back_to_the_previous_and_says_so(two_checkpoints):
    run_dir = two_checkpoints
    truncate(run_dir.checkpoint_path)
    loaded = run_dir.read_checkpoint()
    assert (step_of(loaded.state), loaded.previous, loaded.step) == (100, True, 100)
    assert loaded.message.startswith("checkpoint/state.pt is unreadable (")
    assert loaded.message.endswith("from the previous checkpoint at step 100") and "\n" not in loaded.message
    # the next save replaces the damaged latest and keeps the good previous one
    run_dir.save_checkpoint(state_at(150))
    assert step_of(torch.load(run_dir.previous_checkpoint_path, weights_only=True)["state"]) == 100
    assert step_of(RunDirectory(run_dir.path).load_checkpoint()) == 150


def test_no_readable_checkpoint_is_one_line_and_changes_nothing(two_checkpoints):
    run_dir = two_checkpoints
    truncate(run_dir.checkpoint_path)
    run_dir.previous_checkpoint_path.write_bytes(b"")
    (run_dir.path / "eval.csv").write_text("step,return_mean\r\n100,1.0\r\n200,2.0\r\n")
    before = folder_hashes(run_dir.path)
    with pytest.raises(CorruptCheckpointError) as caught:
        run_dir.read_checkpoint()
    message = str(caught.value)
    assert "\n" not in message
    assert "state.pt is unreadable" in message and "state.prev.pt is unreadable" in message
    assert f"no readable checkpoint in {run_dir.checkpoint_dir} (" in message and "move that folder away" in message
    assert folder_hashes(run_dir.path) == before


def test_a_checkpoint_of_another_format_is_refused_naming_both_versions(tmp_path, monkeypatch):
    run_dir = RunDirectory(tmp_path)
    monkeypatch.setattr(rundir, "CHECKPOINT_FORMAT", CHECKPOINT_FORMAT + 1)
    monkeypatch.setattr(rundir, "code_version", lambda: {"svgbench": "9.9.9", "git_commit": "feedbeef"})
    run_dir.save_checkpoint(state_at(100))
    monkeypatch.undo()
    before = folder_hashes(tmp_path)
    with pytest.raises(IncompatibleCheckpointError) as caught:
        RunDirectory(tmp_path).read_checkpoint()
    message = str(caught.value)
    assert "\n" not in message
    assert f"format {CHECKPOINT_FORMAT + 1} (svgbench 9.9.9, commit feedbeef)" in message
    assert f"reads checkpoint format {CHECKPOINT_FORMAT}" in message
    assert "resume it with the version that wrote it" in message
    assert folder_hashes(tmp_path) == before


def test_a_checkpoint_without_format_or_lacking_a_needed_key_is_refused(tmp_path):
    run_dir = RunDirectory(tmp_path)
    run_dir.checkpoint_dir.mkdir()
    torch.save(state_at(100), run_dir.checkpoint_path)  # as versions before format 1 wrote it
    with pytest.raises(IncompatibleCheckpointError, match="no checkpoint format"):
        run_dir.read_checkpoint()
    run_dir.save_checkpoint(state_at(100))
    with pytest.raises(IncompatibleCheckpointError, match="lacks replay"):
        run_dir.read_checkpoint(required=("progress", "replay"))


def test_the_same_format_from_another_commit_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "code_version", lambda: {"svgbench": "0.0.1", "git_commit": "0123abc"})
    RunDirectory(tmp_path).save_checkpoint(state_at(100))
    monkeypatch.undo()
    assert step_of(RunDirectory(tmp_path).load_checkpoint()) == 100


class DiskFull:
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, handle, room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.room:
            self.handle.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def test_a_full_disk_mid_checkpoint_keeps_the_previous_one(two_checkpoints, monkeypatch):
    run_dir = two_checkpoints
    before = folder_hashes(run_dir.path)
    monkeypatch.setattr(
        rundir,
        "open",
        lambda path, mode: DiskFull(open(path, mode), room=2000),  # noqa: SIM115 - closed by DiskFull
        raising=False,
    )
    with pytest.raises(CheckpointWriteError) as caught:
        run_dir.save_checkpoint(state_at(300))
    monkeypatch.undo()
    message = str(caught.value)
    assert caught.value.errno == errno.ENOSPC and "\n" not in message
    assert "No space left on device" in message and "the previous checkpoint is kept" in message
    assert not run_dir.partial_checkpoint_path.exists()
    assert folder_hashes(run_dir.path) == before
    assert step_of(RunDirectory(run_dir.path).load_checkpoint()) == 200
    run_dir.save_checkpoint(state_at(300))  # with room again, checkpoints go on
    assert step_of(RunDirectory(run_dir.path).load_checkpoint()) == 300


class Crash(BaseException):
    """The process dies here (nothing after it runs, no cleanup either)."""


def crash_at_rename(monkeypatch, number: int) -> None:
    """Make the ``number``-th rename of a save (1: latest to previous, 2: new to latest) die."""
    calls = {"n": 0}
    real = Path.replace

    def replace(self, target):
        calls["n"] += 1
        if calls["n"] == number:
            raise Crash
        return real(self, target)

    monkeypatch.setattr(Path, "replace", replace)


def test_a_crash_while_the_new_file_is_written_leaves_both_checkpoints(two_checkpoints, monkeypatch):
    run_dir = two_checkpoints

    def dies_midway(obj, handle):
        handle.write(b"PK\x03\x04 partial")
        raise Crash

    monkeypatch.setattr(rundir.torch, "save", dies_midway)
    with pytest.raises(Crash):
        run_dir.save_checkpoint(state_at(300))
    monkeypatch.undo()
    run_dir.partial_checkpoint_path.write_bytes(b"PK\x03\x04 partial")  # as a killed process leaves it
    loaded = RunDirectory(run_dir.path).read_checkpoint()
    assert (step_of(loaded.state), loaded.previous) == (200, False)


@pytest.mark.parametrize("rename, resumes_at, from_previous", [(1, 200, False), (2, 200, True)])
def test_a_crash_around_the_renames_leaves_a_complete_checkpoint(
    two_checkpoints, monkeypatch, rename, resumes_at, from_previous
):
    run_dir = two_checkpoints
    crash_at_rename(monkeypatch, rename)
    with pytest.raises(Crash):
        run_dir.save_checkpoint(state_at(300))
    monkeypatch.undo()
    resumed = RunDirectory(run_dir.path)
    assert resumed.has_checkpoint()
    loaded = resumed.read_checkpoint()
    assert (step_of(loaded.state), loaded.previous) == (resumes_at, from_previous)
    if from_previous:
        assert loaded.message.startswith("checkpoint/state.pt is missing;")
    resumed.save_checkpoint(state_at(400))  # the stale temporary file is overwritten, not read
    assert step_of(RunDirectory(run_dir.path).load_checkpoint()) == 400
    assert step_of(torch.load(resumed.previous_checkpoint_path, weights_only=True)["state"]) == 200
    assert not resumed.partial_checkpoint_path.exists()


# ---------------------------------------------------------------------------- through the trainer


def _tiny_trainer(path: Path, steps: int, messages: list[str]):
    config = build_run_config(
        "classic",
        "inverted-pendulum",
        "sac",
        0,
        preset="quick",
        steps=steps,
        out=str(path),
        wandb="disabled",
        overrides=list(TINY),
    )
    return Trainer(config, RunDirectory(path), say=messages.append)


def _steps(path: Path) -> list[int]:
    with open(path, newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_a_run_with_a_truncated_checkpoint_resumes_from_the_previous_one(tmp_path):
    messages: list[str] = []
    trainer = _tiny_trainer(tmp_path, 400, messages)
    env_step = trainer.env.step

    def step(action):  # dies after the evaluations at 100, 200 and 300
        if trainer.progress.step == 350:
            raise RuntimeError("simulated crash")
        return env_step(action)

    trainer.env.step = step
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.run()
    run_dir = RunDirectory(tmp_path)
    truncate(run_dir.checkpoint_path)  # the step-300 checkpoint
    summary = _tiny_trainer(tmp_path, 400, messages).run()
    assert summary["status"] == "done" and summary["steps_done"] == 400
    assert any(m.startswith("checkpoint/state.pt is unreadable") and m.endswith("at step 200") for m in messages)
    assert _steps(run_dir.eval_path) == [100, 200, 300, 400]  # rows after step 200 were dropped, then redone
    train_steps = _steps(run_dir.train_path)
    assert train_steps == sorted(set(train_steps))


@pytest.mark.slow
def test_a_run_with_no_readable_checkpoint_is_refused_untouched(tmp_path):
    messages: list[str] = []
    trainer = _tiny_trainer(tmp_path, 200, messages)
    trainer.run()
    run_dir = RunDirectory(tmp_path)
    run_dir.update_summary(status="running")  # as a killed run leaves it
    truncate(run_dir.checkpoint_path)
    truncate(run_dir.previous_checkpoint_path)
    before = folder_hashes(tmp_path)
    with pytest.raises(CorruptCheckpointError, match="no readable checkpoint"):
        _tiny_trainer(tmp_path, 200, messages).run()
    assert folder_hashes(tmp_path) == before
