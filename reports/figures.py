"""Figures of the report, drawn with matplotlib (Agg) and rliable's plot_utils, returned as
``data:image/png;base64,...`` URIs so the HTML file needs nothing beside itself.

Names from run directories go into figures as plain text: ``plain`` escapes matplotlib's
mathtext ``$`` and the legend's hidden ``_`` prefix.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, cast

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.ticker import MaxNLocator

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after the back-end is chosen
from rliable import plot_utils  # imports pyplot

DPI = 96
LEGEND_FONTSIZE = 9  # points: 12 px at the report's DPI, legible at the size the page shows a figure


def plain(name: str) -> str:
    """A name shown verbatim by matplotlib (no mathtext, not hidden from legends)."""
    text = str(name).replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def palette(name: str) -> tuple:
    """The colours of matplotlib's qualitative colormap ``name`` (a ListedColormap)."""
    colors: Any = cast(ListedColormap, plt.get_cmap(name)).colors  # a sequence of RGB tuples
    return tuple(colors)


def distinct_colors(count: int) -> list[tuple]:
    """``count`` colours, no two alike: tab10's; beyond ten, tab20's strong then light ones
    (its strong ones are tab10's), then tab20b's and tab20c's, then evenly spaced hues."""
    if count <= 10:
        return list(palette("tab10"))
    tab20 = palette("tab20")
    colors = list(dict.fromkeys(tab20[0::2] + tab20[1::2] + palette("tab20b") + palette("tab20c")))
    extra = count - len(colors)
    return colors + [tuple(plt.get_cmap("hsv")(i / extra)[:3]) for i in range(max(extra, 0))]


