"""Reading run directories (ARCHITECTURE.md, "Run directory contract") into tidy frames.

A run folder is ``<out>/<suite>/<task>/<agent>[+label]/seed_<n>/`` holding config.yaml,
eval.csv, train.csv and summary.json. Any set of run folders or parent folders is searched
for them; every run found is kept and described, whatever its state: a running, interrupted,
failed or unreadable run is listed with a warning, never silently dropped.

Runs are pooled as seeds by ``experiment`` (``reports.experiments``), never by agent name
alone: frames carry both the ``agent`` folder name and the ``experiment`` label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from harness.contract import (
    CONFIG_FILE,
    DONE,
    EVAL_FILE,
    FAILED,
    INTERRUPTED,
    ORIGIN_KEY,
    ORIGIN_RUN,
    ORIGIN_SEARCH_TRIAL,
    RUNNING,
    SEED_PREFIX,
    SUMMARY_FILE,
    TRAIN_FILE,
    inspect_summary,
    list_videos,
    run_state,
)
from reports.experiments import assign_experiments
from reports.runs import Run
from studies.contract import is_trial_run

TIDY_COLUMNS = ["suite", "task", "agent", "experiment", "seed", "step", "metric", "value"]
SCORE_COLUMNS = [
    "suite",
    "task",
    "agent",
    "experiment",
    "horizon",
    "preset",
    "total_steps",
    "seed",
    "step",
    "final_return",
    "complete",
    "folder",
    "origin",
    "status",
]
EVAL_METRICS = ["return_mean", "return_std", "model_error_holdout", "model_error_replay"]


def find_run_folders(paths: list[Path]) -> list[Path]:
    """Run folders given or below ``paths``: folders with summary.json, or ``seed_*`` with config.yaml."""
    found: set[Path] = set()
    for root in paths:
        root = Path(root)
        if not root.is_dir():
            continue
        for marker in (SUMMARY_FILE, CONFIG_FILE, EVAL_FILE):
            for file in [root / marker, *root.rglob(marker)]:
                if file.is_file() and (marker == SUMMARY_FILE or file.parent.name.startswith(SEED_PREFIX)):
                    found.add(file.parent.resolve())
    return sorted(found)


def _read_evals(path: Path) -> tuple[pd.DataFrame, str | None]:
    """eval.csv's rows with a numeric step and return_mean, sorted by step; and what the
    report should say about the file, if anything (absent, empty, damaged, no row yet)."""
    empty = pd.DataFrame(columns=["step", "return_mean"])
    if not path.exists():
        return empty, f"no {EVAL_FILE}"
    try:  # as text first, so a damaged cell can be told from an empty one and named
        text = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return empty, f"{EVAL_FILE} is empty"
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        why = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return empty, f"{EVAL_FILE} cannot be read: {why}"
    if "step" not in text or "return_mean" not in text:
        return empty, f"{EVAL_FILE} cannot be read: its header has no step or return_mean column"
    frame = text.apply(pd.to_numeric, errors="coerce")
    damaged = _damaged_cells(text)
    frame = frame.drop(index=list(damaged)).dropna(subset=["step", "return_mean"])
    frame = frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)
    if damaged:
        index, cells = next(iter(damaged.items()))
        why = f"row {index + 1}: {' and '.join(cells)} {'is not a number' if len(cells) == 1 else 'are not numbers'}"
        if frame.empty:
            return frame, f"{EVAL_FILE} cannot be read: {why} ({len(damaged)} of {len(text)} rows damaged)"
        return frame, f"{EVAL_FILE} is damaged: {why}; {len(damaged)} of {len(text)} rows left out"
    return frame, None if len(frame) else "no evaluation yet"


def _damaged_cells(text: pd.DataFrame) -> dict[int, list[str]]:
    """eval.csv's rows (by index) whose step or return_mean holds text that is not a number,
    each with those cells as ``step 'abc'``. ``nan`` (a diverged evaluation's) is a number; an
    empty cell is not damage (the row is left out, as ever)."""
    damaged: dict[int, list[str]] = {}
    for index, row in text[["step", "return_mean"]].iterrows():
        for column, cell in row.items():
            try:
                float(cell)
            except ValueError:
                if cell.strip():
                    damaged.setdefault(int(index), []).append(f"{column} {cell!r}")
    return damaged


def _identity(path: Path, summary: dict[str, Any]) -> tuple[str, str, str, int]:
    """(suite, task, agent folder, seed). The agent is every folder between task and seed_<n>,
    so a label holding '/' (nested folders) stays whole; suite and task come from summary.json
    when it has them, else from the path."""
    parts = path.parts
    seed_text = path.name.removeprefix(SEED_PREFIX)
    seed = (
        int(summary["seed"])
        if isinstance(summary.get("seed"), int)
        else (int(seed_text) if seed_text.lstrip("-").isdigit() else -1)
    )
    suite, task = summary.get("suite"), summary.get("task")
    if isinstance(suite, str) and isinstance(task, str):
        for i in range(len(parts) - 3, 0, -1):
            if parts[i - 1] == suite and parts[i] == task:
                return suite, task, "/".join(parts[i + 1 : -1]), seed
    tail = (("?",) * 4 + parts)[-4:]
    return (suite if isinstance(suite, str) else tail[0], task if isinstance(task, str) else tail[1], tail[2], seed)


def _optional(value: Any, kind: type) -> Any:
    try:
        return None if value is None else kind(value)
    except (TypeError, ValueError):
        return None


def logged_target_entropy(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, target entropy) as the run logged them in train.csv (one row per episode or
    log interval), or None when train.csv is missing, unreadable or has no such column. Fig. 6
    is drawn from these values, not recomputed from eq. (14)."""
    try:
        frame = pd.read_csv(path / TRAIN_FILE, usecols=lambda c: c in ("step", "target_entropy"))
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return None
    if "step" not in frame or "target_entropy" not in frame:
        return None
    frame = frame.apply(pd.to_numeric, errors="coerce").dropna()
    if frame.empty:
        return None
    return frame["step"].to_numpy(float), frame["target_entropy"].to_numpy(float)


def _origin(path: Path, summary: dict[str, Any]) -> str:
    """summary.json's ``origin``; for folders written before it was recorded, a search
    trial's where the folder lies in a search slot's (``trials/slot_<k>/``)."""
    origin = summary.get(ORIGIN_KEY)
    if isinstance(origin, str) and origin:
        return origin
    return ORIGIN_SEARCH_TRIAL if is_trial_run(path) else ORIGIN_RUN


def load_run(path: Path) -> Run:
    """Read one run folder; whatever is missing or broken becomes a problem note, not an error."""
    summary, summary_problem = inspect_summary(path)
    status = run_state(path, summary)  # the same "is it still running?" rule as `harness status`
    summary = summary or {}
    suite, task, agent, seed = _identity(path, summary)
    config_text = (path / CONFIG_FILE).read_text() if (path / CONFIG_FILE).exists() else ""
    try:
        config = yaml.safe_load(config_text) or {}
    except yaml.YAMLError:
        config = {}
    config = config if isinstance(config, dict) else {}
    evals, eval_problem = _read_evals(path / EVAL_FILE)
    agent_section = config.get("agent")
    agent_config = agent_section if isinstance(agent_section, dict) else {}
    run = Run(
        path=path,
        suite=str(suite),
        task=str(task),
        agent=str(agent),
        seed=seed,
        status=str(status),
        horizon=_optional(summary.get("horizon", agent_config.get("horizon")), int),
        preset=_optional(summary.get("preset", config.get("preset")), str),
        steps_done=_optional(summary.get("steps_done"), int),
        total_steps=_optional(summary.get("total_steps", (config.get("trainer") or {}).get("total_steps")), int),
        final_eval_return=_optional(summary.get("final_eval_return"), float),
        best_eval_return=_optional(summary.get("best_eval_return"), float),
        wall_time=_optional(summary.get("wall_time"), float),
        steps_per_second=_optional(summary.get("steps_per_second"), float),
        versions={str(k): str(v) for k, v in (summary.get("versions") or {}).items()},
        git_commit=_optional(summary.get("git_commit"), str),
        error=_optional(summary.get("error"), str),
        config=config,
        config_text=config_text,
        evals=evals,
        videos=list_videos(path),
        origin=_origin(path, summary),
    )
    if summary_problem:
        run.problems.append(summary_problem)
    if not config_text:
        run.problems.append(f"no {CONFIG_FILE}")
    if eval_problem:
        run.problems.append(eval_problem)
    if status != DONE:
        run.problems.append(
            {
                RUNNING: "still running: its numbers are not final",
                INTERRUPTED: "interrupted (rerun its command to resume): numbers not final",
                FAILED: f"failed: {run.error or 'no error recorded'}",
            }.get(status, f"status {status!r}: numbers not final")
        )
    return run


def load_experiments(paths: list[Path]) -> tuple[list[Run], list[str]]:
    """Every run under ``paths``, sorted by (suite, task, agent, seed), each labelled with its
    experiment; and the warnings explaining runs of one agent that are not pooled as seeds."""
    runs = [load_run(path) for path in find_run_folders([Path(p) for p in paths])]
    runs = sorted(runs, key=lambda r: (r.suite, r.task, r.agent, r.seed, str(r.path)))
    return runs, assign_experiments(runs)


def load_runs(paths: list[Path]) -> list[Run]:
    """Every run under ``paths`` (``load_experiments`` without the warnings)."""
    return load_experiments(paths)[0]


def tidy_evals(runs: list[Run]) -> pd.DataFrame:
    """All eval.csv rows as one long frame: suite, task, agent, experiment, seed, step, metric, value.

    ``metric`` is an eval.csv column (return_mean, return_std, model_error_holdout, ...);
    ``step`` is env steps; cells left empty in the CSV are dropped.
    """
    pieces = []
    for run in runs:
        metrics = [m for m in run.evals.columns if m not in ("step", "episodes", "wall_time")]
        if run.evals.empty or not metrics:
            continue
        long = run.evals.melt(id_vars="step", value_vars=metrics, var_name="metric").dropna(subset=["value"])
        long.insert(0, "seed", run.seed)
        long.insert(0, "experiment", run.experiment)
        long.insert(0, "agent", run.agent)
        long.insert(0, "task", run.task)
        long.insert(0, "suite", run.suite)
        pieces.append(long)
    if not pieces:
        return pd.DataFrame(columns=TIDY_COLUMNS)
    frame = pd.concat(pieces, ignore_index=True)[TIDY_COLUMNS]
    return frame.astype({"step": int, "seed": int, "value": float})


def step_grid(steps: pd.Series | np.ndarray) -> np.ndarray:
    """The common grid of a task: every step at which some run evaluated, sorted. (n_steps,)"""
    return np.unique(np.asarray(steps, dtype=np.int64))


def resample_curves(frame: pd.DataFrame, metric: str = "return_mean") -> pd.DataFrame:
    """One ``metric`` per run on its task's common step grid (linear interpolation).

    ``frame`` is ``tidy_evals`` output. Each (suite, task) gets the union of its runs' eval
    steps as grid; a run is interpolated only within the steps it covered (no extrapolation:
    outside, the row is absent). Returns tidy rows with the same columns.
    """
    rows = frame[frame["metric"] == metric]
    pieces = []
    for (_suite, _task), task_rows in rows.groupby(["suite", "task"], sort=True):
        grid = step_grid(task_rows["step"])
        for (_experiment, _seed), run_rows in task_rows.groupby(["experiment", "seed"], sort=True):
            run_rows = run_rows.sort_values("step")
            inside = grid[(grid >= run_rows["step"].min()) & (grid <= run_rows["step"].max())]
            values = np.interp(inside, run_rows["step"].to_numpy(), run_rows["value"].to_numpy())
            piece = pd.DataFrame({"step": inside, "value": values, "metric": metric})
            for column in ("suite", "task", "agent", "experiment", "seed"):
                piece[column] = run_rows[column].iloc[0]
            pieces.append(piece)
    if not pieces:
        return pd.DataFrame(columns=TIDY_COLUMNS)
    return pd.concat(pieces, ignore_index=True)[TIDY_COLUMNS].astype({"step": int, "seed": int})


def _score_row(run: Run, step: int | None, value: float, complete: bool) -> dict[str, Any]:
    return {
        "suite": run.suite,
        "task": run.task,
        "agent": run.agent,
        "experiment": run.experiment,
        "horizon": run.horizon,
        "preset": run.preset,
        "total_steps": run.total_steps,
        "seed": run.seed,
        "step": step,
        "final_return": value,
        "complete": complete,
        "folder": str(run.path),
        "origin": run.origin,
        "status": run.status,
    }


def _score_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=SCORE_COLUMNS).astype({"complete": bool, "final_return": float})


