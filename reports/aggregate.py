"""rliable aggregation: interval estimates per task and across tasks, performance profiles,
probability of improvement and IQM sample-efficiency curves (Agarwal et al., 2021).

Scores across tasks are normalised by a fixed per-task reference from
``baselines/published`` (``normalisation_references``); a suite without references (e.g.
``classic``) is aggregated on raw returns and labelled so. All intervals are 95% stratified
bootstrap intervals from ``rliable.library.get_interval_estimates``.

Reproducibility: rliable's bootstrap draws its resampling indices from NumPy's *global*
generator (``np.random.choice`` in ``StratifiedBootstrap.update_indices``); its
``random_state`` argument only seeds arch's own generator, which those indices never use (and
arch 7 deprecates it). So every bootstrap here runs inside ``seeded_numpy(BOOTSTRAP_SEED)``,
which seeds the global generator and restores its previous state afterwards.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics

from baselines.published import load_published, published_agent

BOOTSTRAP_SEED = 0
#: rliable's default number of bootstrap replications of ``get_interval_estimates`` (50,000).
DEFAULT_REPS: int = inspect.signature(rly.get_interval_estimates).parameters["reps"].default
#: Profiles and probability of improvement use rliable's ``create_performance_profile``
#: default (2,000), as rliable's README does for probability of improvement.
PROFILE_REPS: int = inspect.signature(rly.create_performance_profile).parameters["reps"].default
AGGREGATE_METRICS = ["IQM", "Mean", "Median", "Optimality gap"]
MIN_RUNS = 2  # fewer runs than this per task gives no interval worth drawing


@contextlib.contextmanager
def seeded_numpy(seed: int = BOOTSTRAP_SEED) -> Iterator[None]:
    """Seed NumPy's global generator (which rliable's bootstrap draws from), then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # arch warns on degenerate (all-equal) resamples
            yield
    finally:
        np.random.set_state(state)


def interval_estimates(scores: Mapping[str, np.ndarray | list[np.ndarray]], func, reps: int) -> tuple[dict, dict]:
    """``rly.get_interval_estimates`` with the fixed seed: (points, intervals (2, ...)) per key."""
    with seeded_numpy():
        return rly.get_interval_estimates(scores, func, reps=reps)


def normalisation_references(suite: str) -> dict[str, tuple[float, str]]:
    """Per task of ``suite``: (reference return, what it is). Empty when none is published.

    POPLIN suite: the best published SAC-SVG(H) mean over H (paper Table 2). MBPO suite: the
    authors' SAC-SVG(2) runs, last evaluation. A normalised score is return / reference.
    """
    published = load_published(suite)
    is_svg = published["method"].map(lambda m: (published_agent(m) or ("",))[0] == "sac-svg").astype(bool)
    svg = published[is_svg & (published["metric"] != "best eval")]
    references = {}
    for task, rows in svg.groupby("task"):
        best = rows.loc[rows["mean"].idxmax()]
        references[task] = (
            float(best["mean"]),
            f"{best['method']}, {best['metric']} at {int(best['steps']):,} steps ({best['source']})",
        )
    return references


@dataclass
class ScoreSet:
    """Final scores of one suite, ready for rliable: per experiment a (runs, tasks) matrix."""

    suite: str
    tasks: list[str]
    scores: dict[str, np.ndarray]  # experiment -> (runs, tasks), normalised when ``normalised``
    normalised: bool
    references: dict[str, tuple[float, str]]
    notes: list[str] = field(default_factory=list)

    @property
    def score_label(self) -> str:
        return "normalised score (return / reference)" if self.normalised else "raw return (no published reference)"


