"""The run-directory contract (ARCHITECTURE.md, "Run directory contract"): layout, file names,
CSV columns, status values, the lock rule, summary.json, atomic writes and the CSV logs.

Standard library only: the trainer writes run folders through it and ``reports/`` and
``harness status`` read them through it, without torch, gymnasium or Hydra.

``<out>/<suite>/<task>/<agent>[+label]/seed_<n>/`` holds config.yaml, eval.csv, train.csv,
summary.json, checkpoint/ (``harness.rundir``: needs torch) and .lock. Every write is either
an appended, flushed CSV row or an atomic replace, so a crash leaves the last good state.
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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------- layout

CONFIG_FILE = "config.yaml"
EVAL_FILE = "eval.csv"
TRAIN_FILE = "train.csv"
SUMMARY_FILE = "summary.json"
CHECKPOINT_DIR = "checkpoint"
LOCK_FILE = ".lock"
SEED_PREFIX = "seed_"
VIDEOS_DIR = "videos"  # evaluation videos, ``step_<n>.mp4``: the first evaluation episode at step n
VIDEO_PREFIX = "step_"
VIDEO_SUFFIX = ".mp4"


def run_path(out: str | Path, suite: str, task: str, agent: str, seed: int, label: str = "") -> Path:
    """``<out>/<suite>/<task>/<agent>[+label]/seed_<seed>``; ``label`` names the run's overrides."""
    folder = f"{agent}+{label}" if label else agent
    return Path(out) / suite / task / folder / f"{SEED_PREFIX}{seed}"


def video_path(run: str | Path, step: int) -> Path:
    """``<run>/videos/step_<step>.mp4``: the video of the evaluation made at env step ``step``."""
    return Path(run) / VIDEOS_DIR / f"{VIDEO_PREFIX}{int(step)}{VIDEO_SUFFIX}"


def list_videos(run: str | Path) -> dict[int, Path]:
    """The run's evaluation videos by step, in step order ({} when it recorded none).
    Partly written files (hidden, ``.tmp``) are not videos."""
    folder = Path(run) / VIDEOS_DIR
    found = {}
    if folder.is_dir():
        for path in folder.glob(f"{VIDEO_PREFIX}*{VIDEO_SUFFIX}"):
            number = path.name[len(VIDEO_PREFIX) : -len(VIDEO_SUFFIX)]
            if number.isdigit():
                found[int(number)] = path
    return dict(sorted(found.items()))


# ---------------------------------------------------------------------------- columns

EVAL_COLUMNS = ["step", "return_mean", "return_std", "episodes", "wall_time"]
TRAIN_COLUMNS = [
    "step",
    "episode",
    "episode_return",
    "episode_length",
    "actor_loss",
    "critic_loss",
    "alpha_loss",
    "alpha",
    "target_entropy",
    "entropy",
    "dynamics_loss",
    "reward_loss",
    "termination_loss",
    "steps_per_second",
    "dynamics_grad_norm",
    "dynamics_clipped",
]

# ---------------------------------------------------------------------------- status

RUNNING = "running"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"  # stopped by Ctrl-C (written), or running with nobody holding the lock (read)
UNREADABLE = "unreadable"  # read only: no summary.json, or one without a status
STATUSES = (RUNNING, DONE, FAILED, INTERRUPTED)

# Keys that change where or how a run executes, not what it computes: they neither label a
# run folder nor make a stored config differ, and runs differing only in them are seeds of
# one experiment in a report. The fast path and compile modes compute the same math
# (tests/test_fast_path.py), so a run may resume with another of them; recording videos draws
# no random number (tests/test_video.py).
OPERATIONAL_KEYS = (
    "out",
    "wandb",
    "launcher",
    "trainer.progress",
    "trainer.torch_threads",
    "agent.device",
    "agent.fast_path",
    "agent.compile",
    "trainer.video",
    "trainer.video_width",
    "trainer.video_height",
)


def is_operational(key: str) -> bool:
    """Whether the dotted config ``key`` is, or lies under, an operational key."""
    return any(key == k or key.startswith(k + ".") for k in OPERATIONAL_KEYS)


# ---------------------------------------------------------------------------- lock rule


class RunBusyError(RuntimeError):
    """Another process is training in this run directory."""


LOCK_ATTEMPTS = 10  # over about a second


@contextmanager
def run_lock(path: str | Path) -> Iterator[None]:
    """Hold the run folder's lock for as long as this process trains in it (RunBusyError if
    another process holds it). The kernel drops the lock when the process dies, however."""
    Path(path).mkdir(parents=True, exist_ok=True)
    with open(Path(path) / LOCK_FILE, "a") as handle:  # "a": a refused command changes nothing, not even mtime
        for attempt in range(LOCK_ATTEMPTS):  # a reader's is_locked probe holds it for an instant
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as error:
                if attempt == LOCK_ATTEMPTS - 1:
                    raise RunBusyError(f"{path} is being trained by another process") from error
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_locked(path: str | Path) -> bool:
    """Whether a process holds the run folder's lock, i.e. is training in it right now."""
    lock = Path(path) / LOCK_FILE
    if not lock.exists():
        return False
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def run_state(path: str | Path, summary: dict[str, Any] | None) -> str:
    """The run's state as a reader should report it: its summary's status, except that a
    summary saying "running" in a folder whose lock nobody holds was interrupted (rerunning
    its command resumes it); "unreadable" without a summary or a status."""
    status = summary.get("status") if isinstance(summary, dict) else None
    if not isinstance(status, str):
        return UNREADABLE
    if status == RUNNING and not is_locked(path):
        return INTERRUPTED
    return status


