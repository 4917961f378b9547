"""The tables ``harness run`` and ``harness status`` print: one per experiment (suite/task/
agent folder), one row per seed, short enough for an 80-column terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from harness.status import RunRow, experiment_and_seed

if TYPE_CHECKING:  # the launcher loads torch; ``harness status`` needs none of it
    from harness.launch import JobResult


def print_results(out: Console, results: list[JobResult]) -> None:
    """What each run of the command reached, grouped like ``harness status``."""
    rows = []
    for result in results:
        s = result.summary
        experiment, seed = experiment_and_seed(result.path)
        rows.append(
            RunRow(
                experiment,
                seed,
                result.status,
                s.get("steps_done"),
                s.get("total_steps"),
                s.get("final_eval_return"),
                s.get("best_eval_return"),
                s.get("wall_time"),
                job_id=result.job_id,
            )
        )
    print_run_tables(out, rows)


def print_run_tables(out: Console, rows: list[RunRow]) -> None:
    """One table per experiment (suite/task/agent folder), one row per seed; errors below.
    Fits an 80-column terminal: names too long for it fold onto the next line."""
    with_jobs = any(row.job_id for row in rows)
    experiments: dict[str, list] = {}
    for row in rows:
        experiments.setdefault(row.experiment, []).append(row)
    titles = _titles(experiments)
    for experiment, group in experiments.items():
        out.print(Text(titles[experiment], style="bold", overflow="fold"))
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False, pad_edge=False)
        columns: tuple[tuple[str, JustifyMethod], ...] = (
            ("seed", "right"),
            ("status", "left"),
            ("steps", "right"),
            ("final", "right"),
            ("best", "right"),
            ("time", "right"),
        )
        for column, justify in columns:
            table.add_column(column, justify=justify, no_wrap=True)
        if with_jobs:
            table.add_column("SLURM job", no_wrap=True)
        for row in group:
            cells = [
                row.seed,
                row.status,
                _steps(row.steps_done, row.total_steps),
                _number(row.final_return),
                _number(row.best_return),
                _duration(row.wall_time),
            ]
            table.add_row(*cells, *([f"{row.job_id} {row.job_state}".strip()] if with_jobs else []))
        out.print(table)
        for row in group:
            if row.error:
                out.print(Text(f"  seed {row.seed}: {row.error}", overflow="fold"))


def _titles(experiments: dict[str, list[RunRow]]) -> dict[str, str]:
    """Each experiment's heading: its folder path, and its preset where experiments of the same
    suite/task/agent folder (in different output folders) ran different presets."""
    presets: dict[str, set[str]] = {}
    for experiment, group in experiments.items():
        presets.setdefault(_agent_folder(experiment), set()).update(row.preset for row in group)
    titles = {}
    for experiment, group in experiments.items():
        shown = sorted({row.preset for row in group} - {""})
        differ = len(presets[_agent_folder(experiment)]) > 1
        titles[experiment] = experiment + (f" · preset {', '.join(shown)}" if differ and shown else "")
    return titles


def _agent_folder(experiment: str) -> str:
    return "/".join(experiment.split("/")[-3:])


def _number(value) -> str:
    return "" if value is None else f"{value:.1f}"


def _count(n: int) -> str:
    """12, 15.0k, 1.00M: short enough for an 80-column table."""
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 10_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def _steps(done, total) -> str:
    if done is None and total is None:
        return ""
    return f"{_count(int(done or 0))}/{_count(int(total)) if total else '?'}"


def _duration(seconds) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"
