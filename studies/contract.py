"""The study-folder contract: what a search writes beside its trials' run directories.

Standard library only, so ``reports/`` can read study folders without Optuna or torch.

``<out>/<study>/`` holds
- ``study.json``: the study's settings (name, storage, suite, task, agent, preset, steps,
  seeds, trials, sampler, pruner, study seed, overrides, search space) and ``paper_schedule``,
  the task's Table 4 schedule ``[H_init, H_final, beta]`` (beta null: constant) and
  ``paper_schedule_curve`` (``steps``, ``values``: eq. (14) of that schedule over the runs'
  budget, so a report draws it without the agent's code);
- ``trials.csv``: one row per Optuna trial, ``TRIAL_COLUMNS``, rewritten (atomically) from
  the storage whenever a trial ends;
- ``trials/slot_<k>/``: the ``harness run`` output folder of search slot k: ordinary run
  directories ``<suite>/<task>/<agent>+<label>/seed_<n>/``, whose summary.json says
  ``origin: search-trial`` (``harness.contract.ORIGIN_KEY``; folders of older versions lack
  it, and ``is_trial_run`` tells them by their path);
- ``study.journal``: the default Optuna storage (a JournalFileBackend file).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.contract import atomic_write_text

STUDY_FILE = "study.json"
TRIALS_FILE = "trials.csv"
JOURNAL_FILE = "study.journal"
TRIALS_DIR = "trials"
TRIAL_COLUMNS = ["number", "slot", "state", "H_init", "H_final", "beta", "objective", "outcome", "run_folder"]
# run_folder is relative to the study folder (trials/slot_<k>); objective is empty unless COMPLETE.
# state is Optuna's: COMPLETE, PRUNED, FAIL, RUNNING, WAITING. outcome says why a trial ended
# as it did: "complete", "pruned", "run failed" (final: not retried), "worker died" (retried
# as another trial of the same slot), "duplicate" (another trial of the slot counts instead);
# of a RUNNING trial, "running", or "interrupted: <why>" when its worker was gone as the
# table was made (the next worker of the study fails it and takes its slot over).


def slot_folder(study_dir: str | Path, slot: int) -> Path:
    """The ``harness run --out`` folder of search slot ``slot``."""
    return Path(study_dir) / TRIALS_DIR / f"slot_{slot:03d}"


def is_trial_run(run_folder: str | Path) -> bool:
    """Whether a run folder lies in a search slot's folder (``.../trials/slot_<k>/...``)."""
    parts = Path(run_folder).parts
    return any(parent == TRIALS_DIR and re.fullmatch(r"slot_\d+", part) for parent, part in zip(parts, parts[1:]))


def write_study_file(study_dir: str | Path, settings: dict[str, Any]) -> None:
    Path(study_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(study_dir) / STUDY_FILE, json.dumps(settings, indent=2, sort_keys=True) + "\n")


def read_study_file(study_dir: str | Path) -> dict[str, Any] | None:
    """The study's settings, or None where the folder holds no readable study.json."""
    path = Path(study_dir) / STUDY_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_trials_file(study_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=TRIAL_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in TRIAL_COLUMNS})
    atomic_write_text(Path(study_dir) / TRIALS_FILE, buffer.getvalue())


def read_trials_file(study_dir: str | Path) -> list[dict[str, str]]:
    """trials.csv as written (strings; empty cells are ""), or [] if absent."""
    path = Path(study_dir) / TRIALS_FILE
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def find_study_folders(paths: Iterable[str | Path]) -> list[Path]:
    """Study folders given or below ``paths`` (folders holding a readable study.json)."""
    found: set[Path] = set()
    for root in map(Path, paths):
        if not root.is_dir():
            continue
        for file in [root / STUDY_FILE, *root.rglob(STUDY_FILE)]:
            if file.is_file() and read_study_file(file.parent) is not None:
                found.add(file.parent.resolve())
    return sorted(found)
