"""Reading the state of run directories, and of their SLURM jobs, for ``harness status``.

A run's state comes from its run directory (the contract's lock rule tells running from
interrupted). Where the output folder holds a manifest of submitted jobs
(``harness.slurm``), each run also gets its latest job's id and SLURM state, and a run whose
job has not started yet (no folder so far) is listed as queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness import slurm
from harness.contract import INTERRUPTED, RUNNING, SEED_PREFIX, SUMMARY_FILE, read_summary, run_state

QUEUED = "queued"  # read only: a submitted job whose run has written nothing yet
STARTING = "starting"  # read only: its job runs, the run has written nothing yet
NOT_STARTED = "not started"  # read only: its job ended (cancelled, failed) before the run wrote anything


@dataclass
class RunRow:
    """One run as ``harness status`` shows it."""

    experiment: str  # <suite>/<task>/<agent folder>
    seed: str
    status: str
    steps_done: int | None = None
    total_steps: int | None = None
    final_return: float | None = None
    best_return: float | None = None
    wall_time: float | None = None
    error: str = ""
    job_id: str = ""
    job_state: str = ""
    preset: str = ""  # summary.json's, where it says


@dataclass
class StatusReport:
    runs: list[RunRow] = field(default_factory=list)
    workers: list[tuple[str, str, str]] = field(default_factory=list)  # (what, job id, state)
    note: str = ""


def experiment_and_seed(folder: Path, root: Path | None = None) -> tuple[str, str]:
    """(<suite>/<task>/<agent folder>, seed) of a run folder; below ``root``, the experiment is
    its whole path from ``root`` (``quick/classic/...`` and ``paper/classic/...`` are two
    experiments, not one with two seeds 0)."""
    folder = folder.resolve()
    below = (
        folder.relative_to(root.resolve()).parts if root is not None and folder.is_relative_to(root.resolve()) else ()
    )
    experiment = below[:-1] if len(below) > 4 else folder.parts[-4:-1]
    return "/".join(experiment), folder.name.removeprefix(SEED_PREFIX)


def collect_status(root: Path) -> StatusReport:
    """Every run folder (a folder with summary.json) under ``root``, sorted by path, joined
    with the jobs of every manifest at, above or under ``root``."""
    root = Path(root)
    report = StatusReport()
    rows: dict[str, RunRow] = {}
    for summary_path in sorted(root.rglob(SUMMARY_FILE)):
        folder = summary_path.parent
        summary = read_summary(folder) or {}
        experiment, seed = experiment_and_seed(folder, root)
        rows[str(folder.resolve())] = RunRow(
            experiment,
            seed,
            run_state(folder, summary),
            summary.get("steps_done"),
            summary.get("total_steps"),
            summary.get("final_eval_return"),
            summary.get("best_eval_return"),
            summary.get("wall_time"),
            summary.get("error") or "",
            preset=str(summary.get("preset") or ""),
        )
    jobs = _recorded_jobs(root)
    states = slurm.query_states(jobs.values())
    report.note = states.note
    inside = root.resolve()
    for serves, job_id in jobs.items():
        state = states.of(job_id)
        if not serves.startswith("/"):  # a search worker, not a run folder
            report.workers.append((serves, job_id, state))
            continue
        if not Path(serves).is_relative_to(inside):
            continue
        row = rows.get(serves)
        if row is None:  # its job has written nothing yet, or ended before it could
            experiment, seed = experiment_and_seed(Path(serves), root)
            if state == "RUNNING":
                status = STARTING
            else:
                status = QUEUED if states.may_be_queued(job_id) else NOT_STARTED
            row = rows[serves] = RunRow(experiment, seed, status)
        row.job_id, row.job_state = job_id, state
        if row.status == INTERRUPTED and state == "RUNNING":  # held on another node: its lock is not ours to see
            row.status = RUNNING
    report.runs = [rows[key] for key in sorted(rows)]
    return report


def _recorded_jobs(root: Path) -> dict[str, str]:
    """What each job serves -> its latest job id, over the manifests at, above and under root."""
    folders = [p for p in [root.resolve(), *root.resolve().parents] if slurm.manifest_path(p).exists()][:1]
    folders += [p for p in slurm.find_manifests(root) if p.resolve() not in folders]
    jobs: dict[str, str] = {}
    for folder in folders:
        jobs.update(slurm.latest_jobs(folder))
    return jobs