def build_score_set(finals: pd.DataFrame, suite: str) -> ScoreSet:
    """Complete runs' final returns of ``suite`` as (runs, tasks) matrices per experiment.

    ``finals`` is ``reports.load.final_scores`` output. Only complete runs count, pooled by
    experiment (``reports.experiments``). An experiment with fewer than ``MIN_RUNS`` runs on
    every task is left out; the tasks are those where every remaining experiment has
    ``MIN_RUNS`` runs or more; an experiment with unequal run counts across them keeps its
    lowest seeds on each.
    """
    rows = finals[(finals["suite"] == suite) & finals["complete"]]
    notes = []
    if len(rows) < len(finals[finals["suite"] == suite]):
        notes.append("only complete runs (status done) enter the aggregate panels")
    counts = rows.groupby(["experiment", "task"]).size().unstack(fill_value=0)
    few = [a for a in counts.index if (counts.loc[a] < MIN_RUNS).all()]
    if len(few) == 1:
        notes.append(f"{few[0]}: fewer than {MIN_RUNS} complete runs on every task; left out of these panels")
    elif few:  # one note, not one per trial of a search
        notes.append(
            f"{len(few)} experiments have fewer than {MIN_RUNS} complete runs on every task; left out of "
            f"these panels: {', '.join(few)}"
        )
    counts = counts.drop(index=few)
    tasks = sorted(t for t in counts.columns if (counts[t] >= MIN_RUNS).all()) if len(counts) else []
    dropped = sorted(set(rows["task"]) - set(tasks))
    if dropped and tasks:
        notes.append(f"tasks without {MIN_RUNS}+ complete runs of every experiment, left out: {', '.join(dropped)}")
    references = normalisation_references(suite)
    normalised = bool(tasks) and all(t in references for t in tasks)
    scores = {}
    for experiment in counts.index if tasks else []:
        n = int(counts.loc[experiment, tasks].min())
        if counts.loc[experiment, tasks].max() > n:
            notes.append(f"{experiment}: unequal seed counts across tasks; the lowest {n} seeds per task are used")
        columns = []
        for task in tasks:
            cell = rows[(rows["experiment"] == experiment) & (rows["task"] == task)]
            values = cell.sort_values("seed")["final_return"]
            column = values.to_numpy(dtype=float)[:n]
            columns.append(column / references[task][0] if normalised else column)
        scores[experiment] = np.stack(columns, axis=1)
    used = {t: references[t] for t in tasks} if normalised else {}
    return ScoreSet(suite, tasks, scores, normalised, used, notes)


def aggregate_metrics(score_set: ScoreSet, reps: int = DEFAULT_REPS) -> tuple[list[str], dict, dict]:
    """IQM, mean, median (and optimality gap, on normalised scores) across tasks, with 95%
    stratified-bootstrap intervals. Returns (metric names, points {experiment: (m,)}, intervals
    {experiment: (2, m)})."""
    names = AGGREGATE_METRICS if score_set.normalised else AGGREGATE_METRICS[:3]

    def func(x: np.ndarray) -> np.ndarray:
        values = [interquartile_mean(x.ravel()), metrics.aggregate_mean(x), metrics.aggregate_median(x)]
        if score_set.normalised:
            values.append(metrics.aggregate_optimality_gap(x))
        return np.array(values)

    points, intervals = interval_estimates(score_set.scores, func, reps)
    return names, points, intervals


def per_task_intervals(finals: pd.DataFrame, reps: int = DEFAULT_REPS) -> pd.DataFrame:
    """Per (suite, task, experiment) with >= MIN_RUNS complete runs: IQM and mean of the final
    return over seeds, with 95% bootstrap intervals. Columns: suite, task, experiment, n, metric,
    point, low, high (returns)."""
    rows = finals[finals["complete"]]
    out = []
    for (suite, experiment), experiment_rows in rows.groupby(["suite", "experiment"], sort=True):
        by_task = {t: g.sort_values("seed")["final_return"].to_numpy(float) for t, g in experiment_rows.groupby("task")}
        for n in sorted({len(v) for v in by_task.values() if len(v) >= MIN_RUNS}):
            tasks = sorted(t for t, v in by_task.items() if len(v) == n)
            matrix = np.stack([by_task[t] for t in tasks], axis=1)  # (n, tasks)

            def func(x: np.ndarray) -> np.ndarray:
                return np.concatenate([interquartile_mean(x, axis=0), x.mean(axis=0)])

            points, intervals = interval_estimates({experiment: matrix}, func, reps)
            point, (low, high) = points[experiment], intervals[experiment]
            for i, task in enumerate(tasks):
                for k, metric in enumerate(("IQM", "Mean")):
                    j = k * len(tasks) + i
                    out.append(
                        {
                            "suite": suite,
                            "task": task,
                            "experiment": experiment,
                            "n": n,
                            "metric": metric,
                            "point": point[j],
                            "low": low[j],
                            "high": high[j],
                        }
                    )
    return pd.DataFrame(out, columns=["suite", "task", "experiment", "n", "metric", "point", "low", "high"])