def final_scores(runs: list[Run]) -> pd.DataFrame:
    """One row per run with an evaluation: suite, task, agent, experiment, horizon, preset,
    total_steps (its budget), seed, step (of the last evaluation), final_return (its
    return_mean), complete (status is done), folder (the run folder), origin (a search
    trial's run or another), status (the run's)."""
    return _score_frame(
        [_score_row(r, r.last_eval_step, r.final_return, r.complete) for r in runs if r.final_return is not None]
    )


def scores_at_step(runs: list[Run], budget: dict[tuple[str, str], int]) -> pd.DataFrame:
    """Like ``final_scores``, but each run's return at a fixed step budget per (suite, task):
    its latest evaluation at or before the budget. ``complete`` is whether the run got that
    far (an evaluation at or beyond the budget); tasks without a budget are left out."""
    rows = []
    for r in runs:
        step = budget.get((r.suite, r.task))
        if step is None or r.evals.empty:
            continue
        before = r.evals[r.evals["step"] <= step]
        if before.empty:
            continue
        rows.append(
            _score_row(
                r,
                int(before["step"].iloc[-1]),
                float(before["return_mean"].iloc[-1]),
                int(r.evals["step"].iloc[-1]) >= step,
            )
        )
    return _score_frame(rows)


def first_step_at(steps: np.ndarray, returns: np.ndarray, threshold: float) -> int | None:
    """The env step of the first evaluation whose return is ``threshold`` or more; None if none is."""
    reached = np.flatnonzero(np.asarray(returns, dtype=float) >= threshold)
    return int(np.asarray(steps)[reached[0]]) if len(reached) else None


def first_steps_to(runs: list[Run], threshold: float) -> pd.DataFrame:
    """Per complete run: suite, task, experiment, seed, budget (total_steps) and step, the env
    step of its first evaluation with return_mean ``threshold`` or more (None if none)."""
    rows = [
        {
            "suite": r.suite,
            "task": r.task,
            "experiment": r.experiment,
            "seed": r.seed,
            "budget": r.total_steps if r.total_steps is not None else r.last_eval_step,
            "step": None
            if r.evals.empty
            else first_step_at(r.evals["step"].to_numpy(), r.evals["return_mean"].to_numpy(), threshold),
        }
        for r in runs
        if r.complete
    ]
    return pd.DataFrame(rows, columns=["suite", "task", "experiment", "seed", "budget", "step"]).astype(
        {"step": object}
    )
