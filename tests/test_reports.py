"""reports/: loading run directories, rliable aggregation and the HTML report, on a
hand-written fixture whose numbers are known (tests/reports_fixture.py)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from rliable import metrics

from baselines.published import load_published, load_reference_curves
from reports import aggregate, figures, tables
from reports.aggregate import steps_to_return
from reports.build import build_report, comparison_budgets
from reports.html import render, write_report
from reports.load import final_scores, first_steps_to, load_runs, resample_curves, scores_at_step, tidy_evals
from reports.runs import Run
from tests.reports_fixture import SCRIPT_NAME, write_fixture, write_run

REPS = 200  # bootstrap replications in tests (the report's default is rliable's 50,000)


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    return write_fixture(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def report(fixture_root, tmp_path_factory) -> tuple[dict, str]:
    output = tmp_path_factory.mktemp("report") / "report.html"
    content = write_report([fixture_root], output, reps=REPS)
    return content, output.read_text()


def table_cells(content: dict, suite: str) -> dict[str, dict[str, object]]:
    table = next(t for t in content["comparison"] if t.suite == suite)
    return {row.label: dict(zip(table.tasks, row.cells)) for row in table.rows}


# ---------------------------------------------------------------- loading


def test_every_run_is_found_and_described_whatever_its_state(fixture_root):
    runs = load_runs([fixture_root])
    assert len(runs) == 16
    by_key = {(r.task, r.agent, r.seed): r for r in runs}
    assert by_key[("inverted-pendulum", "sac-svg", 3)].status == "interrupted"  # running, lock not held
    failed = by_key[("inverted-pendulum", "mve", 0)]
    assert failed.status == "failed" and any("loss diverged" in p for p in failed.problems)
    assert by_key[("inverted-pendulum", SCRIPT_NAME, 0)].final_return == 7.0  # name spans two folders
    svg = by_key[("inverted-pendulum", "sac-svg", 0)]
    assert (svg.horizon, svg.total_steps, svg.target_entropy()) == (2, 300, (1.0, -4.0, 0.5))
    # a run folder given directly is found too, and a folder without runs gives none
    assert [r.seed for r in load_runs([svg.path])] == [0]
    assert load_runs([fixture_root / "poplin" / "nothing"]) == []


def test_tidy_frame_and_final_scores(fixture_root):
    runs = load_runs([fixture_root])
    evals = tidy_evals(runs)
    assert list(evals.columns) == ["suite", "task", "agent", "experiment", "seed", "step", "metric", "value"]
    assert set(evals["metric"]) == {"return_mean", "return_std", "model_error_holdout", "model_error_replay"}
    finals = final_scores(runs)
    sac = finals[(finals["task"] == "inverted-pendulum") & (finals["agent"] == "sac")]
    assert sac["final_return"].tolist() == [10.0, 20.0, 30.0] and sac["step"].tolist() == [300] * 3


def test_curves_are_resampled_onto_the_tasks_common_grid_without_extrapolation(tmp_path):
    write_run(tmp_path, "classic", "inverted-pendulum", "sac", 0, [10, 20, 30])  # steps 100, 200, 300
    run = write_run(tmp_path, "classic", "inverted-pendulum", "sac", 1, [0, 0])
    (run / "eval.csv").write_text("step,return_mean,return_std,episodes,wall_time\n150,0,0,5,1\n250,100,0,5,2\n")
    curves = resample_curves(tidy_evals(load_runs([tmp_path])))
    seed0 = curves[curves["seed"] == 0].set_index("step")["value"]
    seed1 = curves[curves["seed"] == 1].set_index("step")["value"]
    assert seed0.index.tolist() == [100, 150, 200, 250, 300]
    assert seed0.tolist() == [10, 15, 20, 25, 30]
    assert seed1.to_dict() == {150: 0.0, 200: 50.0, 250: 100.0}


# ---------------------------------------------------------------- aggregation


def test_curve_band_survives_a_run_cut_short():
    rows = [
        {"seed": seed, "step": step, "value": float(seed + step)}
        for seed in range(3)
        for step in (100, 200, 300)
        if not (seed == 2 and step > 100)
    ]
    band = aggregate.curve_band(pd.DataFrame(rows), reps=100)
    assert band["n"].tolist() == [3, 2, 2]
    assert band["mean"].tolist() == [101.0, 200.5, 300.5]
    assert band[["low", "high"]].notna().all().all()  # the two full runs carry the band
    assert (band["low"] <= band["mean"]).all() and (band["mean"] <= band["high"]).all()


def test_bootstrap_is_reproducible_and_leaves_numpys_global_state_alone():
    scores = {"a": np.arange(12, dtype=float).reshape(4, 3)}
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = aggregate.interval_estimates(scores, metrics.aggregate_iqm, reps=300)
    second = aggregate.interval_estimates(scores, metrics.aggregate_iqm, reps=300)
    np.testing.assert_array_equal(first[1]["a"], second[1]["a"])
    np.testing.assert_array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("runs", [1, 2, 3, 5, 8])
def test_fast_iqm_is_rliables_iqm(runs):
    scores = np.random.default_rng(runs).normal(size=(runs, 3, 4))
    expected = [metrics.aggregate_iqm(scores[..., j]) for j in range(4)]
    np.testing.assert_allclose(aggregate.iqm_per_step(scores), expected)
    np.testing.assert_allclose(
        aggregate.interquartile_mean(scores[..., 0].ravel()), metrics.aggregate_iqm(scores[..., 0])
    )
    np.testing.assert_allclose(
        aggregate.interquartile_mean(scores[..., 0], axis=0),
        [metrics.aggregate_iqm(scores[:, [t], 0]) for t in range(3)],
    )


def test_scores_are_normalised_by_the_published_reference_where_there_is_one(fixture_root):
    finals = final_scores(load_runs([fixture_root]))
    poplin = aggregate.build_score_set(finals, "poplin")
    assert poplin.normalised and poplin.tasks == ["hopper"]
    assert poplin.references["hopper"][0] == 2851.90  # best published SAC-SVG(H) on hopper: H=2
    np.testing.assert_allclose(poplin.scores["sac-svg"][:, 0], [3000 / 2851.90, 3100 / 2851.90])
    classic = aggregate.build_score_set(finals, "classic")
    assert not classic.normalised and classic.tasks == ["inverted-double-pendulum", "inverted-pendulum"]
    assert sorted(classic.scores) == ["sac", "sac-svg"]  # one-seed agents are left out, with a note
    np.testing.assert_array_equal(classic.scores["sac"], [[100, 10], [300, 20]])  # lowest two seeds
    assert any("mve" in note for note in classic.notes)


# ---------------------------------------------------------------- the report


def test_table_numbers_match_a_hand_computation(report):
    content, html = report
    classic = table_cells(content, "classic")
    assert classic["sac (H=0)"]["inverted-pendulum"].text == "20.00 ± 10.00"
    assert classic["sac (H=0)"]["inverted-double-pendulum"].text == "200.00 ± 141.42"
    svg = classic["sac-svg (H=2)"]["inverted-pendulum"]
    assert svg.text == f"60.00 ± {math.sqrt(700):.2f}" and svg.best
    assert "n=3 · 300 steps · 1 unfinished not counted" == svg.detail
    failed = classic["mve (H=2)"]["inverted-pendulum"]
    assert failed.text == "1.00 ± –" and failed.incomplete and failed.detail == "n=1 · 100 steps · 1 failed"
    assert not classic["sac (H=0)"]["inverted-pendulum"].best
    poplin = table_cells(content, "poplin")
    ours = poplin["sac-svg (H=2)"]["hopper"]
    assert ours.text == "3050.00 ± 70.71" and ours.best
    published = poplin["SAC-SVG(2), final eval"]["hopper"]
    assert published.text == "2851.90 ± 361.07" and not published.best and "200,000 steps" in published.detail
    assert "POPLIN-P, final eval" in poplin and "POPLIN-A, final eval" in poplin
    for text in ("20.00 ± 10.00", "3050.00 ± 70.71", "2851.90 ± 361.07", "Amos et al. 2021, Table 2"):
        assert text in html


def test_report_sections_panels_and_warnings(report):
    content, html = report
    intervals = {(r["task"], r["agent"]): r for r in content["per_task_intervals"]}
    assert intervals[("inverted-pendulum", "sac")]["Mean"].startswith("20.00 [")
    assert intervals[("inverted-pendulum", "sac")]["IQM"].startswith("20.00 [")
    classic, poplin = content["aggregates"]
    assert len(classic["figures"]) == 4  # intervals, profiles, probability of improvement, sample efficiency
    assert any("one agent only" in note for note in poplin["notes"])
    assert poplin["references"][0][:2] == ("hopper", "2851.90")
    assert len(content["ablation"]) == 1 and len(content["model_error"]) == 1
    assert content["entropy_rows"] and content["entropy_uri"].startswith("data:image/png;base64,")
    assert any("failed: loss diverged" in w for w in content["warnings"])
    assert any("interrupted" in w for w in content["warnings"])
    # self-contained: no external resource, every image inline
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<link" not in html and "<script" not in html
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) >= 8 and all(src.startswith("data:image/png;base64,") for src in images)


def test_run_names_are_escaped_never_markup(report):
    _, html = report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT_NAME not in html and "<script" not in html


def test_a_single_run_degrades_to_notes_instead_of_failing(tmp_path):
    write_run(tmp_path, "mbpo", "humanoid", "sac-svg", 0, [100, 200, 300], horizon=2)
    content = build_report([tmp_path], reps=REPS)
    (section,) = content["aggregates"]
    assert section["figures"] == [] and section["notes"]
    assert content["per_task_intervals"] == []
    assert len(content["learning_curves"]) == 1 and "trained-humanoid" in content["learning_curves"][0]["note"]
    assert "<html" in render(content)


def test_runs_without_any_evaluation_are_listed_not_dropped(tmp_path):
    write_run(tmp_path, "classic", "inverted-pendulum", "sac", 0, [], status="running")
    content = build_report([tmp_path], reps=REPS)
    assert content["counts"]["runs"] == 1 and content["comparison"] == []
    assert any("no evaluation yet" in w for w in content["warnings"])
    assert content["runs"][0]["status"] == "interrupted"
    assert "no evaluation yet" in render(content)


MBPO_TASKS = ("ant", "halfcheetah", "hopper", "humanoid", "walker2d")
MBPO_LABEL = "MBPO (Janner et al. 2019, Fig. 2)"


@pytest.fixture
def drawn_axes(monkeypatch) -> dict[str, plt.Axes]:
    """Each figure's first axes, by title, instead of its PNG: what the report draws."""
    axes: dict[str, plt.Axes] = {}

    def keep_axes(figure: plt.Figure) -> str:
        axes[figure.axes[0].get_title()] = figure.axes[0]
        plt.close(figure)
        return "data:image/png;base64,"

    monkeypatch.setattr(figures, "to_data_uri", keep_axes)
    return axes


