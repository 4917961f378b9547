"""From run directories to the report's content: load, aggregate, draw, tabulate.

``build_report`` returns the plain dict the HTML template renders; a panel that cannot be
drawn (one seed, one agent, no model-error columns...) becomes a note, never an error.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from baselines.published import load_reference_curves
from harness.suites import get_task
from reports import aggregate, figures, tables, videos
from reports.load import (
    final_scores,
    first_steps_to,
    load_experiments,
    logged_target_entropy,
    resample_curves,
    scores_at_step,
    tidy_evals,
)
from reports.model_generalisation import model_generalisation_section
from reports.runs import Run
from reports.search import study_numbers, study_sections, trial_experiments

ABLATION_AGENTS = ("sac", "sac-svg", "mve", "sac-svg-mve")  # paper Fig. 4: expansion in actor x critic
MODEL_ERROR_METRICS = ("model_error_holdout", "model_error_replay")
PAIR_SEPARATORS = (" vs ", " | ", " ~ ", " <> ")


def _warnings(runs: list[Run], grouping: list[str]) -> list[str]:
    """Why some runs of one agent are not pooled as seeds, then each run's own problems."""
    return grouping + [f"{run.path}: {problem}" for run in runs for problem in run.problems]


def _experiment_agents(runs: list[Run]) -> dict[tuple[str, str, str], tuple[str, int | None]]:
    """(suite, task, experiment) -> (the agent's registry name, horizon)."""
    return {(r.suite, r.task, r.experiment): (r.base_agent, r.horizon) for r in runs}


def _unfinished_text(runs: list[Run]) -> str:
    """What a curve's legend says of an experiment's runs that are not done: "" when all are;
    one run's state and steps ("interrupted, 200 of 300 steps"); else counts ("1 interrupted")."""
    unfinished = [r for r in runs if not r.complete]
    if not unfinished:
        return ""
    if len(runs) == 1:
        run = runs[0]
        known = run.steps_done is not None and run.total_steps
        return run.status + (f", {run.steps_done:,} of {run.total_steps:,} steps" if known else "")
    return ", ".join(f"{count} {status}" for status, count in sorted(Counter(r.status for r in unfinished).items()))


def curve_marks(runs: list[Run], trials: dict[tuple[str, str, str], str]) -> dict[tuple, figures.CurveMark]:
    """(suite, task, experiment) -> how its curve is drawn: its unfinished runs, and whether
    it is a search trial (``trials``: ``reports.search.trial_experiments``)."""
    members: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        members[(run.suite, run.task, run.experiment)].append(run)
    return {
        key: figures.CurveMark(
            unfinished=_unfinished_text(group),
            finished=any(r.complete for r in group),
            trial=key in trials,
            best=trials.get(key, ""),
        )
        for key, group in members.items()
    }


def _learning_curves(runs: list[Run], curves: pd.DataFrame, colors: dict, marks: dict, reps: int) -> tuple[list, dict]:
    """One figure per (suite, task), with the published curves of that task
    (``load_reference_curves``) beside ours; also returns the bands, keyed (suite, task, experiment)."""
    reference = load_reference_curves()
    styles = figures.reference_styles(list(reference["label"].unique()))
    agents_of = _experiment_agents(runs)
    out, bands = [], {}
    for (suite, task), task_curves in curves.groupby(["suite", "task"], sort=True):
        task_bands = {}
        for experiment, experiment_curves in task_curves.groupby("experiment", sort=True):
            task_bands[experiment] = bands[(suite, task, experiment)] = aggregate.curve_band(experiment_curves, reps)
        agents = sorted({agents_of[(suite, task, e)] for e in task_bands}, key=str)
        published = tables.published_lines(suite, task, agents)
        ref = reference[(reference["suite"] == suite) & (reference["task"] == task)]
        out.append(
            {
                "title": f"{suite} / {task}",
                "uri": figures.learning_curves(
                    f"{suite} / {task}",
                    task_bands,
                    colors,
                    published,
                    ref,
                    styles,
                    {e: marks[(suite, task, e)] for e in task_bands},
                ),
                "note": "; ".join(ref["source"].unique()),
            }
        )
    return out, bands


