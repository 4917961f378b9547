"""The report's tables as plain data for the template: the Table-2-style comparison with the
published rows, per-task interval estimates and run metadata.

Numbers are formatted here, names are left as they are: the template escapes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from baselines.published import load_published, published_agent
from reports.runs import Run

STD_DDOF = 1  # sample standard deviation over seeds


@dataclass
class Cell:
    """One task's number in a row: ``text`` ("mean ± std"), ``detail`` (seeds, steps)."""

    mean: float | None = None
    text: str = ""
    detail: str = ""
    incomplete: bool = False
    best: bool = False


@dataclass
class Row:
    label: str
    published: bool
    source: str = ""
    cells: list[Cell] = field(default_factory=list)


@dataclass
class ComparisonTable:
    """Table 2 style: one per suite, a column per task, our rows then the published rows."""

    suite: str
    tasks: list[str]
    rows: list[Row]
    caption: str = ""


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and sample std (ddof ``STD_DDOF``) of returns over seeds; the std is NaN for one seed."""
    mean = float(np.mean(values))
    return mean, float(np.std(values, ddof=STD_DDOF)) if len(values) > STD_DDOF else math.nan


def mean_std_text(values: np.ndarray) -> tuple[float, str]:
    """(mean, "mean ± std") of returns over seeds; the std is '–' for one seed."""
    mean, std = mean_std(values)
    return mean, f"{mean:.2f} ± {'–' if math.isnan(std) else f'{std:.2f}'}"


def counted_runs(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The runs of one experiment on one task that its cell averages, and how many unfinished
    runs that leaves out: its complete runs, or all of them when none is complete."""
    done = runs[runs["complete"]]
    return (done, len(runs) - len(done)) if len(done) else (runs, 0)


def _steps_text(steps: pd.Series) -> str:
    low, high = int(steps.min()), int(steps.max())
    return f"{low:,} steps" if low == high else f"{low:,}–{high:,} steps"


def _states_text(runs: pd.DataFrame) -> str:
    """How many of ``runs`` are in each state other than done: "1 interrupted, 2 running"."""
    states = runs.loc[runs["status"] != "done", "status"].value_counts().sort_index()
    return ", ".join(f"{count} {state}" for state, count in states.items())


def _agent_label(agent: str, horizon: int | None) -> str:
    return agent if horizon is None else f"{agent} (H={horizon})"


def comparison_tables(finals: pd.DataFrame, with_published: bool = True, caption: str = "") -> list[ComparisonTable]:
    """Per suite: mean ± std of the final evaluation return per (experiment, horizon) and
    task, beside the published rows of that suite and those tasks; the best mean of each
    column (ours or published) is marked. Runs are pooled by ``experiment``
    (``reports.experiments``): runs of other budgets or settings, or repeated seeds, are rows
    of their own.

    ``finals`` is ``reports.load.final_scores`` output: the final evaluation of a run is the
    last row of its eval.csv, at the step shown. A cell counts its complete runs (status
    done) and says how many unfinished ones it left out; a cell with no complete run shows
    its unfinished runs' last evaluations, marked ``incomplete``. ``with_published`` False
    leaves the published rows out (for scores at other budgets than theirs).
    """
    tables = []
    for suite, suite_rows in finals.groupby("suite", sort=True):
        tasks = sorted(suite_rows["task"].unique())
        rows = []
        keys = (
            suite_rows[["experiment", "horizon"]]
            .drop_duplicates()
            .sort_values(["experiment", "horizon"], na_position="first")
        )
        for experiment, horizon in keys.itertuples(index=False):
            horizon = None if pd.isna(horizon) else int(horizon)
            mine = suite_rows[
                (suite_rows["experiment"] == experiment)
                & (suite_rows["horizon"].isna() if horizon is None else suite_rows["horizon"] == horizon)
            ]
            cells = []
            for task in tasks:
                runs = mine[mine["task"] == task]
                if runs.empty:
                    cells.append(Cell())
                    continue
                counted, left_out = counted_runs(runs)
                mean, text = mean_std_text(counted["final_return"].to_numpy(float))
                detail = f"n={len(counted)} · {_steps_text(counted['step'])}"
                incomplete = not counted["complete"].all()
                if incomplete and (states := _states_text(counted)):
                    detail += f" · {states}"
                if left_out:
                    detail += f" · {left_out} unfinished not counted"
                cells.append(Cell(mean, text, detail, incomplete=incomplete))
            rows.append(Row(_agent_label(experiment, horizon), published=False, cells=cells))
        published = load_published(suite)
        published = published[published["task"].isin(tasks)] if with_published else published.iloc[0:0]
        for (method, metric, source), group in published.groupby(["method", "metric", "source"], sort=False):
            cells = []
            for task in tasks:
                match = group[group["task"] == task]
                if match.empty:
                    cells.append(Cell())
                    continue
                row = match.iloc[0]
                n = "" if pd.isna(row["n"]) else f"n={int(row['n'])} · "
                cells.append(
                    Cell(float(row["mean"]), f"{row['mean']:.2f} ± {row['std']:.2f}", f"{n}{int(row['steps']):,} steps")
                )
            rows.append(Row(f"{method}, {metric}", published=True, source=source, cells=cells))
        for j in range(len(tasks)):
            means = [cell_mean for r in rows if (cell_mean := r.cells[j].mean) is not None]
            for r in rows:
                r.cells[j].best = bool(means) and r.cells[j].mean == max(means)
        tables.append(ComparisonTable(str(suite), tasks, rows, caption))
    return tables