def agent_colors(agents: list[str], later: Collection[str] = ()) -> dict[str, tuple]:
    """One stable colour per agent (experiment) name, the same in every figure, and no two
    names alike however many. Names in ``later`` (a search's trials) come after the others,
    which keep the strong colours they have in a report without them."""
    first = sorted(a for a in set(agents) if a not in later)
    ordered = first + sorted(a for a in set(agents) if a in later)
    return dict(zip(ordered, distinct_colors(len(ordered))))


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def to_data_uri(figure: plt.Figure) -> str:
    """PNG of ``figure`` as a data URI; the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return _png_data_uri(buffer.getvalue())


def image_data_uri(pixels: np.ndarray) -> str:
    """An RGB image ``pixels`` (height, width, 3), uint8, as a PNG data URI of exactly that
    many pixels (a video's poster frame)."""
    buffer = io.BytesIO()
    plt.imsave(buffer, np.asarray(pixels, dtype=np.uint8), format="png")
    return _png_data_uri(buffer.getvalue())


def _steps_axis(ax: plt.Axes) -> None:
    ax.set_xlabel("env steps")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
    ax.grid(alpha=0.3)


REFERENCE_STYLES = ("-", "-.", ":", (0, (5, 1)))  # published curves, in black (finals: grey horizontal lines)
REFERENCE_STRETCH = 2.0  # a panel reaches at most this many times our runs' last step to show a published curve


def reference_styles(labels: list[str]) -> dict[str, str | tuple]:
    """One stable line style per published curve label, the same in every panel (``labels``
    in a fixed order, e.g. the index's): black lines without markers, set apart from our
    coloured, marked curves and from the grey dashed published finals."""
    return {label: REFERENCE_STYLES[i % len(REFERENCE_STYLES)] for i, label in enumerate(labels)}


def _reference_end(last_step: int, references: pd.DataFrame) -> int:
    """The step a panel draws published curves to: our runs' last step, so that our curve keeps
    the width; or, when our runs stop before every published curve's second point but not long
    before (``REFERENCE_STRETCH``), the earliest such point, so that a published curve shows
    as a line."""
    second_points = [
        int(rows["step"].iloc[min(1, len(rows) - 1)]) for _, rows in references.sort_values("step").groupby("label")
    ]
    reach = min(second_points)
    return reach if last_step < reach <= REFERENCE_STRETCH * last_step else last_step


def _draw_reference(ax: plt.Axes, curve: pd.DataFrame, end: int, style: str | tuple) -> None:
    """One published curve (rows step, return, std, label) up to step ``end``, with a light
    ±1 std band where the source gives one; its legend entry says where it goes on beyond."""
    curve = curve.sort_values("step")
    shown = curve[curve["step"] <= end]
    has_std = bool(curve["std"].notna().any())
    first, last = int(curve["step"].iloc[0]), int(curve["step"].iloc[-1])
    label = curve["label"].iloc[0] + (", mean ± std" if has_std else "")
    if shown.empty:
        label += f"; from {first:,} to {last:,} steps, beyond this panel"
    elif len(shown) < len(curve):
        label += f"; continues to {last:,} steps"
    ax.plot(
        shown["step"],
        shown["return"],
        color="black",
        linestyle=style,
        linewidth=1.2,
        alpha=0.8,
        zorder=1.5,
        label=plain(label),
    )
    if has_std:
        ax.fill_between(
            shown["step"],
            shown["return"] - shown["std"],
            shown["return"] + shown["std"],
            color="black",
            alpha=0.08,
            linewidth=0,
            zorder=1,
        )


TRIAL_GREY = "#a0a0a0"  # a search's trials other than its best: one grey, which no experiment's colour is


@dataclass(frozen=True)
class CurveMark:
    """How an experiment's learning curve is drawn beyond its colour.

    ``unfinished``: what its legend says of runs not done ("1 interrupted"; "" when every run
    is done); ``finished``: False when none of its runs is done (dashed, hollow markers).
    ``trial``: a search trial's runs, drawn in the trials panel; ``best``: for a study's best
    trial, its legend entry there (drawn in its colour; the other trials grey)."""

    unfinished: str = ""
    finished: bool = True
    trial: bool = False
    best: str = ""


def _curve_label(name: str, band: pd.DataFrame, mark: CurveMark) -> str:
    runs = int(band["n"].max())
    count = "1 run" if runs == 1 else f"mean of {runs}"
    return plain(f"{name} ({count}{'; ' + mark.unfinished if mark.unfinished else ''})")


def _draw_experiment(
    ax: plt.Axes, name: str, band: pd.DataFrame, color: tuple | str, mark: CurveMark, label: str
) -> None:
    """One experiment's mean curve and 95% band; unfinished (no run done): dashed, hollow markers."""
    style: dict[str, Any] = {} if mark.finished else {"linestyle": (0, (4, 2)), "markerfacecolor": "white"}
    ax.plot(
        band["step"], band["mean"], color=color, marker="o", markersize=3 if mark.finished else 4, label=label, **style
    )
    ax.fill_between(band["step"], band["low"], band["high"], color=color, alpha=0.2, linewidth=0)


def _draw_trials(
    ax: plt.Axes, bands: dict[str, pd.DataFrame], colors: dict[str, tuple], marks: dict[str, CurveMark]
) -> None:
    """A search's trials: each study's best in its colour, the others thin and grey (dashed when
    unfinished), counted once in the legend."""
    others = {"finished": 0, "unfinished": 0}
    for name, band in bands.items():
        mark = marks[name]
        if mark.best:
            label = plain(mark.best) + "\n" + _curve_label(name, band, mark)
            _draw_experiment(ax, name, band, colors[name], mark, label)
            continue
        kind = "finished" if mark.finished else "unfinished"
        others[kind] += 1
        ax.plot(
            band["step"],
            band["mean"],
            color=TRIAL_GREY,
            linewidth=0.9,
            alpha=0.8,
            zorder=1,
            linestyle="-" if mark.finished else (0, (4, 2)),
            label=f"_{kind} trial",
        )
    for kind, count in others.items():
        if count:
            ax.plot(
                [],
                [],
                color=TRIAL_GREY,
                linestyle="-" if kind == "finished" else (0, (4, 2)),
                label=f"{count} other {'trial' if count == 1 else 'trials'}"
                + ("" if kind == "finished" else ", unfinished (pruned, failed or interrupted)"),
            )


def learning_curves(
    title: str,
    bands: dict[str, pd.DataFrame],
    colors: dict[str, tuple],
    published: pd.DataFrame | None = None,
    references: pd.DataFrame | None = None,
    styles: dict[str, str | tuple] | None = None,
    marks: dict[str, CurveMark] | None = None,
) -> str:
    """Mean evaluation return per experiment with its 95% band, published finals as horizontal
    lines and published learning curves beside them; a search's trials in a panel of their own.

    ``bands``: experiment label -> ``reports.aggregate.curve_band`` frame (step, mean, low, high).
    ``published``: rows with label, mean (returns) drawn as dashed horizontal lines.
    ``references``: published curves (rows step, return, std, label; ``load_reference_curves``)
    drawn beside ours in black, line style ``styles[label]`` (``reference_styles``), cut to
    ``_reference_end``: the legend says how far each goes on.
    ``marks``: per experiment, its unfinished runs and whether it is a search trial
    (``CurveMark``); an experiment without one is finished and not a trial.
    """
    marks = {name: (marks or {}).get(name, CurveMark()) for name in bands}
    ours = {name: band for name, band in bands.items() if not marks[name].trial}
    trials = {name: band for name, band in bands.items() if marks[name].trial}
    panels = int(bool(ours)) + int(bool(trials)) or 1
    figure, axes = plt.subplots(panels, 1, figsize=(7.5, 4.2 * panels), sharex=True, squeeze=False)
    ax, trial_ax = axes[0, 0], axes[-1, 0]
    for name, band in ours.items():
        _draw_experiment(ax, name, band, colors[name], marks[name], _curve_label(name, band, marks[name]))
    if trials:
        _draw_trials(trial_ax, trials, colors, marks)
        if ours:
            trial_ax.set_title(f"search trials ({len(trials)}): each study's best in colour, the others grey")
    last_step = max((int(band["step"].max()) for band in bands.values()), default=0)
    if references is not None and len(references):
        end = _reference_end(last_step, references)
        for label, curve in references.groupby("label", sort=False):
            _draw_reference(ax, curve, end, (styles or {}).get(label, "-"))
    if published is not None:
        final_styles = ["--", ":", "-."]
        for i, row in enumerate(published.itertuples(index=False)):
            ax.axhline(
                row.mean,
                color="grey",
                linestyle=final_styles[i % 3],
                linewidth=1,
                label=plain(f"{row.label} (published, {int(row.steps):,} steps)"),
            )
    ax.set_title(plain(title))
    for panel in axes[:, 0]:
        panel.set_ylabel("evaluation return")
        _steps_axis(panel)
        panel.legend(fontsize=LEGEND_FONTSIZE, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    for panel in axes[:-1, 0]:
        panel.set_xlabel("")
    return to_data_uri(figure)


def aggregate_intervals(names: list[str], points: dict, intervals: dict, colors: dict, xlabel: str) -> str:
    """rliable's interval-estimate panel: one subplot per metric, one bar per agent."""
    algorithms = sorted(points)
    renamed = {plain(a): a for a in algorithms}
    row_height = max(0.45, 1.6 / len(algorithms))
    figure, axes = plot_utils.plot_interval_estimates(
        {plain(a): points[a] for a in algorithms},
        {plain(a): intervals[a] for a in algorithms},
        metric_names=names,
        algorithms=list(renamed),
        colors={k: colors[v] for k, v in renamed.items()},
        xlabel=xlabel,
        subfigure_width=3.2,
        row_height=row_height,
        xlabel_y_coordinate=-0.42 / (row_height * len(algorithms)),
        wspace=0.2,
    )
    for ax in np.atleast_1d(axes):
        ax.tick_params(labelsize="small")
        ax.title.set_fontsize("medium")
    figure.texts[-1].set_fontsize("medium")
    return to_data_uri(figure)


def performance_profiles(taus: np.ndarray, profiles: dict, intervals: dict, colors: dict, xlabel: str) -> str:
    """rliable's performance profiles (score distributions) with 95% bands."""
    figure, ax = plt.subplots(figsize=(7, 4))
    plot_utils.plot_performance_profiles(
        {plain(a): p for a, p in profiles.items()},
        taus,
        performance_profile_cis={plain(a): c for a, c in intervals.items()},
        colors={plain(a): colors[a] for a in profiles},
        xlabel=xlabel,
        ylabel=r"fraction of runs with score > $\tau$",
        ax=ax,
        labelsize="medium",
        ticklabelsize="small",
    )
    ax.legend(handles=ax.get_lines(), fontsize=LEGEND_FONTSIZE, loc="best")
    return to_data_uri(figure)


def probability_of_improvement(points: dict, intervals: dict, separator: str) -> str:
    """rliable's probability-of-improvement panel, P(X > Y) with 95% intervals."""
    figure, ax = plt.subplots(figsize=(5, 0.6 + 0.45 * len(points)))
    keys = {separator.join(plain(a) for a in key.split(separator)): key for key in points}
    plot_utils.plot_probability_of_improvement(
        {k: points[v] for k, v in keys.items()},
        {k: intervals[v] for k, v in keys.items()},
        pair_separator=separator,
        ax=ax,
        labelsize="medium",
        ticklabelsize="small",
    )
    return to_data_uri(figure)


def sample_efficiency(steps: np.ndarray, points: dict, intervals: dict, colors: dict, ylabel: str) -> str:
    """rliable's sample-efficiency curve: IQM along training with 95% bands."""
    figure, ax = plt.subplots(figsize=(7, 4))
    plot_utils.plot_sample_efficiency_curve(
        steps,
        {plain(a): p for a, p in points.items()},
        {plain(a): c for a, c in intervals.items()},
        colors={plain(a): colors[a] for a in points},
        xlabel="env steps",
        ylabel=ylabel,
        ax=ax,
        labelsize="medium",
        ticklabelsize="small",
    )
    ax.legend(handles=ax.get_lines(), fontsize=LEGEND_FONTSIZE, loc="best")
    return to_data_uri(figure)


def model_errors(title: str, curves: pd.DataFrame, colors: dict) -> str:
    """Model error along training (paper Fig. 7): mean over seeds per agent and metric.

    ``curves``: tidy rows (experiment, seed, step, metric in model_error_holdout /
    model_error_replay, value: squared error in normalised state space); ``colors`` is keyed
    by experiment.
    """
    figure, ax = plt.subplots(figsize=(7.5, 4))
    styles = {"model_error_holdout": "-", "model_error_replay": "--"}
    for (experiment, metric), rows in curves.groupby(["experiment", "metric"], sort=True):
        mean = rows.groupby("step")["value"].mean()
        ax.plot(
            mean.index,
            mean.to_numpy(),
            color=colors[experiment],
            linestyle=styles.get(metric, ":"),
            label=plain(f"{experiment}: {metric.removeprefix('model_error_')}"),
        )
    if (curves["value"] > 0).all():
        ax.set_yscale("log")
    ax.set_title(plain(title))
    ax.set_ylabel("model error")
    _steps_axis(ax)
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return to_data_uri(figure)


def entropy_schedules(schedules: list[dict]) -> str:
    """Target entropy along training (paper Fig. 6, eq. 14), one line per distinct schedule.

    ``schedules``: dicts with label, steps and values (the target as a run logged it in
    train.csv, or as a study folder records it): the report draws data, it does not
    recompute eq. (14). Those with ``trial`` true (used by a search's trials alone) are drawn
    grey and counted in one legend entry; the others each get a colour of their own.
    """
    figure, ax = plt.subplots(figsize=(7.5, 4))
    shown = [entry for entry in schedules if not entry.get("trial")]
    for entry, color in zip(shown, distinct_colors(len(shown))):
        ax.plot(entry["steps"], entry["values"], color=color, label=plain(entry["label"]))
    trials = [entry for entry in schedules if entry.get("trial")]
    for i, entry in enumerate(trials):
        ax.plot(
            entry["steps"],
            entry["values"],
            color=TRIAL_GREY,
            linewidth=0.9,
            alpha=0.8,
            zorder=1,
            label="_trial"
            if i
            else f"{len(trials)} schedule{'s' if len(trials) > 1 else ''} of search trials (the table names them)",
        )
    ax.set_title("target entropy schedules, eq. (14)")
    ax.set_ylabel("target entropy")
    _steps_axis(ax)
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return to_data_uri(figure)


STATE_COLORS = {"COMPLETE": "tab:blue", "PRUNED": "tab:orange", "FAIL": "tab:red"}  # Optuna's trial states


def _by_state(ax: plt.Axes, trials: pd.DataFrame, x: str, counts: bool = True) -> None:
    """Scatter objective against column ``x``, coloured by state (legend with ``counts`` of
    trials); trials without an objective are crosses along the bottom edge."""
    for state, rows in trials.groupby("state", sort=True):
        color = STATE_COLORS.get(state, "tab:gray")
        scored, unscored = rows[rows["objective"].notna()], rows[rows["objective"].isna()]
        if len(scored):
            ax.scatter(
                scored[x],
                scored["objective"],
                color=color,
                s=28,
                zorder=3,
                label=plain(state + (f" ({len(scored)})" if counts else "")),
            )
        if len(unscored):
            ax.scatter(
                unscored[x],
                np.full(len(unscored), 0.03),
                transform=ax.get_xaxis_transform(),
                marker="x",
                color=color,
                s=36,
                zorder=3,
                label=plain(f"{state}, no objective" + (f" ({len(unscored)})" if counts else "")),
            )


def search_history(trials: pd.DataFrame, maximise: bool = True) -> str:
    """Objective per trial number, coloured by state, with the best objective so far.

    ``trials``: columns number, state, objective (NaN where the trial has none)."""
    figure, ax = plt.subplots(figsize=(7.5, 3.8))
    _by_state(ax, trials, "number")
    complete = trials[(trials["state"] == "COMPLETE") & trials["objective"].notna()].sort_values("number")
    if len(complete):
        best = complete["objective"].cummax() if maximise else complete["objective"].cummin()
        ax.step(complete["number"], best, where="post", color="black", linewidth=1, label="best so far")
    ax.set_xlabel("trial number")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("objective")
    ax.set_title("objective per trial")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return to_data_uri(figure)


def search_parameters(
    trials: pd.DataFrame, parameters: tuple[str, ...], best_number: int | None, log2: tuple[str, ...] = ("beta",)
) -> str:
    """Objective against each searched parameter, coloured by state; the best trial circled.

    ``trials``: columns number, state, objective and each of ``parameters``; those in
    ``log2`` are drawn on a log2 axis (their non-positive or missing values left out)."""
    figure, axes = plt.subplots(1, len(parameters), figsize=(3.6 * len(parameters), 3.4), sharey=True)
    for ax, parameter in zip(np.atleast_1d(axes), parameters):
        shown = trials[trials[parameter].notna() & ((trials[parameter] > 0) if parameter in log2 else True)]
        _by_state(ax, shown, parameter, counts=False)
        best = shown[shown["number"] == best_number]
        if len(best):
            ax.scatter(
                best[parameter],
                best["objective"],
                s=160,
                facecolors="none",
                edgecolors="black",
                linewidths=1.5,
                zorder=4,
                label=f"best (trial {best_number})",
            )
        if parameter in log2 and len(shown):
            ax.set_xscale("log", base=2)
        left_out = len(trials) - len(shown)
        ax.set_xlabel(
            plain(parameter + (" (log2 axis)" if parameter in log2 else ""))
            + (f"; {left_out} without a value" if left_out else "")
        )
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("objective")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    for ax in np.atleast_1d(axes)[1:]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    np.atleast_1d(axes)[-1].legend(
        handles, labels, fontsize=LEGEND_FONTSIZE, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False
    )
    return to_data_uri(figure)
