"""One run's folder as the trainer uses it: the contract (``harness.contract``: layout, CSV
logs, summary, lock) plus the checkpoint, the part that needs torch.

checkpoint/ holds ``state.pt`` (the latest full state), ``state.prev.pt`` (the one before) and
``best.pt`` (the agent alone, as it was at the evaluation with the highest mean return:
``harness replay --checkpoint best``).
A save streams ``torch.save`` into ``state.pt.tmp``, fsyncs it, then renames ``state.pt`` to
``state.prev.pt`` and the new file to ``state.pt``; whenever the process dies, a complete
checkpoint lies under a name the loader tries (``state.pt``, then ``state.prev.pt``).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from harness.contract import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    EVAL_COLUMNS,
    EVAL_FILE,
    LOCK_FILE,
    SUMMARY_FILE,
    TRAIN_COLUMNS,
    TRAIN_FILE,
    CsvLog,
    RunBusyError,
    atomic_write_bytes,
    atomic_write_text,
    fsync_directory,
    git_commit,
    is_locked,
    list_videos,
    package_versions,
    read_summary,
    run_lock,
    run_path,
    truncate_csv,
    update_summary,
    write_summary,
)

__all__ = [  # the contract's names stay importable from here for existing callers
    "EVAL_COLUMNS",
    "TRAIN_COLUMNS",
    "LOCK_NAME",
    "CsvLog",
    "RunBusyError",
    "atomic_write_bytes",
    "git_commit",
    "is_locked",
    "package_versions",
    "run_lock",
    "run_path",
    "truncate_csv",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KEYS",
    "BEST_CHECKPOINT_KEYS",
    "CheckpointError",
    "CorruptCheckpointError",
    "IncompatibleCheckpointError",
    "CheckpointWriteError",
    "LoadedCheckpoint",
    "RunDirectory",
    "code_version",
]

LOCK_NAME = LOCK_FILE
CHECKPOINT_FILE = "state.pt"
PREVIOUS_CHECKPOINT_FILE = "state.prev.pt"
BEST_CHECKPOINT_FILE = "best.pt"
# The layout of a checkpoint file: {"format": CHECKPOINT_FORMAT, "code": code_version(), "state": ...}.
# Bump it when ``state`` changes in a way an older reader would misread.
# 2: critic heads and MLP-ensemble members as stacked weights (the fast path's batched modules).
CHECKPOINT_FORMAT = 2
# The keys of the trainer's state (``Trainer.checkpoint_state``) that ``Trainer.restore``
# reads: a checkpoint lacking one is refused as another format, not half-restored.
CHECKPOINT_KEYS = (
    "agent",
    "replay",
    "env",
    "obs",
    "progress",
    "action_rng",
    "torch_rng",
    "cuda_rng",
    "metric_sums",
    "metric_counts",
)
# The keys of ``best.pt``'s state: the agent, and which evaluation it had (its step, index,
# evaluation seed and mean return).
BEST_CHECKPOINT_KEYS = ("agent", "step", "evaluation", "eval_seed", "return_mean")


class CheckpointError(RuntimeError):
    """A run's checkpoint cannot be resumed from (the message is one line saying what to do)."""


class CorruptCheckpointError(CheckpointError):
    """No checkpoint file of the run can be read."""


class IncompatibleCheckpointError(CheckpointError):
    """The checkpoint was written in another format (another version of the code)."""


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (a full disk...); the previous checkpoint is kept."""


@dataclass
class LoadedCheckpoint:
    """A checkpoint as read: its state, the file it came from, its step (None if it records
    none) and, where it is not the latest, the one-line message saying so."""

    state: dict[str, Any]
    path: Path
    step: int | None
    previous: bool = False
    message: str | None = None


def code_version() -> dict[str, str | None]:
    """The version of the code writing a checkpoint: svgbench's and its git commit."""
    try:
        package = version("svgbench")
    except PackageNotFoundError:
        package = None
    return {"svgbench": package, "git_commit": git_commit()}


