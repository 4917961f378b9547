"""The run-directory contract (ARCHITECTURE.md): layout, CSV metrics, summary, checkpoint.

``<out>/<suite>/<task>/<agent>[+label]/seed_<n>/`` holds config.yaml, eval.csv, train.csv,
summary.json and checkpoint/state.pt. Every write is either an appended, flushed CSV row
or an atomic replace, so a crash leaves the last good state on disk.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import platform
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

EVAL_COLUMNS = ["step", "return_mean", "return_std", "episodes", "wall_time"]
TRAIN_COLUMNS = ["step", "episode", "episode_return", "episode_length", "actor_loss", "critic_loss",
                 "alpha_loss", "alpha", "target_entropy", "entropy", "dynamics_loss", "reward_loss",
                 "termination_loss", "steps_per_second", "dynamics_grad_norm", "dynamics_clipped"]


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read."""


def run_path(out: str | Path, suite: str, task: str, agent: str, seed: int, label: str = "") -> Path:
    folder = f"{agent}+{label}" if label else agent
    return Path(out) / suite / task / folder / f"seed_{seed}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class CsvLog:
    """An append-only CSV with a fixed header; every row is flushed as it is written."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path = path
        self.columns = columns
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            self._adopt_columns()
        self.handle = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=columns, extrasaction="raise")
        if new:
            self.writer.writeheader()
            self.handle.flush()

    def _adopt_columns(self) -> None:
        """A file written by a version with fewer columns (a run resumed after an upgrade)
        is rewritten, atomically, under this version's header, its old rows keeping their
        values and leaving the new columns empty; a file with a column this version does not
        write is refused, so no resumed row lands under the wrong header."""
        with open(self.path, newline="") as handle:
            rows = list(csv.reader(handle))
        header = rows[0] if rows else []
        if header == self.columns:
            return
        unknown = [c for c in header if c not in self.columns]
        if unknown:
            raise ValueError(f"{self.path} has columns this version does not write ({', '.join(unknown)}); "
                             f"move it away to restart the run")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(dict(zip(header, row)) for row in rows[1:] if row)
        atomic_write_bytes(self.path, buffer.getvalue().encode())

    def append(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: _format(row.get(k)) for k in self.columns})
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


def _format(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def truncate_csv(path: Path, last_step: int) -> int:
    """Drop rows whose step is beyond ``last_step`` (work after the checkpoint). Returns rows kept."""
    if not path.exists():
        return 0
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return 0
    header, body = rows[0], rows[1:]
    step_index = header.index("step")
    kept = [r for r in body if r and int(float(r[step_index])) <= last_step]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(kept)
    atomic_write_bytes(path, buffer.getvalue().encode())
    return len(kept)


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("svgbench", "torch", "gymnasium", "mujoco", "numpy", "hydra-core", "wandb"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str | None:
    """The commit of the svgbench checkout this code runs from, if it is one."""
    root = Path(__file__).resolve().parent.parent
    try:
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5, check=False).stdout.strip()
    return result.stdout.strip() + ("-dirty" if dirty else "")


LOCK_NAME = ".lock"


class RunBusyError(RuntimeError):
    """Another process is training in this run directory."""


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold the run folder's lock for as long as this process trains in it."""
    Path(path).mkdir(parents=True, exist_ok=True)
    with open(Path(path) / LOCK_NAME, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise RunBusyError(f"{path} is being trained by another process") from error
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_locked(path: Path) -> bool:
    """Whether a process holds the run folder's lock, i.e. is training in it right now.
    A summary saying "running" in a folder nobody holds was interrupted."""
    lock = Path(path) / LOCK_NAME
    if not lock.exists():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


class RunDirectory:
    """One run's folder. Creating the object creates nothing; ``prepare`` does."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.eval_path = self.path / "eval.csv"
        self.train_path = self.path / "train.csv"
        self.summary_path = self.path / "summary.json"
        self.checkpoint_path = self.path / "checkpoint" / "state.pt"

    # ---------------------------------------------------------------- config

    def stored_config_text(self) -> str | None:
        return self.config_path.read_text() if self.config_path.exists() else None

    def write_config(self, text: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.config_path, text.encode())

    # ---------------------------------------------------------------- summary

    def read_summary(self) -> dict[str, Any] | None:
        if not self.summary_path.exists():
            return None
        try:
            return json.loads(self.summary_path.read_text())
        except json.JSONDecodeError:
            return None

    def write_summary(self, summary: dict[str, Any]) -> None:
        summary = dict(summary, updated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        atomic_write_bytes(self.summary_path, json.dumps(summary, indent=2, sort_keys=True).encode())

    def update_summary(self, **fields: Any) -> dict[str, Any]:
        summary = self.read_summary() or {}
        summary.update(fields)
        self.write_summary(summary)
        return summary

    # ---------------------------------------------------------------- logs

    def open_logs(self, eval_columns: list[str] | None = None) -> tuple[CsvLog, CsvLog]:
        self.path.mkdir(parents=True, exist_ok=True)
        return CsvLog(self.eval_path, eval_columns or EVAL_COLUMNS), CsvLog(self.train_path, TRAIN_COLUMNS)

    def truncate_logs(self, last_step: int) -> None:
        truncate_csv(self.eval_path, last_step)
        truncate_csv(self.train_path, last_step)

    def clear_logs(self) -> None:
        for path in (self.eval_path, self.train_path):
            path.unlink(missing_ok=True)

    # ---------------------------------------------------------------- checkpoint

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.exists()

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.checkpoint_path, buffer.getvalue())

    def load_checkpoint(self) -> dict[str, Any]:
        try:
            return torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for a damaged file
            raise CorruptCheckpointError(
                f"checkpoint {self.checkpoint_path} is unreadable ({type(error).__name__}); "
                f"move it away to restart this run from scratch") from error
