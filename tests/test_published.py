"""baselines/published: the published numbers match the paper text, row by row."""

from __future__ import annotations

from pathlib import Path

import pytest

from baselines.published import PUBLISHED_COLUMNS, load_published, load_reference_curves, published_agent

PAPER = Path(__file__).resolve().parents[2] / "shared" / "reference" / "amos2021-svg-paper.txt"
TABLE2_TASKS = ["ant", "hopper", "swimmer", "cheetah", "walker2d", "pets-cheetah"]


def cell(method: str, suite: str, task: str, metric: str | None = None):
    rows = load_published(suite)
    rows = rows[(rows["method"] == method) & (rows["task"] == task)]
    if metric:
        rows = rows[rows["metric"] == metric]
    assert len(rows) == 1, (method, suite, task, metric)
    return rows.iloc[0]


@pytest.mark.parametrize("method, task, mean, std, steps", [
    ("SAC-SVG(2)", "hopper", 2851.90, 361.07, 200_000),
    ("POPLIN-P", "pets-cheetah", 12227.9, 5652.8, 50_000),
    ("SAC (authors' run)", "swimmer", 351.24, 5.27, 50_000),
    ("SAC-SVG(10)", "hopper", -2511.05, 881.26, 200_000),
    ("SAC* (reported by Wang and Ba 2019)", "cheetah", 3459.8, 1326.6, 200_000),
    ("TD3*", "walker2d", -516.4, 812.2, 200_000),
    ("POPLIN-A", "ant", 1148.4, 438.3, 200_000),
])
def test_poplin_suite_cells_match_the_paper(method, task, mean, std, steps):
    row = cell(method, "poplin", task)
    assert (row["mean"], row["std"], row["steps"]) == (mean, std, steps)
    assert row["source"]


def test_every_table2_row_is_stored_and_every_row_has_columns_and_source():
    frame = load_published()
    assert list(frame.columns) == PUBLISHED_COLUMNS
    assert frame["source"].str.len().min() > 10
    poplin = frame[frame["suite"] == "poplin"]
    assert len(poplin) == 13 * 6  # 12 rows of Table 2 and POPLIN-A, six tasks each
    table2 = poplin[poplin["method"] != "POPLIN-A"]
    assert (table2["n"] == 10).all()
    assert set(poplin["task"]) == set(TABLE2_TASKS)
    assert sorted(poplin.loc[poplin["task"].isin(["swimmer", "pets-cheetah"]), "steps"].unique()) == [50_000]


@pytest.mark.skipif(not PAPER.exists(), reason="paper text not beside the checkout (../shared/reference)")
def test_table2_matches_the_paper_text_cell_by_cell():
    lines = PAPER.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("\tAnt\tHopper"))
    paper_rows = []
    for line in lines[start + 1:]:
        if line.startswith("Training Timesteps"):
            break
        paper_rows.append(line.split("\t"))
    assert len(paper_rows) == 12
    stored = load_published("poplin")
    stored = stored[stored["method"] != "POPLIN-A"]
    methods = list(dict.fromkeys(stored["method"]))
    for (_label, *cells), method in zip(paper_rows, methods, strict=True):
        for task, text in zip(TABLE2_TASKS, cells, strict=True):
            mean, std = (float(x) for x in text.split(r"\pm"))
            row = stored[(stored["method"] == method) & (stored["task"] == task)].iloc[0]
            assert (row["mean"], row["std"]) == (mean, std), (method, task)


def test_mbpo_suite_last_and_best_evaluations():
    assert tuple(cell("SAC-SVG(2)", "mbpo", "humanoid", "last eval")[["mean", "std", "steps"]]) == (
        8062, 2809, 5_000_000)
    assert tuple(cell("SAC-SVG(2)", "mbpo", "hopper", "best eval")[["mean", "std", "steps"]]) == (
        3917, 169, 1_000_000)
    mbpo = load_published("mbpo")
    assert len(mbpo) == 10 and set(mbpo["metric"]) == {"last eval", "best eval"}
    assert dict(zip(mbpo["task"], mbpo["steps"])) == {
        "ant": 2_000_000, "halfcheetah": 2_000_000, "hopper": 1_000_000, "humanoid": 5_000_000,
        "walker2d": 2_000_000}


def test_reference_curve_is_the_authors_humanoid_run():
    curves = load_reference_curves()
    assert set(zip(curves["suite"], curves["task"], curves["seed"])) == {("mbpo", "humanoid", 9)}
    assert len(curves) == 199
    assert curves["step"].iloc[0] == 25052 and curves["step"].iloc[-1] == 5_000_000
    assert curves["return"].iloc[-1] == pytest.approx(10332.247565312871)
    assert curves["step"].is_monotonic_increasing


def test_published_methods_map_to_our_agents():
    assert published_agent("SAC-SVG(3)") == ("sac-svg", 3)
    assert published_agent("SAC (authors' run)") == ("sac", 0)
    assert published_agent("POPLIN-P") is None
    assert published_agent("SAC* (reported by Wang and Ba 2019)") is None
