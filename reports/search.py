"""The report's search panel: one section per study folder (``studies/contract.py``).

A target-entropy search (``harness search entropy``) leaves a study folder: study.json (its
settings and ``paper_schedule``, the task's Table 4 schedule [H_init, H_final, beta]),
trials.csv (one row per trial) and the trials' ordinary run folders under ``trials/``. The
panel shows the objective per trial and against each parameter, the trials sorted by
objective, and the best schedule beside Table 4's, both drawn with eq. (14). The run folders
themselves are read like any other (one table row per slot's experiment).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from harness.suites import get_task
from reports import figures
from reports.load import logged_target_entropy
from reports.runs import Run
from studies.contract import TRIAL_COLUMNS, TRIALS_DIR, find_study_folders, read_study_file, read_trials_file

PARAMETERS = ("H_init", "H_final", "beta")  # eq. (14): H_init, H_final and the decay exponent beta
NUMERIC_COLUMNS = ("number", "slot", *PARAMETERS, "objective")
SETTINGS_SHOWN = (
    "suite",
    "task",
    "agent",
    "preset",
    "steps",
    "seeds",
    "trials",
    "sampler",
    "pruner",
    "study_seed",
    "overrides",
    "storage",
)


def read_trials(study_dir: Path) -> pd.DataFrame:
    """trials.csv as a frame, numbers parsed (NaN where empty), sorted by trial number."""
    rows = read_trials_file(study_dir)
    frame = pd.DataFrame(rows, columns=list(rows[0]) if rows else TRIAL_COLUMNS)
    for column in NUMERIC_COLUMNS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in ("state", "outcome", "run_folder"):
        frame[column] = frame[column].fillna("").astype(str) if column in frame else ""
    return frame.dropna(subset=["number"]).sort_values("number").reset_index(drop=True)


def maximises(settings: dict[str, Any]) -> bool:
    """Whether the study maximises its objective (study.json ``direction``; default: maximise,
    the objective being a return)."""
    return str(settings.get("direction", "maximize")).lower().startswith("max")


def best_trial(trials: pd.DataFrame, maximise: bool = True) -> pd.Series | None:
    """The complete trial with the best objective (the lowest number on ties), or None."""
    complete = trials[(trials["state"] == "COMPLETE") & trials["objective"].notna()]
    if complete.empty:
        return None
    ordered = complete.sort_values(["objective", "number"], ascending=[not maximise, True])
    return ordered.iloc[0]


def _schedule(values: Any) -> tuple[float, float, float | None] | None:
    """[H_init, H_final, beta] (beta None or NaN: constant) as numbers, or None if unreadable."""
    try:
        init, final, decay = values
        decay = None if decay is None or (isinstance(decay, float) and math.isnan(decay)) else float(decay)
        return float(init), float(final), decay
    except (TypeError, ValueError):
        return None


def _number_text(value: Any, digits: int = 4) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def _trial_runs(study_dir: Path, run_folder: str, runs: list[Run]) -> list[Run]:
    """The runs at or below a trial's ``run_folder`` (relative to the study folder, or absolute)."""
    if not run_folder:
        return []
    folder = Path(run_folder) if Path(run_folder).is_absolute() else study_dir / run_folder
    folder = folder.resolve()
    return [r for r in runs if r.path == folder or folder in r.path.parents]


def _budget(settings: dict[str, Any], best_runs: list[Run]) -> int | None:
    """Env steps of the search's runs: the best trial's config, else study.json, else the task's."""
    for run in best_runs:
        if run.total_steps:
            return run.total_steps
    if isinstance(settings.get("steps"), int):
        return settings["steps"]
    try:
        return get_task(str(settings.get("suite")), str(settings.get("task"))).budget
    except LookupError:
        return None


def _trial_rows(trials: pd.DataFrame, maximise: bool, best_number: int | None) -> list[dict[str, str]]:
    ordered = trials.assign(missing=trials["objective"].isna()).sort_values(
        ["missing", "objective", "number"], ascending=[True, not maximise, True]
    )
    return [
        {
            "trial": str(int(t.number)),
            "slot": _number_text(t.slot, 6),
            "state": t.state,
            "H_init": _number_text(t.H_init),
            "H_final": _number_text(t.H_final),
            "beta": _number_text(t.beta) or "constant",
            "objective": _number_text(t.objective, 6),
            "outcome": t.outcome,
            "run folder": t.run_folder,
            "best": t.number == best_number,
        }
        for t in ordered.itertuples(index=False)
    ]


