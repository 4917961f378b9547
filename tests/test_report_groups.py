"""Reports pool runs as seeds only when their configs differ in the seed alone
(reports/experiments.py); ``harness report --json``; the search panel of a study folder."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reports.build import build_report
from reports.experiments import distinguishing_keys, scientific_config, short_names
from reports.html import render
from reports.load import final_scores, load_experiments, load_runs, resample_curves, tidy_evals
from tests.reports_fixture import PAPER_SCHEDULE, STUDY_NAME, STUDY_TRIALS, write_run, write_study

REPS = 50  # bootstrap replications: the numbers tested here are not intervals
PENDULUM = ("classic", "inverted-pendulum")


def harness(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def table_rows(content: dict, suite: str = "classic", task: str = "inverted-pendulum") -> dict[str, object]:
    """Row label -> the task's cell, in the first (final-return) table of ``suite``."""
    table = next(t for t in content["comparison"] if t.suite == suite)
    column = table.tasks.index(task)
    return {row.label: row.cells[column] for row in table.rows if not row.published and row.cells[column].text}


def groups(numbers: dict, task: str = "inverted-pendulum") -> dict[str, dict]:
    return {g["label"]: g for g in numbers["groups"] if g["task"] == task}


# ---------------------------------------------------------------- the rule


def test_operational_keys_and_the_seed_do_not_count_but_every_other_value_does():
    config = {
        "seed": 3,
        "out": "runs/a",
        "wandb": "offline",
        "launcher": {"jobs": 4},
        "preset": "quick",
        "agent": {"name": "sac", "device": "cuda", "hidden_dim": 64},
        "trainer": {"total_steps": 300, "progress": False, "torch_threads": 2},
    }
    assert scientific_config(config) == {
        "preset": "quick",
        "agent.name": "sac",
        "agent.hidden_dim": 64,
        "trainer.total_steps": 300,
    }
    configs = [
        {"trainer.total_steps": 300, "agent.lr": 1, "agent.hidden_dim": 64},
        {"trainer.total_steps": 300, "agent.lr": 2, "agent.hidden_dim": 64},
        {"trainer.total_steps": 500, "agent.lr": 2, "agent.hidden_dim": 32},
    ]
    # the budget always, then only what is still needed to tell them apart
    assert distinguishing_keys(configs) == ["trainer.total_steps", "agent.lr"]
    assert short_names([Path("/x/runs/a"), Path("/x/runs/b/c")]) == {Path("/x/runs/a"): "a", Path("/x/runs/b/c"): "b/c"}


def test_the_contract_module_needs_neither_hydra_nor_torch():
    code = (
        "import sys; from harness.contract import is_operational; from harness.config import is_operational as b; "
        "assert b is is_operational; import reports.experiments; "
        "print(is_operational('launcher.jobs'), is_operational('trainer.total_steps'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False"]
    isolated = "import sys, harness.contract; print(sorted({'hydra', 'torch', 'omegaconf'} & set(sys.modules)))"
    assert (
        subprocess.run([sys.executable, "-c", isolated], capture_output=True, text=True, check=True).stdout.strip()
        == "[]"
    )


# ---------------------------------------------------------------- budgets, via the command


