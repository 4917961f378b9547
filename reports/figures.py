"""Figures of the report, drawn with matplotlib (Agg) and rliable's plot_utils, returned as
``data:image/png;base64,...`` URIs so the HTML file needs nothing beside itself.

Names from run directories go into figures as plain text: ``plain`` escapes matplotlib's
mathtext ``$`` and the legend's hidden ``_`` prefix.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rliable import plot_utils  # noqa: E402

from agents.objectives import target_entropy_schedule  # noqa: E402  (eq. 14, one definition)

DPI = 96


def plain(name: str) -> str:
    """A name shown verbatim by matplotlib (no mathtext, not hidden from legends)."""
    text = str(name).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def agent_colors(agents: list[str]) -> dict[str, tuple]:
    """One stable colour per agent name, the same in every figure."""
    palette = plt.get_cmap("tab10").colors
    return {agent: palette[i % len(palette)] for i, agent in enumerate(sorted(agents))}


def to_data_uri(figure: plt.Figure) -> str:
    """PNG of ``figure`` as a data URI; the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _steps_axis(ax: plt.Axes) -> None:
    ax.set_xlabel("env steps")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    ax.grid(alpha=0.3)


def learning_curves(title: str, bands: dict[str, pd.DataFrame], colors: dict[str, tuple],
                    published: pd.DataFrame | None = None, reference: pd.DataFrame | None = None) -> str:
    """Mean evaluation return per agent with its 95% band, published finals as lines.

    ``bands``: agent -> ``reports.aggregate.curve_band`` frame (step, mean, low, high).
    ``published``: rows with label, mean (returns) drawn as dashed horizontal lines.
    ``reference``: a published curve (step, return, label) drawn beside ours, cut to the
    steps our runs reached.
    """
    figure, ax = plt.subplots(figsize=(7.5, 4.2))
    last_step = 0
    for agent, band in bands.items():
        ax.plot(band["step"], band["mean"], color=colors[agent], marker="o", markersize=3,
                label=f"{plain(agent)} (mean of {int(band['n'].max())})")
        ax.fill_between(band["step"], band["low"], band["high"], color=colors[agent], alpha=0.2, linewidth=0)
        last_step = max(last_step, int(band["step"].max()))
    if reference is not None and len(reference):
        shown = reference[reference["step"] <= max(last_step, int(reference["step"].iloc[min(1, len(reference) - 1)]))]
        cut = " (cut to our steps)" if len(shown) < len(reference) else ""
        ax.plot(shown["step"], shown["return"], color="black", linewidth=1.2, alpha=0.7,
                label=plain(reference["label"].iloc[0]) + cut)
    if published is not None:
        styles = ["--", ":", "-."]
        for i, row in enumerate(published.itertuples(index=False)):
            ax.axhline(row.mean, color="grey", linestyle=styles[i % 3], linewidth=1,
                       label=plain(f"{row.label} (published, {int(row.steps):,} steps)"))
    ax.set_title(plain(title))
    ax.set_ylabel("evaluation return")
    _steps_axis(ax)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return to_data_uri(figure)


def aggregate_intervals(names: list[str], points: dict, intervals: dict, colors: dict, xlabel: str) -> str:
    """rliable's interval-estimate panel: one subplot per metric, one bar per agent."""
    algorithms = sorted(points)
    renamed = {plain(a): a for a in algorithms}
    row_height = max(0.45, 1.6 / len(algorithms))
    figure, axes = plot_utils.plot_interval_estimates(
        {plain(a): points[a] for a in algorithms}, {plain(a): intervals[a] for a in algorithms}, metric_names=names,
        algorithms=list(renamed), colors={k: colors[v] for k, v in renamed.items()}, xlabel=xlabel,
        subfigure_width=3.2, row_height=row_height, xlabel_y_coordinate=-0.42 / (row_height * len(algorithms)),
        wspace=0.2)
    for ax in np.atleast_1d(axes):
        ax.tick_params(labelsize="small")
        ax.title.set_fontsize("medium")
    figure.texts[-1].set_fontsize("medium")
    return to_data_uri(figure)