def steps_to_return(first_steps: pd.DataFrame, threshold: float, reps: int = DEFAULT_REPS) -> list[dict]:
    """Sample efficiency as env steps to a return: per (suite, task, experiment) of complete
    runs, each seed's first evaluation at ``threshold`` or more (``reports.load.first_steps_to``), how many
    reached it within their budget, and, when every run did (and there are ``MIN_RUNS`` or
    more), the IQM and mean of those steps with 95% stratified-bootstrap intervals. A run that
    never reached it has no step to average (its budget would only be a lower bound), so an
    experiment with one such run gets no interval and says so.

    ``first_steps``: columns suite, task, experiment, seed, budget, step (None when not reached).
    """
    out = []
    for (suite, task, experiment), rows in first_steps.groupby(["suite", "task", "experiment"], sort=True):
        rows = rows.sort_values("seed")
        steps = [None if pd.isna(v) else int(v) for v in rows["step"]]
        reached = [v for v in steps if v is not None]
        record = {
            "suite": suite,
            "task": task,
            "experiment": experiment,
            "threshold": threshold,
            "n": len(steps),
            "reached": len(reached),
            "seeds": [int(v) for v in rows["seed"]],
            "steps": steps,
            "budgets": [int(v) for v in rows["budget"]],
            "iqm": None,
            "iqm_low": None,
            "iqm_high": None,
            "mean": None,
            "mean_low": None,
            "mean_high": None,
        }
        if len(reached) == len(steps) >= MIN_RUNS:
            matrix = np.array(reached, dtype=float)[:, None]
            points, intervals = interval_estimates(
                {experiment: matrix}, lambda x: np.array([interquartile_mean(x.ravel()), x.mean()]), reps
            )
            (iqm, mean), ((iqm_low, mean_low), (iqm_high, mean_high)) = points[experiment], intervals[experiment]
            record.update(
                iqm=float(iqm),
                iqm_low=float(iqm_low),
                iqm_high=float(iqm_high),
                mean=float(mean),
                mean_low=float(mean_low),
                mean_high=float(mean_high),
            )
        out.append(record)
    return out


def performance_profiles(score_set: ScoreSet, reps: int = PROFILE_REPS) -> tuple[np.ndarray, dict, dict]:
    """Score distributions (fraction of runs with score > tau) with 95% intervals.
    Returns (taus (101,), profiles {agent: (101,)}, intervals {agent: (2, 101)})."""
    everything = np.concatenate([s.ravel() for s in score_set.scores.values()])
    low, high = min(0.0, float(everything.min())), float(everything.max())
    if score_set.normalised:
        high = max(high, 1.0)
    taus = np.linspace(low, high + 1e-9 + 0.02 * (high - low), 101)
    with seeded_numpy():
        profiles, cis = rly.create_performance_profile(score_set.scores, taus, reps=reps)
    return taus, profiles, cis


def probability_of_improvement(score_set: ScoreSet, separator: str, reps: int = PROFILE_REPS) -> tuple[dict, dict]:
    """P(X > Y) for every pair of agents (X before Y by name), with 95% intervals. Keys are
    ``X<separator>Y``; with many agents only the pairs against the first agent are kept."""
    agents = sorted(score_set.scores)
    pairs = [(x, y) for i, x in enumerate(agents) for y in agents[i + 1 :]]
    if len(pairs) > 10:
        pairs = [(x, agents[0]) for x in agents[1:]]
    pair_scores = {f"{x}{separator}{y}": [score_set.scores[x], score_set.scores[y]] for x, y in pairs}
    return interval_estimates(pair_scores, metrics.probability_of_improvement, reps)


