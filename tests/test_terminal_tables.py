"""What the commands print in a terminal: ``harness list``, ``harness search show`` and
``harness status`` fit 80 columns and keep every name whole; rows that differ say how."""

from __future__ import annotations

import io
import json

from rich.console import Console

import harness.trainer
from baselines import AGENTS
from harness.listing import listing, print_listing
from harness.suites import SUITES
from studies.entropy_search import Worker
from studies.search_tables import print_trials, trials_json
from tests.reports_fixture import write_run
from tests.test_cli import run_cli
from tests.test_search import tiny_settings


def rendered(draw, width: int) -> list[str]:
    """The lines ``draw(console)`` prints on a console ``width`` columns wide."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    draw(console)
    return console.export_text().splitlines()


def test_list_fits_80_columns_and_keeps_every_name_and_description_whole():
    for width in (80, 240):  # a terminal, and a pipe (the command's console is 240 wide there)
        lines = rendered(print_listing, width)
        assert max(map(len, lines)) <= 80, "\n".join(lines)
        text = "\n".join(lines)
        assert "…" not in text
        words = text.split()
        for spec in (spec for tasks in SUITES.values() for spec in tasks.values()):
            assert spec.name in words and spec.env_id in words
        for name, variant in AGENTS.items():
            assert name in words
            assert " ".join(words).count(" ".join(variant.description.split())) == 1  # wrapped, not cut
    mbpo = listing()["suites"]["mbpo"]
    assert [t["task"] for t in mbpo] == list(SUITES["mbpo"])  # --json's data is what the tables show


def scripted_run(config, path, on_evaluation=None):
    """A trial's training, instantly: slot k's objective is 10 + 3.3 k."""
    slot = int(str(path).split("slot_")[1][:3])
    on_evaluation(100, float(slot))
    return {"status": "done", "final_eval_return": 10.0 + 3.3 * slot}


def test_search_show_fits_80_columns_with_run_folders_relative_to_the_study(tmp_path, monkeypatch):
    monkeypatch.setattr(harness.trainer, "train_run", scripted_run)
    settings = tiny_settings(tmp_path / "a-rather-long-folder-name-for-searches", 12)
    worker = Worker(settings, say=lambda line: None)
    worker.run()
    lines = rendered(lambda console: print_trials(console, worker.study, settings.study_dir), 80)
    text = "\n".join(lines)
    assert max(map(len, lines)) <= 80, text
    assert "".join(lines).count(str(settings.study_dir)) == 1  # the study folder once (folded), not on every row
    assert "run folders: trials/slot_000 to trials/slot_011 (one per slot)" in text
    rows = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0].isdigit()}
    assert len(rows) == 12
    for trial in trials_json(worker.study, settings.study_dir)["trials"]:  # every value of every trial shown
        row = rows[str(trial["number"])]
        assert row == [
            str(trial["number"]),
            str(trial["slot"]),
            "COMPLETE",
            f"{trial['H_init']}",
            f"{trial['H_final']}",
            f"{trial['beta']}",
            f"{trial['objective']:.2f}",
            "complete",
        ]
    assert "best: trial 11" in text


def test_status_tells_runs_of_one_seed_in_two_output_folders_apart(tmp_path):
    for preset in ("quick", "paper"):  # `harness run --out runs/quick ...` and `--out runs/paper --preset paper`
        folder = write_run(tmp_path / "runs" / preset, "classic", "inverted-pendulum", "sac", 0, [1, 2])
        summary = json.loads((folder / "summary.json").read_text())
        (folder / "summary.json").write_text(json.dumps(dict(summary, preset=preset)))
    write_run(tmp_path / "runs", "classic", "inverted-double-pendulum", "sac", 0, [3])
    code, stdout, stderr = run_cli("status", str(tmp_path / "runs"), columns=80)
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert max(map(len, lines)) <= 80, stdout
    titles = [line.strip() for line in lines if "classic/" in line]
    assert titles == [
        "classic/inverted-double-pendulum/sac",  # alone: no preset to name
        "paper/classic/inverted-pendulum/sac · preset paper",
        "quick/classic/inverted-pendulum/sac · preset quick",
    ]
    seeds = [line.split()[0] for line in lines if "done" in line]
    assert seeds == ["0", "0", "0"]  # one seed 0 under each heading, never two in one table