def _os_error(error: BaseException | None) -> OSError | None:
    """The OSError behind ``error``: torch reports a failed write (a full disk) as the
    RuntimeError of closing its half-written archive, raised while handling the OSError."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _describe(code: Any) -> str:
    code = code if isinstance(code, dict) else {}
    return f"svgbench {code.get('svgbench') or '?'}, commit {code.get('git_commit') or '?'}"


class RunDirectory:
    """One run's folder. Creating the object creates nothing; the first write does."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / CONFIG_FILE
        self.eval_path = self.path / EVAL_FILE
        self.train_path = self.path / TRAIN_FILE
        self.summary_path = self.path / SUMMARY_FILE
        self.checkpoint_dir = self.path / CHECKPOINT_DIR
        self.checkpoint_path = self.checkpoint_dir / CHECKPOINT_FILE
        self.previous_checkpoint_path = self.checkpoint_dir / PREVIOUS_CHECKPOINT_FILE
        self.partial_checkpoint_path = self.checkpoint_dir / (CHECKPOINT_FILE + ".tmp")
        self.best_checkpoint_path = self.checkpoint_dir / BEST_CHECKPOINT_FILE
        # False once this object found state.pt unreadable: a save must then not rotate it
        # over the good previous checkpoint.
        self._latest_readable = True

    # ---------------------------------------------------------------- config

    def stored_config_text(self) -> str | None:
        return self.config_path.read_text() if self.config_path.exists() else None

    def write_config(self, text: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, text)

    # ---------------------------------------------------------------- summary

    def read_summary(self) -> dict[str, Any] | None:
        return read_summary(self.path)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_summary(self.path, summary)

    def update_summary(self, **fields: Any) -> dict[str, Any]:
        return update_summary(self.path, **fields)

    # ---------------------------------------------------------------- logs

    def open_logs(self, eval_columns: list[str] | None = None) -> tuple[CsvLog, CsvLog]:
        self.path.mkdir(parents=True, exist_ok=True)
        return CsvLog(self.eval_path, eval_columns or EVAL_COLUMNS), CsvLog(self.train_path, TRAIN_COLUMNS)

    def truncate_logs(self, last_step: int) -> None:
        """Drop what was recorded after step ``last_step`` (log rows, videos): the work after
        the checkpoint resumed from, which is done again."""
        truncate_csv(self.eval_path, last_step)
        truncate_csv(self.train_path, last_step)
        for step, path in list_videos(self.path).items():
            if step > last_step:
                path.unlink(missing_ok=True)

    def clear_logs(self) -> None:
        """Remove what a start from step 0 will record again: logs, videos, the best checkpoint."""
        for path in (self.eval_path, self.train_path, self.best_checkpoint_path):
            path.unlink(missing_ok=True)
        for path in list_videos(self.path).values():
            path.unlink(missing_ok=True)

    # ---------------------------------------------------------------- checkpoint: save

    def has_checkpoint(self) -> bool:
        """Whether a checkpoint exists to resume from (the latest or the previous one)."""
        return self.checkpoint_path.exists() or self.previous_checkpoint_path.exists()

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write ``state`` as the latest checkpoint, keeping the one it replaces as the previous.

        ``torch.save`` streams into state.pt.tmp (no copy of the whole file in memory), which is
        fsynced before any rename. A failed write (CheckpointWriteError, one line) removes the
        temporary file and leaves the existing checkpoints as they were.
        """
        tmp = self.partial_checkpoint_path
        self._stream(state, tmp)
        # Crash windows: before the first rename, state.pt (and state.prev.pt) are as before;
        # between the renames, state.pt is missing and state.prev.pt is the last complete one.
        if self.checkpoint_path.exists() and self._latest_readable:
            self.checkpoint_path.replace(self.previous_checkpoint_path)
        tmp.replace(self.checkpoint_path)  # an unreadable state.pt is overwritten, the good previous kept
        fsync_directory(self.checkpoint_dir)
        self._latest_readable = True

    def save_best(self, state: dict[str, Any]) -> None:
        """Write ``state`` (``BEST_CHECKPOINT_KEYS``) as best.pt, replacing the one before at once."""
        tmp = self.best_checkpoint_path.with_name(BEST_CHECKPOINT_FILE + ".tmp")
        self._stream(state, tmp)
        tmp.replace(self.best_checkpoint_path)
        fsync_directory(self.checkpoint_dir)

    def _stream(self, state: dict[str, Any], tmp: Path) -> None:
        """``torch.save`` of the checkpoint payload into ``tmp``, fsynced; a failed write removes
        ``tmp`` and is a CheckpointWriteError (one line)."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        payload = {"format": CHECKPOINT_FORMAT, "code": code_version(), "state": state}
        try:
            with open(tmp, "wb") as handle:
                torch.save(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException as error:
            tmp.unlink(missing_ok=True)
            cause = _os_error(error) if isinstance(error, Exception) else None  # not Ctrl-C
            if cause is not None:
                raise self._write_error(cause) from error
            raise

    def _write_error(self, error: OSError) -> CheckpointWriteError:
        reason = error.strerror or str(error) or type(error).__name__
        kept = "the previous checkpoint is kept" if self.has_checkpoint() else "no earlier checkpoint exists"
        hint = "; free some space and rerun the same command to resume" if error.errno == errno.ENOSPC else ""
        wrapped = CheckpointWriteError(
            f"could not write the checkpoint in {self.checkpoint_dir}: {reason} ({kept}){hint}"
        )
        wrapped.errno = error.errno
        return wrapped

    # ---------------------------------------------------------------- checkpoint: load

    def read_checkpoint(self, required: Iterable[str] = ()) -> LoadedCheckpoint:
        """The latest readable checkpoint: state.pt, or state.prev.pt if state.pt is missing
        or unreadable (the message then says so, to be printed). Refused, touching nothing:
        no readable file (CorruptCheckpointError); a file of another format or lacking a key
        of ``required`` (IncompatibleCheckpointError)."""
        problems = []
        for path in (self.checkpoint_path, self.previous_checkpoint_path):
            if not path.exists():
                problems.append(f"{path.name} is missing")
                continue
            try:
                payload = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as error:  # noqa: BLE001 - torch raises several types for a damaged file
                problems.append(f"{path.name} is unreadable ({type(error).__name__}; truncated?)")
                if path == self.checkpoint_path:
                    self._latest_readable = False
                continue
            state = self._check_format(path, payload, required)
            progress = state.get("progress")
            step = progress.get("step") if isinstance(progress, dict) else None
            step = int(step) if isinstance(step, int) else None
            if path == self.checkpoint_path:
                return LoadedCheckpoint(state, path, step)
            where = f"at step {step}" if step is not None else f"({path.name})"
            message = f"{CHECKPOINT_DIR}/{problems[0]}; resuming from the previous checkpoint {where}"
            return LoadedCheckpoint(state, path, step, previous=True, message=message)
        raise CorruptCheckpointError(
            f"no readable checkpoint in {self.checkpoint_dir} ({'; '.join(problems)}): nothing was changed; "
            f"move that folder away to start this run over from step 0"
        )

    def read_best(self) -> dict[str, Any]:
        """best.pt's state; CheckpointError (one line) where there is none or it is unreadable."""
        path = self.best_checkpoint_path
        if not path.exists():
            raise CheckpointError(
                f"no best checkpoint in {self.checkpoint_dir} (no evaluation yet, or written by "
                f"an svgbench that kept none): use --checkpoint latest"
            )
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for a damaged file
            raise CorruptCheckpointError(
                f"{path} is unreadable ({type(error).__name__}; truncated?): use --checkpoint latest"
            ) from error
        return self._check_format(path, payload, BEST_CHECKPOINT_KEYS)

    def load_checkpoint(self, required: Iterable[str] = ()) -> dict[str, Any]:
        """The state of ``read_checkpoint`` (falling back to the previous file silently)."""
        return self.read_checkpoint(required).state

    def _check_format(self, path: Path, payload: Any, required: Iterable[str]) -> dict[str, Any]:
        here = f"this {_describe(code_version())} reads checkpoint format {CHECKPOINT_FORMAT}"
        todo = (
            f"resume it with the version that wrote it, or move {self.checkpoint_dir} away to start "
            f"this run over (nothing was changed)"
        )
        if not isinstance(payload, dict) or "format" not in payload or "state" not in payload:
            raise IncompatibleCheckpointError(
                f"{path} has no checkpoint format (written by an svgbench older than format versions); {here}: {todo}"
            )
        if payload["format"] != CHECKPOINT_FORMAT:
            raise IncompatibleCheckpointError(
                f"{path} is checkpoint format {payload['format']} ({_describe(payload.get('code'))}); {here}: {todo}"
            )
        state = payload["state"]
        missing = [key for key in required if not isinstance(state, dict) or key not in state]
        if missing:
            raise IncompatibleCheckpointError(
                f"{path} ({_describe(payload.get('code'))}) lacks {', '.join(missing)}; {here}: {todo}"
            )
        return state