def test_runs_of_different_budgets_are_separate_rows_with_a_warning_and_json_says_so(tmp_path):
    for steps, final in ((3000, 10), (5000, 20), (8000, 30)):
        write_run(tmp_path / f"budget_{steps}", *PENDULUM, "sac", 0, [0, final / 2, final], total_steps=steps)
    html, numbers = tmp_path / "report.html", tmp_path / "numbers.json"
    done = harness("report", str(tmp_path), "-o", str(html), "--json", str(numbers), "--reps", str(REPS))
    assert done.returncode == 0, done.stderr
    assert f"and {numbers}" in done.stdout
    data = json.loads(numbers.read_text())
    by_label = groups(data)
    assert sorted(by_label) == ["sac · 3,000 steps", "sac · 5,000 steps", "sac · 8,000 steps"]
    for steps, final in ((3000, 10), (5000, 20), (8000, 30)):
        group = by_label[f"sac · {steps:,} steps"]
        shown = (group["budget"], group["n"], group["mean"], group["std"], group["seeds"])
        assert shown == (steps, 1, final, None, [0])
        assert group["folders"] == [
            str((tmp_path / f"budget_{steps}" / "classic" / "inverted-pendulum" / "sac" / "seed_0").resolve())
        ]
        assert (group["agent"], group["preset"], group["horizon"], group["row"]) == (
            "sac",
            "quick",
            0,
            f"sac · {steps:,} steps (H=0)",
        )
    warning = (
        "classic/inverted-pendulum sac: runs of different budgets (3,000, 5,000, 8,000 steps) are shown "
        "as separate rows, not averaged"
    )
    assert warning in data["warnings"]
    text = html.read_text()
    assert warning in text and "sac · 5,000 steps (H=0)" in text and "n=3" not in text


# ---------------------------------------------------------------- the same seed twice


def test_two_runs_of_one_seed_in_different_folders_are_separate_rows_with_a_warning(tmp_path):
    for seed, final in ((0, 10), (1, 30)):
        write_run(tmp_path / "a", *PENDULUM, "sac", seed, [0, final / 2, final])
    write_run(tmp_path / "b", *PENDULUM, "sac", 0, [0, 50, 100])  # a copy of seed 0, same config
    write_run(tmp_path / "a", "classic", "inverted-double-pendulum", "sac", 0, [0, 1, 2])
    runs, warnings = load_experiments([tmp_path])
    assert sorted({r.experiment for r in runs}) == ["sac · folder a", "sac · folder b"]
    # the folder qualifies the agent on every task of the suite, so a table row spans them
    assert {r.experiment for r in runs if r.task == "inverted-double-pendulum"} == {"sac · folder a"}
    assert warnings == [
        f"classic/inverted-pendulum sac: two runs with seed 0 in folders {(tmp_path / 'a').resolve()} "
        f"and {(tmp_path / 'b').resolve()}: shown as separate rows, not averaged"
    ]
    content = build_report([tmp_path], reps=REPS)
    rows = table_rows(content)
    assert rows["sac · folder a (H=0)"].text == f"20.00 ± {math.sqrt(200):.2f}"
    assert rows["sac · folder b (H=0)"].text == "100.00 ± –"
    assert warnings[0] in content["warnings"] and warnings[0] in render(content)
    by_label = groups(content["numbers"])
    assert (by_label["sac · folder a"]["n"], by_label["sac · folder a"]["seeds"]) == (2, [0, 1])
    assert (by_label["sac · folder b"]["n"], by_label["sac · folder b"]["seeds"]) == (1, [0])
    # every place that pools seeds keeps them apart: curves, intervals, aggregate panels
    curves = resample_curves(tidy_evals(runs))
    assert sorted(curves.groupby(["experiment", "seed"]).groups) == [
        ("sac · folder a", 0),
        ("sac · folder a", 1),
        ("sac · folder b", 0),
    ]
    assert sorted(r["agent"] for r in content["per_task_intervals"]) == ["sac · folder a"]
    (section,) = content["aggregates"]
    assert any(note.startswith("sac · folder b: fewer than 2") for note in section["notes"])
    assert table_rows(content, task="inverted-double-pendulum")["sac · folder a (H=0)"].text == "2.00 ± –"


# ---------------------------------------------------------------- seeds pooled