def legend_texts(ax: plt.Axes) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_mbpo_suite_panels_draw_mbpos_published_curve_beside_ours(tmp_path, drawn_axes):
    for task in MBPO_TASKS:  # shaped like the quick preset's runs: 15k steps, an evaluation every 1000
        write_run(tmp_path, "mbpo", task, "sac-svg", 0, list(range(15)), horizon=2, total_steps=15_000, eval_every=1000)
    content = build_report([tmp_path], reps=REPS)
    mbpo = load_reference_curves().query("method == 'MBPO'")
    assert [f["title"] for f in content["learning_curves"]] == [f"mbpo / {task}" for task in MBPO_TASKS]
    for figure in content["learning_curves"]:
        task = figure["title"].removeprefix("mbpo / ")
        curve = mbpo[mbpo["task"] == task]
        assert "Janner et al. 2019, Figure 2" in figure["note"]
        ax = drawn_axes[figure["title"]]
        assert f"{MBPO_LABEL}, mean ± std; continues to {curve['step'].max():,} steps" in legend_texts(ax)
        shown = curve[curve["step"] <= 15_000]  # cut to our runs' last step
        line = next(line for line in ax.get_lines() if line.get_label().startswith(MBPO_LABEL))
        np.testing.assert_array_equal(line.get_xdata(), shown["step"])
        np.testing.assert_allclose(line.get_ydata(), shown["return"])
        band_top = ax.collections[-1].get_paths()[0].vertices[:, 1].max()  # the ±1 std band, drawn last
        assert band_top == pytest.approx((shown["return"] + shown["std"]).max())
    humanoid = legend_texts(drawn_axes["mbpo / humanoid"])
    assert "SAC-SVG(2) authors' run, seed 9 (published); from 25,052 to 5,000,000 steps, beyond this panel" in humanoid
    assert "Published curves:" in render(content)