def study_section(study_dir: Path, runs: list[Run]) -> dict[str, Any]:
    """The search panel of one study folder as plain data for the template (and --json)."""
    settings = read_study_file(study_dir) or {}
    trials = read_trials(study_dir)
    maximise = maximises(settings)
    best = best_trial(trials, maximise)
    best_number = None if best is None else int(best["number"])
    paper = _schedule(settings.get("paper_schedule"))
    best_runs = [] if best is None else _trial_runs(study_dir, best["run_folder"], runs)
    budget = _budget(settings, best_runs)
    section: dict[str, Any] = {
        "name": str(settings.get("study") or study_dir.name),
        "folder": str(study_dir),
        "settings": [(key, str(settings[key])) for key in SETTINGS_SHOWN if settings.get(key) not in (None, [], "")],
        "direction": "maximise" if maximise else "minimise",
        "states": {str(s): int(n) for s, n in trials["state"].value_counts().sort_index().items()},
        "trials": _trial_rows(trials, maximise, best_number),
        "figures": [],
        "notes": [],
        "budget": budget,
        "paper_schedule": None if paper is None else list(paper),
        "best": None,
        "schedules": [],
        "schedule_uri": None,
    }
    if trials.empty:
        section["notes"].append("trials.csv holds no trial yet")
        return section
    section["figures"].append(
        {
            "title": "objective per trial, by state; the line is the best complete trial so far",
            "uri": figures.search_history(trials, maximise),
        }
    )
    section["figures"].append(
        {
            "title": "objective against each parameter of eq. (14); beta on a log2 axis",
            "uri": figures.search_parameters(trials, PARAMETERS, best_number),
        }
    )
    schedules, curves = [], []
    if best is None:
        section["notes"].append("no complete trial with an objective yet: no best schedule")
    else:
        decay = None if pd.isna(best["beta"]) else float(best["beta"])
        section["best"] = {
            "trial": best_number,
            "slot": None if pd.isna(best.get("slot")) else int(best["slot"]),
            "objective": float(best["objective"]),
            "schedule": [float(best["H_init"]), float(best["H_final"]), decay],
            "run_folder": best["run_folder"],
            "experiments": sorted({r.experiment for r in best_runs}),
        }
        schedules.append(
            (
                f"best trial {best_number}",
                (float(best["H_init"]), float(best["H_final"]), decay),
                _number_text(float(best["objective"]), 6),
                ", ".join(section["best"]["experiments"]),
            )
        )
        logged = next((c for c in map(logged_target_entropy, (r.path for r in best_runs)) if c is not None), None)
        if logged is not None:  # as its run logged it in train.csv
            curves.append((schedules[-1][0], schedules[-1][1], *logged))
    if paper is None:
        section["notes"].append("study.json has no paper_schedule (Table 4) to compare with")
    else:
        schedules.append(("Table 4 (paper)", paper, "", ""))
        curve = settings.get("paper_schedule_curve") or {}
        if curve.get("steps") and curve.get("values"):  # eq. (14) as the search computed it
            curves.append(("Table 4 (paper)", paper, curve["steps"], curve["values"]))
    section["schedules"] = [
        {
            "name": name,
            "H_init": f"{init:g}",
            "H_final": f"{final:g}",
            "beta": "constant" if decay is None else f"{decay:g}",
            "objective": objective,
            "rows": rows,
        }
        for name, (init, final, decay), objective, rows in schedules
    ]
    if curves:
        section["schedule_uri"] = figures.entropy_schedules(
            [
                {
                    "label": f"{name}: {init:g}, {final:g}, {'constant' if decay is None else f'{decay:g}'}",
                    "steps": steps,
                    "values": values,
                }
                for name, (init, final, decay), steps, values in curves
            ]
        )
    if len(curves) < len(schedules):
        section["notes"].append(
            "a schedule is drawn only from what a run logged (train.csv) or the study recorded "
            "(study.json paper_schedule_curve); some were not available"
        )
    return section


def study_sections(paths: list[Path], runs: list[Run]) -> list[dict[str, Any]]:
    """A search panel per study folder given or below ``paths``."""
    return [study_section(folder, runs) for folder in find_study_folders(paths)]


def trial_experiments(sections: list[dict[str, Any]], runs: list[Run]) -> dict[tuple[str, str, str], str]:
    """(suite, task, experiment) of every search trial's runs (those under a study folder's
    ``trials/``) -> "" or, for a study's best trial, the name a legend gives it."""
    found: dict[tuple[str, str, str], str] = {}
    for section in sections:
        folder = Path(section["folder"])
        for row in section["trials"]:  # best objective first: a slot's scored trial before its retries
            best = f"best of study {section['name']}: trial {row['trial']}" if row["best"] else ""
            for run in _trial_runs(folder, row["run folder"], runs):
                found.setdefault((run.suite, run.task, run.experiment), best)
        for run in _trial_runs(folder, TRIALS_DIR, runs):  # and those trials.csv does not list (yet)
            found.setdefault((run.suite, run.task, run.experiment), "")
    return found


def study_numbers(section: dict[str, Any]) -> dict[str, Any]:
    """What ``--json`` keeps of a search panel: everything but the figures."""
    return {key: value for key, value in section.items() if key not in ("figures", "schedule_uri")}