def _plain(value: object) -> object:
    """A pandas/NumPy scalar as a JSON value (NaN and missing values as None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def group_records(finals: pd.DataFrame) -> list[dict[str, object]]:
    """The comparison tables' numbers as plain records, one per (suite, task, experiment):
    what ``harness report --json`` writes. ``finals`` is ``reports.load.final_scores`` (or
    ``scores_at_step``) output; ``n``, ``mean``, ``std``, ``seeds``, ``folders`` and
    ``final_returns`` describe the runs the table cell counts (``counted_runs``); ``origin``
    is ``search-trial`` for a search trial's runs, ``run`` for others (never both in one)."""
    records = []
    for (suite, task, experiment), runs in finals.groupby(["suite", "task", "experiment"], sort=True):
        counted, left_out = counted_runs(runs.sort_values(["seed", "folder"]))
        first = counted.iloc[0]
        horizon = None if pd.isna(first["horizon"]) else int(first["horizon"])
        mean, std = mean_std(counted["final_return"].to_numpy(float))
        records.append(
            {
                "suite": suite,
                "task": task,
                "agent": first["agent"],
                "label": experiment,
                "row": _agent_label(experiment, horizon),
                "origin": first["origin"],
                "horizon": horizon,
                "preset": _plain(first["preset"]),
                "budget": None if pd.isna(first["total_steps"]) else int(first["total_steps"]),
                "n": len(counted),
                "mean": _plain(mean),
                "std": _plain(std),
                "seeds": [int(s) for s in counted["seed"]],
                "folders": list(counted["folder"]),
                "final_returns": [float(v) for v in counted["final_return"]],
                "steps": [int(v) for v in counted["step"]],
                "complete": int(runs["complete"].sum()),
                "incomplete": int((~runs["complete"]).sum()),
                "counted": "complete runs" if counted["complete"].all() else "unfinished runs (none complete)",
                "unfinished_not_counted": left_out,
            }
        )
    return records


def published_lines(suite: str, task: str, agents: list[tuple[str, int | None]]) -> pd.DataFrame:
    """Published final numbers to draw on a task's learning curves: the rows whose method is
    one of our (agent, horizon) pairs, and the best published row. Columns label, mean, steps."""
    rows = load_published(suite)
    rows = rows[(rows["task"] == task) & (rows["metric"] != "best eval")]
    if rows.empty:
        return pd.DataFrame(columns=["label", "mean", "steps"])
    ours = {(a.split("+", 1)[0], h) for a, h in agents}
    keep = rows["method"].map(lambda m: published_agent(m) in ours).astype(bool)
    chosen = pd.concat([rows[keep], rows.loc[[rows["mean"].idxmax()]]]).drop_duplicates()
    return pd.DataFrame({"label": chosen["method"], "mean": chosen["mean"], "steps": chosen["steps"]})


def interval_rows(intervals: pd.DataFrame) -> list[dict[str, str]]:
    """Per-task interval estimates (``reports.aggregate.per_task_intervals``) as text rows."""
    out = []
    for (suite, task, experiment, n), group in intervals.groupby(["suite", "task", "experiment", "n"], sort=True):
        row = {"suite": suite, "task": task, "agent": experiment, "n": str(n)}
        for metric in group.itertuples(index=False):
            row[metric.metric] = f"{metric.point:.2f} [{metric.low:.2f}, {metric.high:.2f}]"
        out.append(row)
    return out


def steps_to_return_rows(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """``reports.aggregate.steps_to_return`` records as text rows: per experiment and task, the
    seeds that reached the return, the IQM and mean of their steps with 95% intervals, and
    every seed's step (``-`` where it never reached it)."""

    def interval(point: float | None, low: float | None, high: float | None) -> str:
        return "" if point is None else f"{point:,.0f} [{low:,.0f}, {high:,.0f}]"

    return [
        {
            "suite": r["suite"],
            "task": r["task"],
            "agent": r["experiment"],
            "reached": f"{r['reached']} of {r['n']}",
            "IQM": interval(r["iqm"], r["iqm_low"], r["iqm_high"]) or "not every run reached it",
            "Mean": interval(r["mean"], r["mean_low"], r["mean_high"]),
            "steps": ", ".join("-" if v is None else f"{v:,}" for v in r["steps"]),
        }
        for r in records
    ]


def _number(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def run_rows(runs: list[Run]) -> list[dict[str, str]]:
    """One row of metadata per run (all runs, whatever their state)."""
    return [
        {
            "suite": r.suite,
            "task": r.task,
            "agent": r.agent,
            "experiment": r.experiment,
            "seed": str(r.seed),
            "origin": r.origin,
            "status": r.status,
            "steps": f"{_number(r.steps_done, 0) or '?'} / {_number(r.total_steps, 0) or '?'}",
            "last eval step": _number(r.last_eval_step, 0),
            "final return": _number(r.final_return, 2),
            "best return": _number(r.best_eval_return, 2),
            "wall time (s)": _number(r.wall_time),
            "steps/s": _number(r.steps_per_second),
            "preset": r.preset or "",
            "horizon": "" if r.horizon is None else str(r.horizon),
            "git commit": r.git_commit or "",
        }
        for r in runs
    ]


def version_rows(runs: list[Run]) -> list[dict[str, str]]:
    """Each package with the versions the runs recorded (several means mixed environments)."""
    versions: dict[str, set[str]] = {}
    for run in runs:
        for package, version in run.versions.items():
            versions.setdefault(package, set()).add(version)
    return [{"package": p, "versions": ", ".join(sorted(v))} for p, v in sorted(versions.items())]