def performance_profiles(taus: np.ndarray, profiles: dict, intervals: dict, colors: dict, xlabel: str) -> str:
    """rliable's performance profiles (score distributions) with 95% bands."""
    figure, ax = plt.subplots(figsize=(7, 4))
    plot_utils.plot_performance_profiles(
        {plain(a): p for a, p in profiles.items()}, taus,
        performance_profile_cis={plain(a): c for a, c in intervals.items()},
        colors={plain(a): colors[a] for a in profiles}, xlabel=xlabel,
        ylabel=r"fraction of runs with score > $\tau$", ax=ax, labelsize="medium", ticklabelsize="small")
    ax.legend(handles=ax.get_lines(), fontsize=8, loc="best")
    return to_data_uri(figure)


def probability_of_improvement(points: dict, intervals: dict, separator: str) -> str:
    """rliable's probability-of-improvement panel, P(X > Y) with 95% intervals."""
    figure, ax = plt.subplots(figsize=(5, 0.6 + 0.45 * len(points)))
    keys = {separator.join(plain(a) for a in key.split(separator)): key for key in points}
    plot_utils.plot_probability_of_improvement(
        {k: points[v] for k, v in keys.items()}, {k: intervals[v] for k, v in keys.items()},
        pair_separator=separator, ax=ax, labelsize="medium", ticklabelsize="small")
    return to_data_uri(figure)


def sample_efficiency(steps: np.ndarray, points: dict, intervals: dict, colors: dict, ylabel: str) -> str:
    """rliable's sample-efficiency curve: IQM along training with 95% bands."""
    figure, ax = plt.subplots(figsize=(7, 4))
    plot_utils.plot_sample_efficiency_curve(
        steps, {plain(a): p for a, p in points.items()}, {plain(a): c for a, c in intervals.items()},
        colors={plain(a): colors[a] for a in points}, xlabel="env steps", ylabel=ylabel, ax=ax,
        labelsize="medium", ticklabelsize="small")
    ax.legend(handles=ax.get_lines(), fontsize=8, loc="best")
    return to_data_uri(figure)


def model_errors(title: str, curves: pd.DataFrame, colors: dict) -> str:
    """Model error along training (paper Fig. 7): mean over seeds per agent and metric.

    ``curves``: tidy rows (agent, seed, step, metric in model_error_holdout /
    model_error_replay, value: squared error in normalised state space).
    """
    figure, ax = plt.subplots(figsize=(7.5, 4))
    styles = {"model_error_holdout": "-", "model_error_replay": "--"}
    for (agent, metric), rows in curves.groupby(["agent", "metric"], sort=True):
        mean = rows.groupby("step")["value"].mean()
        ax.plot(mean.index, mean.to_numpy(), color=colors[agent], linestyle=styles.get(metric, ":"),
                label=plain(f"{agent}: {metric.removeprefix('model_error_')}"))
    if (curves["value"] > 0).all():
        ax.set_yscale("log")
    ax.set_title(plain(title))
    ax.set_ylabel("model error")
    _steps_axis(ax)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return to_data_uri(figure)


def entropy_schedules(schedules: list[dict]) -> str:
    """Target entropy along training (paper Fig. 6, eq. 14), one line per distinct schedule.

    ``schedules``: dicts with label, init, final, decay (None: constant), total_steps.
    """
    figure, ax = plt.subplots(figsize=(7.5, 4))
    for entry in schedules:
        steps = np.linspace(0, entry["total_steps"], 200)
        target = [target_entropy_schedule(int(t), entry["total_steps"], entry["init"], entry["final"],
                                          entry["decay"]) for t in steps]
        ax.plot(steps, target, label=plain(entry["label"]))
    ax.set_title("target entropy schedules, eq. (14)")
    ax.set_ylabel("target entropy")
    _steps_axis(ax)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return to_data_uri(figure)