def test_runs_differing_only_in_seed_and_operational_keys_are_pooled(tmp_path):
    finals = {0: 10.0, 1: 20.0, 2: 60.0}
    for seed, final in finals.items():
        folder = "a" if seed == 0 else "b"  # two output folders, no seed twice
        operational = (
            f"out: {tmp_path / folder}\nwandb: {'offline' if seed else 'disabled'}\n"
            f"launcher:\n  name: local\n  jobs: {seed + 1}\n"
        )
        write_run(tmp_path / folder, *PENDULUM, "sac", seed, [0, final / 2, final], extra_config=operational)
    runs, warnings = load_experiments([tmp_path])
    assert warnings == [] and {r.experiment for r in runs} == {"sac"}
    values = np.array(list(finals.values()))
    mean, std = values.mean(), values.std(ddof=1)  # 30 and sqrt(700)
    assert (mean, round(std, 6)) == (30.0, round(math.sqrt(700), 6))
    content = build_report([tmp_path], reps=REPS)
    cell = table_rows(content)["sac (H=0)"]
    assert cell.text == f"{mean:.2f} ± {std:.2f}" and cell.detail.startswith("n=3 ")
    (group,) = content["numbers"]["groups"]
    assert (group["label"], group["n"], group["seeds"], group["budget"]) == ("sac", 3, [0, 1, 2], 300)
    assert group["mean"] == pytest.approx(mean) and group["std"] == pytest.approx(std)
    assert (group["complete"], group["incomplete"], group["unfinished_not_counted"]) == (3, 0, 0)


def test_a_changed_setting_splits_and_names_the_setting_in_label_and_warning(tmp_path):
    write_run(tmp_path / "a", *PENDULUM, "sac", 0, [0, 5, 10])
    write_run(tmp_path / "b", *PENDULUM, "sac", 1, [0, 5, 10], entropy=(-2.0, -2.0, None))
    runs, warnings = load_experiments([tmp_path])
    assert sorted({r.experiment for r in runs}) == ["sac · final=-1.0", "sac · final=-2.0"]
    assert warnings == [
        "classic/inverted-pendulum sac: runs of different config.yaml values "
        "(agent.target_entropy.final, agent.target_entropy.init) are shown as separate rows, "
        "not averaged"
    ]
    scores = final_scores(load_runs([tmp_path]))
    assert sorted(scores["experiment"]) == ["sac · final=-1.0", "sac · final=-2.0"]


def test_unfinished_runs_of_an_experiment_are_counted_as_before(tmp_path):
    for seed, final in enumerate((10, 30)):
        write_run(tmp_path, *PENDULUM, "sac", seed, [0, final / 2, final])
    write_run(tmp_path, *PENDULUM, "sac", 2, [7], status="running")
    content = build_report([tmp_path], reps=REPS)
    assert table_rows(content)["sac (H=0)"].detail == "n=2 · 300 steps · 1 unfinished not counted"
    (group,) = content["numbers"]["groups"]
    assert (group["n"], group["complete"], group["incomplete"], group["unfinished_not_counted"]) == (2, 2, 1, 1)


# ---------------------------------------------------------------- search trials and final runs


def test_a_search_trials_run_is_never_a_seed_of_the_final_runs_of_its_config(tmp_path):
    # a folder written before summary.json recorded its origin: known by its trials/slot_<k>/ path
    trial = write_run(tmp_path / "search" / "study" / "trials" / "slot_000", *PENDULUM, "sac", 0, [0, 50, 100])
    for seed, final in ((1, 10), (2, 30)):
        write_run(tmp_path / "final", *PENDULUM, "sac", seed, [0, final / 2, final])
    # a run that says it is a search trial's wherever it lies
    recorded = write_run(tmp_path / "elsewhere", *PENDULUM, "sac", 3, [0, 1, 2])
    summary = json.loads((recorded / "summary.json").read_text())
    (recorded / "summary.json").write_text(json.dumps({**summary, "origin": "search-trial"}))
    runs, warnings = load_experiments([tmp_path])
    assert {(r.seed, r.origin, r.experiment) for r in runs} == {
        (0, "search-trial", "sac · search trial"),
        (3, "search-trial", "sac · search trial"),
        (1, "run", "sac"),
        (2, "run", "sac"),
    }
    assert warnings == [
        "classic/inverted-pendulum sac: runs of a search trial (seeds 0, 3) are shown as a separate "
        "row, not averaged with the other runs of this config: a trial that won its search was chosen "
        "for its score, so counting it again as a seed would bias the mean upward"
    ]
    content = build_report([tmp_path], reps=REPS)
    by_label = groups(content["numbers"])
    assert (by_label["sac"]["n"], by_label["sac"]["seeds"], by_label["sac"]["origin"]) == (2, [1, 2], "run")
    assert (by_label["sac · search trial"]["seeds"], by_label["sac · search trial"]["origin"]) == (
        [0, 3],
        "search-trial",
    )
    assert table_rows(content)["sac (H=0)"].text == f"20.00 ± {math.sqrt(200):.2f}"  # not 100's seed
    assert warnings[0] in render(content)
    assert {row["seed"]: row["origin"] for row in content["runs"]} == {
        "0": "search-trial",
        "1": "run",
        "2": "run",
        "3": "search-trial",
    }
    # a search's runs alone (no final run of their config) keep their plain labels
    assert {r.experiment for r in load_runs([trial])} == {"sac"}


