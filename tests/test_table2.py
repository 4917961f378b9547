"""``harness study table2`` end to end on tiny settings: searches per horizon, final runs on
fresh seeds with each search's best schedule, one report; rerunning resumes and adds nothing."""

from __future__ import annotations

import json

import pytest
import yaml

from studies.slots import best_trial
from studies.storage import load_study
from studies.table2 import agent_for, parse_horizons
from tests.test_cli import run_cli
from tests.test_search import TINY_SAC

TINY_SVG = ["agent.model_hidden_dim=16", "agent.gru_hidden_dim=16", "agent.seq_batch_size=16", *TINY_SAC]


def table2(out, *more):
    return run_cli(
        "study",
        "table2",
        "--suite",
        "classic",
        "--task",
        "inverted-pendulum",
        "--horizons",
        "0,2",
        "--trials",
        "2",
        "--search-seeds",
        "1",
        "--seeds",
        "2",
        "--preset",
        "quick",
        "--steps",
        "200",
        "--out",
        str(out),
        "--reps",
        "100",
        *more,
        *TINY_SVG,
    )


def test_horizons_and_rows():
    assert parse_horizons("0,1,2,3,4,5,10") == [0, 1, 2, 3, 4, 5, 10]
    assert agent_for(0) == ("sac", []) and agent_for(3) == ("sac-svg", ["agent.horizon=3"])
    for bad in ("0,x", "-1,2", "2,2", ""):
        with pytest.raises(ValueError):
            parse_horizons(bad)


@pytest.mark.slow
def test_table2_runs_every_stage_and_resumes(tmp_path):
    code, stdout, stderr = table2(tmp_path)
    assert code == 0, stderr
    root = tmp_path / "classic-inverted-pendulum"
    numbers = json.loads((root / "table2.json").read_text())
    assert "<html" in (root / "table2.html").read_text().lower()
    groups = {g["horizon"]: g for g in numbers["groups"]}
    assert sorted(groups) == [0, 2]
    for horizon, group in groups.items():
        assert group["n"] == 2 and group["seeds"] == [1, 2]  # fresh seeds: the search used seed 0
        assert group["agent"].startswith("sac+" if horizon == 0 else "sac-svg+horizon=2,")
        study = load_study(
            f"table2-classic-inverted-pendulum-H{horizon}",
            str(root / "search" / f"table2-classic-inverted-pendulum-H{horizon}" / "study.journal"),
        )
        assert len(study.get_trials()) == 2
        best = best_trial(study)
        for folder in group["folders"]:  # every final run uses its horizon's best schedule
            config = yaml.safe_load((tmp_path / folder / "config.yaml").read_text())
            entropy = config["agent"]["target_entropy"]
            assert (entropy["init"], entropy["final"], entropy["decay"]) == (
                best.user_attrs["H_init"],
                best.user_attrs["H_final"],
                best.user_attrs["beta"],
            )
            assert config["agent"]["horizon"] == horizon
    first_report = numbers["groups"]

    code, stdout, stderr = table2(tmp_path)  # rerun: every stage is done, the report is rewritten
    assert code == 0, stderr
    assert "started" not in stdout
    assert json.loads((root / "table2.json").read_text())["groups"] == first_report

    code, _, stderr = table2(tmp_path / "bad", "--horizons", "0,x")
    assert code == 2 and "--horizons" in stderr and not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_a_poplin_table2_report_sets_our_rows_beside_the_published_table_2(tmp_path):
    code, _, stderr = run_cli(
        "study",
        "table2",
        "--suite",
        "poplin",
        "--task",
        "swimmer",
        "--horizons",
        "0,2",
        "--trials",
        "1",
        "--seeds",
        "1",
        "--preset",
        "quick",
        "--steps",
        "200",
        "--out",
        str(tmp_path),
        "--reps",
        "100",
        "trainer.eval_every=200",
        "trainer.eval_episodes=1",
        *TINY_SVG[:-3],
        "trainer.seed_steps=100",
    )
    assert code == 0, stderr
    root = tmp_path / "poplin-swimmer"
    rows = {g["horizon"]: g for g in json.loads((root / "table2.json").read_text())["groups"]}
    assert sorted(rows) == [0, 2] and all(g["seeds"] == [1] for g in rows.values())
    html = (root / "table2.html").read_text().replace("<wbr>", "")  # long labels break after their commas
    for published in ("SAC-SVG(2)", "SAC-SVG(10)", "POPLIN-P", "350.22"):  # Table 2's swimmer column
        assert published in html
    assert rows[2]["row"] in html and rows[0]["row"] in html


def test_a_table2_whose_runs_never_leave_the_random_seed_steps_is_refused_before_any_search(tmp_path):
    # issue 18: the searches' check (studies.entropy_search.check_settings) guards each horizon
    code, stdout, stderr = run_cli(
        "study",
        "table2",
        "--suite",
        "classic",
        "--task",
        "inverted-pendulum",
        "--horizons",
        "0,2",
        "--trials",
        "1",
        "--seeds",
        "2",
        "--preset",
        "quick",
        "--steps",
        "1000",
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 2 and stdout == ""
    (line,) = stderr.strip().splitlines()
    assert "1000 steps <= trainer.seed_steps=1000" in line and "every trial would score the same random policy" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_report_over_a_table2_folder_keeps_the_winning_trial_apart_from_the_final_runs(tmp_path):
    # issue 18: the trial that won (seed 0) was pooled with its schedule's final runs (seeds 1, 2) as n=3
    code, _, stderr = run_cli(
        "study",
        "table2",
        "--suite",
        "classic",
        "--task",
        "inverted-pendulum",
        "--horizons",
        "0",
        "--trials",
        "1",
        "--seeds",
        "2",
        "--preset",
        "quick",
        "--steps",
        "200",
        "--out",
        str(tmp_path),
        "--reps",
        "100",
        *TINY_SAC,
    )
    assert code == 0, stderr
    root = tmp_path / "classic-inverted-pendulum"
    (trial_summary,) = (root / "search").rglob("summary.json")
    assert json.loads(trial_summary.read_text())["origin"] == "search-trial"  # recorded by the search
    numbers, html = tmp_path / "numbers.json", tmp_path / "report.html"
    code, stdout, stderr = run_cli("report", str(root), "-o", str(html), "--json", str(numbers), "--reps", "100")
    assert code == 0, stderr
    data = json.loads(numbers.read_text())
    final, trial = sorted(data["groups"], key=lambda g: g["origin"])
    assert (final["origin"], final["n"], final["seeds"]) == ("run", 2, [1, 2])
    assert (trial["origin"], trial["n"], trial["seeds"]) == ("search-trial", 1, [0])
    assert trial["label"] == final["label"] + " · search trial"
    (warning,) = [w for w in data["warnings"] if "search trial" in w]
    assert "the run of a search trial (seed 0) is shown as a separate row" in warning
    text = html.read_text()
    assert final["label"] + " · search trial" in text and "chosen for its score" in text
