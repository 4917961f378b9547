"""Reading the state of run directories for ``harness status``."""

from __future__ import annotations

from pathlib import Path

from harness.rundir import RunDirectory, is_locked


def collect_status(root: Path) -> list[dict[str, str]]:
    """One row per run folder (a folder with summary.json) under ``root``, sorted by path.

    A run whose summary says "running" but whose lock nobody holds was interrupted:
    rerunning its command resumes it.
    """
    rows = []
    for summary_path in sorted(root.rglob("summary.json")):
        run_dir = RunDirectory(summary_path.parent)
        summary = run_dir.read_summary() or {}
        status = summary.get("status", "unreadable")
        if status == "running" and not is_locked(run_dir.path):
            status = "interrupted"
        fmt = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
        parts = run_dir.path.resolve().parts[-4:]
        rows.append({
            "suite": parts[0], "task": parts[1], "agent": parts[2], "seed": parts[3].removeprefix("seed_"),
            "status": status,
            "steps": f"{summary.get('steps_done', 0)}/{summary.get('total_steps', '?')}",
            "final eval return": fmt(summary.get("final_eval_return")),
            "best eval return": fmt(summary.get("best_eval_return")),
            "wall time (s)": fmt(summary.get("wall_time")),
            "error": (summary.get("error") or "")[:80],
        })
    return rows