# ---------------------------------------------------------------------------- atomic writes


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` at once: readers see the old file or the new, never a part.
    The temporary file is private to this process and removed if the write fails."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def fsync_directory(path: str | Path) -> None:
    """Make the renames inside folder ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


# ---------------------------------------------------------------------------- summary.json

# summary.json ``origin``: what started the run. A search trial's runs say ORIGIN_SEARCH_TRIAL
# (written by the search before they train); any other run says nothing, read as ORIGIN_RUN.
# A trial that won its search was chosen for its score, so a report never pools its runs as
# seeds with runs of its schedule on other seeds (that would bias their mean upward).
ORIGIN_KEY = "origin"
ORIGIN_RUN = "run"
ORIGIN_SEARCH_TRIAL = "search-trial"


def inspect_summary(folder: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """(summary.json as a dict, None), or (None, why there is none readable)."""
    path = Path(folder) / SUMMARY_FILE
    if not path.exists():
        return None, f"no {SUMMARY_FILE} (the run may not have started)"
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        return None, f"{SUMMARY_FILE} unreadable ({type(error).__name__})"
    return (data, None) if isinstance(data, dict) else (None, f"{SUMMARY_FILE} is not an object")


def read_summary(folder: str | Path) -> dict[str, Any] | None:
    """summary.json as a dict; None where it is absent or unreadable."""
    return inspect_summary(folder)[0]


def write_summary(folder: str | Path, summary: dict[str, Any]) -> None:
    summary = dict(summary, updated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    atomic_write_text(Path(folder) / SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=True))


def update_summary(folder: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into summary.json (created if absent); returns the summary written."""
    summary = read_summary(folder) or {}
    summary.update(fields)
    write_summary(folder, summary)
    return summary


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a run's numbers depend on (summary.json's ``versions``)."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - 12 ms of the CLI's start-up

    versions = {"python": platform.python_version()}
    for name in ("svgbench", "torch", "gymnasium", "mujoco", "numpy", "hydra-core", "wandb"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the svgbench checkout this code runs from (``-dirty`` if tracked files
    changed), if it is one. Cached: the code a process runs does not change under it."""
    root = Path(__file__).resolve().parent.parent
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        if result.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() + ("-dirty" if dirty else "")


# ---------------------------------------------------------------------------- CSV logs


def read_csv_rows(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """(header, non-empty rows) of a CSV file as strings; ([], []) for an empty file."""
    with open(path, newline="") as handle:
        rows = [row for row in csv.reader(handle) if row]
    return (rows[0], rows[1:]) if rows else ([], [])


def rewrite_csv(path: str | Path, header: list[str], rows: Iterable[list[Any]]) -> None:
    """Replace the CSV file ``path`` by ``header`` and ``rows``, atomically (CsvLog's dialect)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def truncate_csv(path: str | Path, last_step: int) -> int:
    """Drop rows whose step is beyond ``last_step`` (work after the checkpoint). Returns rows kept."""
    if not Path(path).exists():
        return 0
    header, body = read_csv_rows(path)
    if not header:
        return 0
    step_index = header.index("step")
    kept = [row for row in body if int(float(row[step_index])) <= last_step]
    rewrite_csv(path, header, kept)
    return len(kept)


class CsvLog:
    """An append-only CSV with a fixed header; every row is flushed as it is written."""

    def __init__(self, path: str | Path, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = columns
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            self._adopt_columns()
        self.handle = open(self.path, "a", newline="")  # noqa: SIM115 - held until close()
        self.writer = csv.DictWriter(self.handle, fieldnames=columns, extrasaction="raise")
        if new:
            self.writer.writeheader()
            self.handle.flush()

    def _adopt_columns(self) -> None:
        """A file written by a version with fewer columns (a run resumed after an upgrade)
        is rewritten, atomically, under this version's header, its old rows keeping their
        values and leaving the new columns empty; a file with a column this version does not
        write is refused, so no resumed row lands under the wrong header."""
        header, body = read_csv_rows(self.path)
        if header == self.columns:
            return
        unknown = [c for c in header if c not in self.columns]
        if unknown:
            raise ValueError(
                f"{self.path} has columns this version does not write ({', '.join(unknown)}); "
                f"move it away to restart the run"
            )
        old = [dict(zip(header, row)) for row in body]
        rewrite_csv(self.path, self.columns, ([values.get(c, "") for c in self.columns] for values in old))

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
