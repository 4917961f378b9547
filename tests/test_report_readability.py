"""The report over a folder holding a search, as a newcomer reads it (issue 18): the trials
in a panel of their own, no two experiments of a figure in one colour, legible legends, a
note said once with a count, and unfinished runs marked in figures and tables."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_rgb

from reports import figures
from reports.build import build_report
from reports.html import render
from tests.reports_fixture import SEARCH_NAME, SEARCH_TRIALS, write_search_beside_runs

REPS = 100
TITLE = "classic / inverted-pendulum"


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> tuple[dict, list[plt.Figure]]:
    """The report's content and every figure it drew (open, instead of its PNG)."""
    kept: list[plt.Figure] = []
    real = figures.to_data_uri
    figures.to_data_uri = lambda figure: kept.append(figure) or "data:image/png;base64,"
    try:
        content = build_report([write_search_beside_runs(tmp_path_factory.mktemp("runs"))], reps=REPS)
    finally:
        figures.to_data_uri = real
    yield content, kept
    for figure in kept:
        plt.close(figure)


def titled(kept: list[plt.Figure], title: str) -> plt.Figure:
    """The last figure drawn with that title."""
    return [f for f in kept if f.axes[0].get_title() == title][-1]


def legend_texts(ax: plt.Axes) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def drawn_lines(ax: plt.Axes) -> list:
    """The lines with data (legend proxies have none)."""
    return [line for line in ax.get_lines() if len(line.get_xdata())]


def test_search_trials_have_a_panel_of_their_own_grey_but_the_best(drawn):
    _, kept = drawn
    ours, trials = titled(kept, TITLE).axes
    assert legend_texts(ours) == ["sac (mean of 3)", "sac-svg (1 run; interrupted, 200 of 300 steps)"]
    best = SEARCH_TRIALS - 1  # trial k's final return is 10 + 7k
    assert legend_texts(trials) == [
        f"best of study {SEARCH_NAME}: trial {best}\nsac+init=0,final=-1,decay=1 (1 run)",
        f"{SEARCH_TRIALS - 3} other trials",
        "2 other trials, unfinished (pruned, failed or interrupted)",
    ]
    grey = [line for line in drawn_lines(trials) if to_rgb(line.get_color()) == to_rgb(figures.TRIAL_GREY)]
    assert len(grey) == SEARCH_TRIALS - 1 and len(drawn_lines(trials)) == SEARCH_TRIALS


def test_no_two_experiments_of_a_figure_share_a_colour_and_every_legend_is_legible(drawn):
    _, kept = drawn
    curves = titled(kept, TITLE)
    coloured = [
        line for ax in curves.axes for line in drawn_lines(ax) if to_rgb(line.get_color()) != to_rgb(figures.TRIAL_GREY)
    ]
    assert len(coloured) == 3  # sac, sac-svg and the best trial
    assert len({to_rgb(line.get_color()) for line in coloured}) == 3
    schedules = titled(kept, "target entropy schedules, eq. (14)").axes[0]  # Fig. 6, after the study's own
    assert legend_texts(schedules) == [
        "classic/inverted-pendulum sac, classic/inverted-pendulum sac-svg",
        f"{SEARCH_TRIALS} schedules of search trials (the table names them)",
    ]
    legends = [ax.get_legend() for figure in kept for ax in figure.axes if ax.get_legend() is not None]
    assert len(legends) >= 5
    assert min(text.get_fontsize() for legend in legends for text in legend.get_texts()) >= 9  # points: 12 px


def test_colours_stay_distinct_beyond_twenty_and_trials_leave_the_others_theirs():
    names = [f"experiment {i:02d}" for i in range(45)]
    colors = figures.agent_colors(names)
    assert len({to_rgb(c) for c in colors.values()}) == 45
    assert to_rgb(figures.TRIAL_GREY) not in {to_rgb(c) for c in colors.values()}
    alone = figures.agent_colors(["sac", "sac-svg"])
    beside_trials = figures.agent_colors(["sac", "sac-svg"] + names, later=names)
    assert {k: beside_trials[k] for k in alone} == alone  # sac keeps its blue beside 45 trials


def test_a_note_about_many_experiments_is_said_once_with_their_count(drawn):
    content, _ = drawn
    (section,) = content["aggregates"]
    notes = [note for note in section["notes"] if "fewer than 2 complete runs" in note]
    assert len(notes) == 1 and notes[0].startswith(f"{SEARCH_TRIALS - 2} experiments have fewer than 2")
    assert len(section["notes"]) == len(set(section["notes"])) <= 4


def test_an_interrupted_run_is_marked_in_its_curve_and_in_the_tables(drawn):
    content, kept = drawn
    (line,) = [line for line in titled(kept, TITLE).axes[0].get_lines() if line.get_label().startswith("sac-svg")]
    assert line.get_linestyle() == "--" and to_rgb(line.get_markerfacecolor()) == (1, 1, 1)  # dashed, hollow
    (sac,) = [line for line in titled(kept, TITLE).axes[0].get_lines() if line.get_label().startswith("sac ")]
    assert sac.get_linestyle() == "-"
    (table,) = [t for t in content["comparison"] if t.suite == "classic"]
    cell = next(row.cells[0] for row in table.rows if row.label == "sac-svg (H=2)")
    assert cell.incomplete and cell.detail == "n=1 · 200 steps · 1 interrupted"
    html = render(content)
    assert re.search(r'<td class="num unfinished">40\.00 ± – ‡', html)
    runs = html[html.index('<table class="runs">') :]
    assert runs.count('<tr class="unfinished">') == 2  # sac-svg seed 0 and the pruned trial's run
    assert runs.count('<tr class="failed">') == 1


def test_the_header_counts_agents_by_registry_name_and_experiments_by_label(drawn):
    content, _ = drawn
    # 3 sac seeds, a sac-svg seed and 22 sac trials (sac+init=...): 2 agents, 24 experiments
    assert content["counts"] == {"runs": 26, "done": 23, "tasks": 1, "agents": 2, "experiments": 24}
    assert "<p>26 runs (23 done) of 2 agents in 24 experiments on 1 task, read from" in render(content)