def interquartile_mean(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """25% trimmed mean along ``axis``, as ``scipy.stats.trim_mean(values, 0.25, axis)``
    (and so ``metrics.aggregate_iqm`` with ``axis=None`` on flattened scores), but a plain
    sort and slice: scipy's version costs ~0.5 ms a call, which 50,000 bootstrap
    replications turn into minutes."""
    ordered = np.sort(values, axis=axis)
    n = ordered.shape[axis]
    cut = int(0.25 * n)
    return np.take(ordered, np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def iqm_per_step(scores: np.ndarray) -> np.ndarray:
    """IQM over runs and tasks at each step: scores (runs, tasks, steps) -> (steps,).
    Equal to ``metrics.aggregate_iqm(scores[..., j])`` for every j, in one vectorised call."""
    return interquartile_mean(scores.reshape(-1, scores.shape[-1]), axis=0)


def sample_efficiency(
    curves: pd.DataFrame, score_set: ScoreSet, max_points: int = 25, reps: int = DEFAULT_REPS
) -> tuple[np.ndarray, dict, dict] | None:
    """IQM of (normalised) returns across runs and tasks along training, with 95% intervals.

    ``curves`` is ``reports.load.resample_curves`` output. The steps are those at which every
    run of every experiment of ``score_set`` has a value (at most ``max_points`` of them, evenly
    thinned). Returns (steps (k,), points {experiment: (k,)}, intervals {experiment: (2, k)}), or None
    when fewer than two such steps exist.
    """
    rows = curves[
        (curves["suite"] == score_set.suite)
        & curves["task"].isin(score_set.tasks)
        & curves["experiment"].isin(list(score_set.scores))
    ]
    runs_per_cell = {(a, t): len(score_set.scores[a]) for a in score_set.scores for t in score_set.tasks}
    tables = {}
    common: set[int] | None = None
    for (experiment, task), cell in rows.groupby(["experiment", "task"]):
        seeds = sorted(cell["seed"].unique())[: runs_per_cell[(experiment, task)]]
        table = cell[cell["seed"].isin(seeds)].pivot_table(index="step", columns="seed", values="value")
        table = table.dropna()
        tables[(experiment, task)] = table
        common = set(table.index) if common is None else common & set(table.index)
    if common is None or len(tables) < len(runs_per_cell) or len(common) < 2:
        return None
    steps = np.array(sorted(common))
    steps = steps[np.unique(np.linspace(0, len(steps) - 1, min(max_points, len(steps))).round().astype(int))]
    scores = {}
    for experiment in score_set.scores:
        per_task = []
        for task in score_set.tasks:
            values = tables[(experiment, task)].loc[steps].to_numpy().T  # (runs, steps)
            per_task.append(values / score_set.references[task][0] if score_set.normalised else values)
        scores[experiment] = np.stack(per_task, axis=1)  # (runs, tasks, steps)
    points, intervals = interval_estimates(scores, iqm_per_step, reps)
    return steps, points, intervals


def curve_band(curves: pd.DataFrame, reps: int = DEFAULT_REPS) -> pd.DataFrame:
    """Mean return over seeds along training for one (task, agent), with a 95% bootstrap band.

    ``curves``: resampled rows of one task and agent. Returns columns step, mean, n (runs
    with a value there), low, high. The band bootstraps the runs that cover every step (so
    one run cut short does not hide it), or else, on the steps every run covers, all of
    them; it needs ``MIN_RUNS`` runs (NaN elsewhere).
    """
    table = curves.pivot_table(index="step", columns="seed", values="value").sort_index()
    band = pd.DataFrame(
        {
            "step": table.index.to_numpy(),
            "mean": table.mean(axis=1).to_numpy(),
            "n": table.notna().sum(axis=1).to_numpy(),
            "low": np.nan,
            "high": np.nan,
        }
    )
    covering = table.columns[table.notna().all(axis=0)]
    full = table[covering] if len(covering) >= MIN_RUNS else table.dropna()
    if full.shape[1] >= MIN_RUNS and len(full):
        matrix = full.to_numpy().T[:, None, :]  # (runs, 1, steps)
        _, intervals = interval_estimates({"curve": matrix}, lambda x: x.mean(axis=(0, 1)), reps)
        where = band["step"].isin(full.index).to_numpy()
        band.loc[where, "low"], band.loc[where, "high"] = intervals["curve"][0], intervals["curve"][1]
    return band
