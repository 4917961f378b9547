"""baselines/published: the published numbers match the paper text, row by row."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from baselines.published import CURVE_COLUMNS, PUBLISHED_COLUMNS, load_published, load_reference_curves, published_agent

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
PAPER = REFERENCE / "amos2021-svg-paper.txt"
MBPO_CURVES = REFERENCE / "mbpo-janner2019-curves.csv"
TABLE2_TASKS = ["ant", "hopper", "swimmer", "cheetah", "walker2d", "pets-cheetah"]


def cell(method: str, suite: str, task: str, metric: str | None = None):
    rows = load_published(suite)
    rows = rows[(rows["method"] == method) & (rows["task"] == task)]
    if metric:
        rows = rows[rows["metric"] == metric]
    assert len(rows) == 1, (method, suite, task, metric)
    return rows.iloc[0]


@pytest.mark.parametrize(
    "method, task, mean, std, steps",
    [
        ("SAC-SVG(2)", "hopper", 2851.90, 361.07, 200_000),
        ("POPLIN-P", "pets-cheetah", 12227.9, 5652.8, 50_000),
        ("SAC (authors' run)", "swimmer", 351.24, 5.27, 50_000),
        ("SAC-SVG(10)", "hopper", -2511.05, 881.26, 200_000),
        ("SAC* (reported by Wang and Ba 2019)", "cheetah", 3459.8, 1326.6, 200_000),
        ("TD3*", "walker2d", -516.4, 812.2, 200_000),
        ("POPLIN-A", "ant", 1148.4, 438.3, 200_000),
    ],
)
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
    for line in lines[start + 1 :]:
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
        8062,
        2809,
        5_000_000,
    )
    assert tuple(cell("SAC-SVG(2)", "mbpo", "hopper", "best eval")[["mean", "std", "steps"]]) == (3917, 169, 1_000_000)
    mbpo = load_published("mbpo")
    assert len(mbpo) == 10 and set(mbpo["metric"]) == {"last eval", "best eval"}
    assert dict(zip(mbpo["task"], mbpo["steps"])) == {
        "ant": 2_000_000,
        "halfcheetah": 2_000_000,
        "hopper": 1_000_000,
        "humanoid": 5_000_000,
        "walker2d": 2_000_000,
    }


def test_reference_curve_is_the_authors_humanoid_run():
    curves = load_reference_curves()
    assert list(curves.columns) == CURVE_COLUMNS
    curves = curves[curves["method"] == "SAC-SVG(2)"]
    assert set(zip(curves["suite"], curves["task"], curves["seed"])) == {("mbpo", "humanoid", 9)}
    assert len(curves) == 199
    assert curves["step"].iloc[0] == 25052 and curves["step"].iloc[-1] == 5_000_000
    assert curves["return"].iloc[-1] == pytest.approx(10332.247565312871)
    assert curves["step"].is_monotonic_increasing
    assert curves["std"].isna().all()  # one run: no spread over seeds


OUTSIDE_THE_REPOSITORY = ("TASKS.md", "REFERENCE_CODE.md", "ARCHITECTURE.md", "../", "shared/")


def test_every_source_cites_a_paper_table_or_figure_or_a_public_repository_never_a_file_outside_ours():
    sources = set(load_published()["source"]) | set(load_reference_curves()["source"])
    for source in sources:
        assert not any(name in source for name in OUTSIDE_THE_REPOSITORY), source
        assert any(f"{kind} " in source for kind in ("Table", "Figure", "folder")), source  # where to look in it
    mbpo = set(load_published("mbpo")["source"])
    assert mbpo == {"Amos et al. 2021, Figure 2: the authors' ten runs (facebookresearch/svg)"}


MBPO_CURVE_ENDS = {"hopper": 125_019, "walker2d": 300_001, "ant": 300_035, "humanoid": 250_015, "halfcheetah": 400_985}


def test_mbpo_curves_are_janner_2019_figure_2_on_every_mbpo_task():
    curves = load_reference_curves()
    mbpo = curves[curves["method"] == "MBPO"]
    assert set(mbpo["suite"]) == {"mbpo"} and mbpo["seed"].isna().all()  # a mean over MBPO's seeds
    assert mbpo.groupby("task")["step"].max().to_dict() == MBPO_CURVE_ENDS
    assert mbpo.groupby("task").size().to_dict() == {
        "hopper": 120,
        "walker2d": 295,
        "ant": 295,
        "humanoid": 245,
        "halfcheetah": 402,
    }
    for task, rows in mbpo.groupby("task"):
        assert rows["step"].is_monotonic_increasing and rows["step"].diff().dropna().between(985, 1000).all(), task
    hopper = mbpo[mbpo["task"] == "hopper"]
    assert tuple(hopper[["step", "return", "std"]].iloc[0]) == (6019, pytest.approx(166.56), pytest.approx(93.73))
    assert tuple(hopper[["step", "return", "std"]].iloc[-1]) == (125_019, pytest.approx(3279.78), pytest.approx(454.99))
    assert mbpo["std"].notna().all() and (mbpo["std"] >= 0).all()
    assert set(mbpo["label"]) == {"MBPO (Janner et al. 2019, Fig. 2)"}
    (source,) = set(mbpo["source"])
    assert "Janner et al. 2019, Figure 2" in source and "c05887e" in source and "data/mbpo/<task>_mbpo.pkl" in source


@pytest.mark.skipif(not MBPO_CURVES.exists(), reason="reference data not beside the checkout (../shared/reference)")
def test_mbpo_curves_file_is_the_reference_copied_unchanged():
    shipped = resources.files("baselines.published").joinpath("mbpo-janner2019-curves.csv").read_bytes()
    assert shipped == MBPO_CURVES.read_bytes()


def test_published_methods_map_to_our_agents():
    assert published_agent("SAC-SVG(3)") == ("sac-svg", 3)
    assert published_agent("SAC (authors' run)") == ("sac", 0)
    assert published_agent("POPLIN-P") is None
    assert published_agent("SAC* (reported by Wang and Ba 2019)") is None