def test_the_report_cites_papers_not_files_outside_the_repository(tmp_path):
    write_run(
        tmp_path, "mbpo", "hopper", "sac-svg", 0, [100, 200, 300], horizon=2, total_steps=150_000, eval_every=50_000
    )
    html = render(build_report([tmp_path], reps=REPS))
    for name in ("TASKS.md", "REFERENCE_CODE.md", "../shared", "shared/"):
        assert name not in html
    assert "own figure budgets (Janner et al. 2019, Figure 2" in html  # the 125k column's provenance
    assert "Amos et al. 2021, Figure 2: the authors&#39; ten runs" in html  # the published 1M-step rows' (escaped)


@pytest.mark.parametrize(
    "last_step, drawn_to, legend",
    [
        (300, None, "; from 6,019 to 125,019 steps, beyond this panel"),  # far shorter: our curve keeps the width
        (5_000, 7_019, "; continues to 125,019 steps"),  # a little shorter: the panel reaches MBPO's second point
        (15_000, 14_019, "; continues to 125,019 steps"),  # cut to our last step
        (200_000, 125_019, ""),  # ours go further: the whole published curve
    ],
)
def test_published_curves_are_cut_to_our_runs_unless_that_hides_them(drawn_axes, last_step, drawn_to, legend):
    hopper = load_reference_curves().query("task == 'hopper'")
    steps = np.arange(last_step // 10, last_step + 1, last_step // 10)
    band = pd.DataFrame({"step": steps, "mean": steps / 10, "low": steps / 20, "high": steps / 5, "n": 3})
    figures.learning_curves(
        "hopper",
        {"sac-svg": band},
        {"sac-svg": "tab:blue"},
        None,
        hopper,
        figures.reference_styles(list(hopper["label"].unique())),
    )
    ax = drawn_axes["hopper"]
    assert f"{MBPO_LABEL}, mean ± std{legend}" in legend_texts(ax)
    mbpo_steps = ax.get_lines()[1].get_xdata()
    assert (max(mbpo_steps) if len(mbpo_steps) else None) == drawn_to
    assert ax.get_xlim()[1] < 1.1 * max(last_step, drawn_to or 0)


# ---------------------------------------------------------------- the command


def harness(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_harness_report_end_to_end(fixture_root, tmp_path):
    output = tmp_path / "out" / "file.html"
    done = harness(
        "report", str(fixture_root / "classic"), str(fixture_root / "poplin"), "-o", str(output), "--reps", str(REPS)
    )
    assert done.returncode == 0, done.stderr
    assert output.exists() and "20.00 ± 10.00" in output.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = harness("report", str(empty), "-o", str(tmp_path / "x.html"))
    assert failed.returncode == 2
    assert failed.stderr.strip().count("\n") == 0 and "no runs" in failed.stderr
    assert not (tmp_path / "x.html").exists()


def test_a_damaged_eval_csv_is_reported_as_unreadable_with_why_not_as_no_evaluation_yet(tmp_path):
    # issue 18: a header and a row `abc,def` read as "no evaluation yet"
    damaged = write_run(tmp_path / "runs", "classic", "inverted-pendulum", "sac", 0, [1, 2, 3])
    (damaged / "eval.csv").write_text("step,return_mean,return_std,episodes,wall_time\nabc,def\n")
    partly = write_run(tmp_path / "runs", "classic", "inverted-pendulum", "sac", 1, [4, 5, 6])
    (partly / "eval.csv").write_text(
        "step,return_mean,return_std,episodes,wall_time\n100,4,0,5,1\n200,x,0,5,2\n300,6,0,5,3\n"
    )
    output, numbers = tmp_path / "report.html", tmp_path / "numbers.json"
    done = harness("report", str(tmp_path / "runs"), "-o", str(output), "--json", str(numbers), "--reps", str(REPS))
    assert done.returncode == 0, done.stderr
    unreadable = (
        f"{damaged.resolve()}: eval.csv cannot be read: row 1: step 'abc' and return_mean 'def' are not "
        f"numbers (1 of 1 rows damaged)"
    )
    left_out = f"{partly.resolve()}: eval.csv is damaged: row 2: return_mean 'x' is not a number; 1 of 3 rows left out"
    warnings = json.loads(numbers.read_text())["warnings"]
    assert unreadable in warnings and left_out in warnings
    assert not any("no evaluation yet" in warning for warning in warnings)
    html = output.read_text()
    assert unreadable.replace("'", "&#39;") in html and left_out.replace("'", "&#39;") in html
    (group,) = json.loads(numbers.read_text())["groups"]  # the readable rows still count
    assert (group["seeds"], group["final_returns"]) == ([1], [6.0])
    frame = load_runs([partly])[0].evals
    assert frame["step"].tolist() == [100, 300] and frame["return_mean"].tolist() == [4.0, 6.0]


def test_published_frame_is_not_mutated_by_reports():
    assert isinstance(load_published(), pd.DataFrame) and len(load_published("classic")) == 0


def test_scores_at_mbpo_figure_budget_take_the_latest_evaluation_at_or_before_it():
    def run(seed: int, steps: list[int], returns: list[float]) -> Run:
        return Run(
            path=Path(f"/x/{seed}"),
            suite="mbpo",
            task="hopper",
            agent="sac-svg",
            seed=seed,
            status="done",
            evals=pd.DataFrame({"step": steps, "return_mean": returns}),
        )

    runs = [run(0, [100_000, 125_000, 150_000], [1.0, 2.0, 3.0]), run(1, [100_000, 120_000], [5.0, 7.0])]
    budgets = comparison_budgets(runs)
    assert budgets == {("mbpo", "hopper"): 125_000}
    scores = scores_at_step(runs, budgets)
    assert scores["final_return"].tolist() == [2.0, 7.0]
    assert scores["step"].tolist() == [125_000, 120_000]
    assert scores["complete"].tolist() == [True, False]  # seed 1 stopped before 125k
    table = tables.comparison_tables(scores, with_published=False, caption="at 125k")[0]
    assert table.caption == "at 125k" and not any(row.published for row in table.rows)
    assert table.rows[0].cells[0].text == "2.00 ± –"


def test_steps_to_a_return_by_hand(tmp_path):
    """Seed 0 reaches 50 at its 2nd evaluation (step 200), seed 1 at its 3rd (300), seed 2 at
    its 1st (100): IQM of (100, 200, 300) is 200 (trim 25% of 3 runs: none), mean 200. An
    experiment with one run that never reaches it gets no interval; an unfinished run is not
    counted."""

    for seed, returns in enumerate([[10, 50, 60], [10, 40, 55], [70, 20, 80]]):
        write_run(tmp_path, "classic", "pendulum", "sac", seed, returns)
    for seed, returns in enumerate([[60, 70, 80], [10, 20, 30]]):
        write_run(tmp_path, "classic", "pendulum", "sac-svg", seed, returns)
    write_run(tmp_path, "classic", "pendulum", "sac-svg", 2, [90], status="running")
    runs = load_runs([tmp_path])
    first = first_steps_to(runs, 50.0)
    assert sorted(first["experiment"]) == ["sac", "sac", "sac", "sac-svg", "sac-svg"]
    records = {r["experiment"]: r for r in steps_to_return(first, 50.0, reps=200)}
    sac, svg = records["sac"], records["sac-svg"]
    assert (sac["steps"], sac["reached"], sac["n"]) == ([200, 300, 100], 3, 3)
    assert sac["iqm"] == pytest.approx(200.0) and sac["mean"] == pytest.approx(200.0)
    assert 100.0 <= sac["iqm_low"] <= 200.0 <= sac["iqm_high"] <= 300.0
    assert (svg["steps"], svg["reached"], svg["n"], svg["iqm"]) == ([100, None], 1, 2, None)


def test_report_json_holds_the_intervals_and_the_steps_to_a_return(fixture_root, tmp_path):
    """``--json`` carries what the HTML shows as intervals: per-task IQM and mean, the
    aggregate metrics and probability of improvement, and with ``--threshold`` the steps."""
    output, numbers = tmp_path / "r.html", tmp_path / "r.json"
    done = harness(
        "report",
        str(fixture_root / "classic"),
        "-o",
        str(output),
        "--json",
        str(numbers),
        "--reps",
        str(REPS),
        "--threshold",
        "15",
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(numbers.read_text())
    per_task = data["per_task_intervals"]
    assert per_task and {r["metric"] for r in per_task} == {"IQM", "Mean"}
    assert all(r["low"] <= r["point"] <= r["high"] for r in per_task)
    section = data["aggregates"][0]
    assert section["suite"] == "classic" and {m["metric"] for m in section["metrics"]} == {"IQM", "Mean", "Median"}
    pairs = section["probability_of_improvement"]
    assert pairs and all(0.0 <= p["low"] <= p["point"] <= p["high"] <= 1.0 for p in pairs)
    assert {r["threshold"] for r in data["steps_to_return"]} == {15.0}
    assert "Env steps to a return of 15<" in output.read_text()
    plain = tmp_path / "plain.json"
    assert (
        harness(
            "report",
            str(fixture_root / "classic"),
            "-o",
            str(tmp_path / "p.html"),
            "--json",
            str(plain),
            "--reps",
            str(REPS),
        ).returncode
        == 0
    )
    assert json.loads(plain.read_text())["steps_to_return"] is None