# ---------------------------------------------------------------- the search panel


def test_a_study_folder_gets_a_search_panel_with_the_best_and_table_4_schedules(tmp_path):
    study = write_study(tmp_path / "search")
    html, numbers = tmp_path / "report.html", tmp_path / "numbers.json"
    done = harness("report", str(tmp_path / "search"), "-o", str(html), "--json", str(numbers), "--reps", str(REPS))
    assert done.returncode == 0, done.stderr
    text = html.read_text()
    assert 'id="search"' in text and f"study {STUDY_NAME}" in text
    assert "best trial 1" in text and "Table 4 (paper)" in text
    assert "<td>constant</td>" in text  # Table 4's inverted-pendulum schedule is a constant -1
    data = json.loads(numbers.read_text())
    (panel,) = data["studies"]
    assert panel["folder"] == str(study.resolve())
    assert panel["best"]["trial"] == 1 and panel["best"]["schedule"] == [2.0, -4.0, 0.125]
    assert panel["best"]["objective"] == 75.0 and panel["paper_schedule"] == PAPER_SCHEDULE
    assert panel["best"]["experiments"] == ["sac-svg+init=2,final=-4,decay=0.125"]
    assert panel["budget"] == 300 and panel["states"] == {"COMPLETE": 3, "FAIL": 1, "PRUNED": 1}
    ordered = [row["trial"] for row in panel["trials"]]
    assert ordered[:3] == ["1", "4", "0"] and sorted(ordered[3:]) == ["2", "3"]  # by objective, then the rest
    assert [row["name"] for row in panel["schedules"]] == ["best trial 1", "Table 4 (paper)"]
    # both drawn from files: the best trial's train.csv and study.json's paper_schedule_curve
    (section,) = build_report([study], reps=REPS)["studies"]
    assert section["schedule_uri"].startswith("data:image/png;base64,") and not section["notes"]
    # the trials' runs are ordinary rows of the tables: one per slot, its seeds pooled
    by_label = groups(data)
    best_group = by_label["sac-svg+init=2,final=-4,decay=0.125"]
    assert (best_group["n"], best_group["mean"], best_group["seeds"]) == (2, 75.0, [0, 1])
    complete = [t for t in STUDY_TRIALS if t[1] == "COMPLETE"]
    assert sum(g["counted"] == "complete runs" for g in by_label.values()) == len(complete)


def test_a_study_without_complete_trials_degrades_to_notes(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    (study / "study.json").write_text(
        json.dumps(
            {"study": "empty", "suite": "classic", "task": "inverted-pendulum", "paper_schedule": PAPER_SCHEDULE}
        )
    )
    content = build_report([tmp_path], reps=REPS)
    (panel,) = content["studies"]
    assert panel["notes"] == ["trials.csv holds no trial yet"] and panel["figures"] == []
    assert "study empty" in render(content)
    done = harness("report", str(tmp_path), "-o", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr  # a study folder alone is something to report on