def _aggregate_section(
    suite: str, finals: pd.DataFrame, curves: pd.DataFrame, colors: dict, reps: int
) -> dict[str, Any]:
    """The rliable panels of one suite, or notes saying why a panel is skipped."""
    score_set = aggregate.build_score_set(finals, suite)
    section: dict[str, Any] = {
        "suite": suite,
        "tasks": score_set.tasks,
        "score_label": score_set.score_label,
        "references": [(t, f"{v:.2f}", d) for t, (v, d) in sorted(score_set.references.items())],
        "notes": list(score_set.notes),
        "figures": [],
    }
    numbers: dict[str, Any] = {
        "suite": suite,
        "tasks": score_set.tasks,
        "score": score_set.score_label,
        "seeds": {e: int(m.shape[0]) for e, m in score_set.scores.items()},
        "metrics": [],
        "probability_of_improvement": [],
    }
    section["numbers"] = numbers
    if not score_set.scores:
        section["notes"].append(
            f"no agent has {aggregate.MIN_RUNS}+ complete runs on a common task: "
            "interval panels skipped (run more seeds)"
        )
        return section
    if not score_set.normalised:
        section["notes"].append(
            "no published reference for these tasks: scores are raw returns, and the "
            "optimality gap (a distance to a reference score) is not computed"
        )
    names, points, intervals = aggregate.aggregate_metrics(score_set, reps)
    numbers["metrics"] = [
        {
            "experiment": e,
            "metric": name,
            "point": float(points[e][k]),
            "low": float(intervals[e][0][k]),
            "high": float(intervals[e][1][k]),
        }
        for e in sorted(points)
        for k, name in enumerate(names)
    ]
    section["figures"].append(
        {
            "title": "aggregate metrics across tasks (95% stratified bootstrap intervals)",
            "uri": figures.aggregate_intervals(names, points, intervals, colors, score_set.score_label),
        }
    )
    profile_reps = min(reps, aggregate.PROFILE_REPS)
    taus, profiles, cis = aggregate.performance_profiles(score_set, profile_reps)
    section["figures"].append(
        {
            "title": "performance profiles (score distributions)",
            "uri": figures.performance_profiles(taus, profiles, cis, colors, score_set.score_label),
        }
    )
    if len(score_set.scores) >= 2:
        names_text = "".join(score_set.scores)
        separator = next(s for s in PAIR_SEPARATORS if s not in names_text)
        probs, prob_cis = aggregate.probability_of_improvement(score_set, separator, profile_reps)
        numbers["probability_of_improvement"] = [
            dict(
                zip(("x", "y"), pair.split(separator), strict=True),
                point=float(probs[pair]),
                low=float(np.ravel(prob_cis[pair])[0]),
                high=float(np.ravel(prob_cis[pair])[1]),
            )
            for pair in sorted(probs)
        ]
        section["figures"].append(
            {
                "title": "probability of improvement P(X > Y)",
                "uri": figures.probability_of_improvement(probs, prob_cis, separator),
            }
        )
    else:
        section["notes"].append("one agent only: probability of improvement skipped")
    efficiency = aggregate.sample_efficiency(curves, score_set, reps=reps)
    if efficiency is None:
        section["notes"].append("fewer than two evaluation steps shared by every run: sample-efficiency curve skipped")
    else:
        steps, eff_points, eff_cis = efficiency
        section["figures"].append(
            {
                "title": "IQM sample-efficiency curve",
                "uri": figures.sample_efficiency(steps, eff_points, eff_cis, colors, f"IQM of {score_set.score_label}"),
            }
        )
    return section


def _ablation(runs: list[Run], bands: dict, colors: dict, marks: dict) -> tuple[list, str]:
    """Paper Fig. 4 (value expansion in the actor, the critic, both, neither) per task: the
    bands of every experiment of those agents."""
    agent_of = {key: agent for key, (agent, _) in _experiment_agents(runs).items()}
    present = {(s, t, agent_of[(s, t, e)]) for s, t, e in bands}
    tasks = sorted({(s, t) for s, t, _ in present if (s, t, "mve") in present and (s, t, "sac-svg-mve") in present})
    if not tasks:
        return [], "needs mve and sac-svg-mve runs on the same task: skipped"
    out = []
    for suite, task in tasks:
        chosen = {
            e: b
            for (s, t, e), b in sorted(bands.items())
            if (s, t) == (suite, task) and agent_of[(s, t, e)] in ABLATION_AGENTS
        }
        out.append(
            {
                "title": f"{suite} / {task}",
                "uri": figures.learning_curves(
                    f"{suite} / {task}: expansion in actor / critic",
                    chosen,
                    colors,
                    marks={e: marks[(suite, task, e)] for e in chosen},
                ),
            }
        )
    return out, ""


def _model_errors(evals: pd.DataFrame, colors: dict) -> tuple[list, str]:
    """Paper Fig. 7 per task, where eval.csv recorded model-error columns."""
    rows = evals[evals["metric"].isin(MODEL_ERROR_METRICS)]
    if rows.empty:
        return [], "no run recorded model_error_holdout / model_error_replay in eval.csv: skipped"
    return [
        {"title": f"{suite} / {task}", "uri": figures.model_errors(f"{suite} / {task}: model error", group, colors)}
        for (suite, task), group in rows.groupby(["suite", "task"], sort=True)
    ], ""


def _entropy_schedules(runs: list[Run], trials: dict) -> tuple[str | None, list[dict[str, str]]]:
    """Paper Fig. 6: the distinct target-entropy schedules the runs used, and a table of them;
    a schedule only search trials used (``trials``) is drawn grey."""
    seen: dict[tuple, dict] = {}
    for run in runs:
        schedule, total = run.target_entropy(), run.total_steps
        if schedule is None or not total:
            continue
        init, final, decay = schedule
        entry = seen.setdefault(
            (init, final, decay, total),
            {"init": init, "final": final, "decay": decay, "total_steps": total, "runs": [], "trial": True},
        )
        entry["trial"] = entry["trial"] and (run.suite, run.task, run.experiment) in trials
        name = f"{run.suite}/{run.task} {run.experiment}"
        if name not in entry["runs"]:
            entry["runs"].append(name)
        if "steps" not in entry and (logged := logged_target_entropy(run.path)) is not None:
            entry["steps"], entry["values"] = logged
    if not seen:
        return None, []
    for entry in seen.values():
        entry["label"] = ", ".join(entry["runs"][:3]) + (
            f" +{len(entry['runs']) - 3} more" if len(entry["runs"]) > 3 else ""
        )
    rows = [
        {
            "runs": ", ".join(e["runs"]),
            "init": f"{e['init']:g}",
            "final": f"{e['final']:g}",
            "decay": "constant" if e["decay"] is None else f"{e['decay']:g}",
            "steps": f"{e['total_steps']:,}",
        }
        for e in seen.values()
    ]
    drawn = [e for e in seen.values() if "steps" in e]
    return (figures.entropy_schedules(drawn) if drawn else None), rows


def comparison_budgets(runs: list[Run]) -> dict[tuple[str, str], int]:
    """The shorter budgets at which a task's published comparisons are also made (MBPO's
    figure stops at 125k-400k steps): (suite, task) -> step, for the tasks of these runs."""
    budgets = {}
    for suite, task in {(r.suite, r.task) for r in runs}:
        try:
            steps = get_task(suite, task).comparison_steps
        except LookupError:  # a run of a task this version does not know: no budget
            continue
        if steps:
            budgets[(suite, task)] = steps[0]
    return budgets


def build_report(
    paths: list[Path],
    reps: int = aggregate.DEFAULT_REPS,
    video_folder: str = videos.linked_video_folder(Path("report.html")),
    threshold: float | None = None,
) -> dict[str, Any]:
    """Everything the template shows, from the run folders under ``paths``. Writes nothing.

    ``reps``: bootstrap replications of interval estimates (rliable's default); profiles and
    probability of improvement use at most ``aggregate.PROFILE_REPS``. ``video_folder``: the
    folder, relative to the report, that videos too big to embed link to (``reports.videos``:
    ``copy_linked_videos`` puts them there). ``threshold``: a return; when given, the env steps
    each experiment's runs took to first reach it (``aggregate.steps_to_return``).
    """
    runs, grouping_warnings = load_experiments(paths)
    evals = tidy_evals(runs)
    curves = resample_curves(evals, "return_mean")
    finals = final_scores(runs)
    budgets = comparison_budgets(runs)
    at_budget = scores_at_step(runs, budgets)
    studies = study_sections(paths, runs)
    trials = trial_experiments(studies, runs)
    colors = figures.agent_colors([r.experiment for r in runs], later={experiment for _, _, experiment in trials})
    marks = curve_marks(runs, trials)
    learning, bands = _learning_curves(runs, curves, colors, marks, reps)
    ablation, ablation_note = _ablation(runs, bands, colors, marks)
    model_error, model_error_note = _model_errors(evals, colors)
    entropy_uri, entropy_rows = _entropy_schedules(runs, trials)
    generalisation = model_generalisation_section(paths)
    suites = sorted(finals["suite"].unique())
    counts = {
        "runs": len(runs),
        "done": sum(r.complete for r in runs),
        "tasks": len({(r.suite, r.task) for r in runs}),
        "agents": len({r.base_agent for r in runs}),  # registry names: sac-svg+horizon=3 is sac-svg
        "experiments": len({r.experiment for r in runs}),  # labels: one experiment on 5 tasks is one
    }
    video_groups, video_warnings = videos.video_sections(runs, video_folder)
    warnings = _warnings(runs, grouping_warnings) + video_warnings
    aggregates = [_aggregate_section(s, finals, curves, colors, reps) for s in suites]
    per_task = aggregate.per_task_intervals(finals, reps)
    to_return = (
        None if threshold is None else aggregate.steps_to_return(first_steps_to(runs, threshold), threshold, reps)
    )
    return {
        "inputs": [str(p) for p in paths],
        "counts": counts,
        "warnings": warnings,
        "numbers": {
            "inputs": [str(p) for p in paths],
            "counts": counts,
            "std_ddof": tables.STD_DDOF,
            "warnings": warnings,
            "groups": tables.group_records(finals),
            "groups_at_comparison_budget": tables.group_records(at_budget),
            "per_task_intervals": per_task.to_dict(orient="records"),
            "aggregates": [section["numbers"] for section in aggregates],
            "steps_to_return": to_return,
            "studies": [study_numbers(study) for study in studies],
            "model_generalisation": [panel["numbers"] for panel in generalisation["panels"]],
            "videos": videos.video_records(video_groups),
        },
        "studies": studies,
        "comparison": tables.comparison_tables(finals)
        + tables.comparison_tables(
            at_budget,
            with_published=False,
            caption="at MBPO's own figure budgets (Janner et al. 2019, Figure 2, the curves Amos et al. 2021, "
            "Figure 2 compares with): each run's latest evaluation at or before "
            + ", ".join(f"{task} {step:,}" for (_, task), step in sorted(budgets.items()))
            + " steps; ‡ marks runs that have not reached it",
        ),
        "std_ddof": tables.STD_DDOF,
        "learning_curves": learning,
        "videos": video_groups,
        "video_folder": video_folder,
        "video_embed_max_bytes": videos.EMBED_MAX_BYTES,
        "aggregates": aggregates,
        "per_task_intervals": tables.interval_rows(per_task),
        "threshold": threshold,
        "steps_to_return": tables.steps_to_return_rows(to_return or []),
        "reps": reps,
        "profile_reps": min(reps, aggregate.PROFILE_REPS),
        "seed": aggregate.BOOTSTRAP_SEED,
        "ablation": ablation,
        "ablation_note": ablation_note,
        "model_error": model_error,
        "model_error_note": model_error_note,
        "model_generalisation": generalisation,
        "entropy_uri": entropy_uri,
        "entropy_rows": entropy_rows,
        "runs": tables.run_rows(runs),
        "versions": tables.version_rows(runs),
        "configs": [
            {"name": f"{r.suite}/{r.task}/{r.agent}/seed_{r.seed}", "path": str(r.path), "text": r.config_text}
            for r in runs
        ],
    }
