"""`harness study model-generalisation` (paper Fig. 3) end to end on a tiny SAC run, its
episode bookkeeping, and the report's Fig. 3 panel."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from agents.dynamics import GRUDynamics, MLPEnsembleDynamics
from agents.replay import ReplayBuffer
from harness.cli import main
from harness.config import ConfigError, build_run_config, to_yaml
from harness.rundir import RunDirectory
from reports.model_generalisation import model_generalisation_section
from studies.model_generalisation import CSV_NAME, FOLDER, JSON_NAME, MODELS, SPLITS, complete_episodes, load_source
from tests.test_cli import run_cli, tiny_run

STAGES = 3
STUDY = [
    "--stages",
    str(STAGES),
    "--updates",
    "150",
    "--batch-size",
    "32",
    "--hidden-dim",
    "16",
    "--gru-hidden-dim",
    "16",
]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A finished 600-step SAC run on the inverted pendulum: dozens of short episodes."""
    out = tmp_path_factory.mktemp("runs")
    code, _, stderr = tiny_run(out, "sac", 600)
    assert code == 0, stderr
    (folder,) = out.glob("classic/inverted-pendulum/*/seed_0")
    return folder


@pytest.fixture(scope="module")
def study(run_folder) -> tuple[list[dict[str, str]], dict, str]:
    code, stdout, stderr = run_cli("study", "model-generalisation", str(run_folder), *STUDY)
    assert code == 0, stderr
    folder = run_folder / FOLDER
    return read_rows(folder / CSV_NAME), json.loads((folder / JSON_NAME).read_text()), stdout


@pytest.mark.slow
def test_study_records_every_stage_model_and_split_with_growing_train_and_fixed_test(study, run_folder):
    rows, metadata, stdout = study
    assert sorted((int(r["stage"]), r["model"], r["split"]) for r in rows) == sorted(
        (stage, model, split) for stage in range(1, STAGES + 1) for model in MODELS for split in SPLITS
    )
    by_stage = {int(r["stage"]): r for r in rows}
    train = [int(by_stage[s]["train_episodes"]) for s in range(1, STAGES + 1)]
    holdout = [int(by_stage[s]["holdout_episodes"]) for s in range(1, STAGES + 1)]
    transitions = [int(by_stage[s]["train_transitions"]) for s in range(1, STAGES + 1)]
    assert train == sorted(set(train)) and transitions == sorted(set(transitions)), "train set must grow"
    assert holdout == sorted(holdout) and holdout[0] >= 1
    test_facts = {(r["test_episodes"], r["sequences"]) for r in rows if r["split"] == "test"}
    assert len(test_facts) == 1, "the test split must be the same set at every stage"
    assert int(next(iter(test_facts))[0]) == metadata["episodes"]["test"] >= 1
    assert all(math.isfinite(float(r["mse"])) and float(r["mse"]) > 0 for r in rows)
    assert metadata["source_run"]["path"] == str(run_folder.resolve())
    assert metadata["source_run"]["agent"] == "sac" and metadata["horizon"] == 3
    assert f"gru {metadata['parameter_counts']['gru']:,}" in stdout and "at stage 3" in stdout


@pytest.mark.slow
def test_recorded_parameter_counts_are_the_real_models_and_similar(study, run_folder):
    _, metadata, _ = study
    source = load_source(run_folder)
    settings, width = metadata["settings"], metadata["ensemble_hidden_dim"]
    gru = GRUDynamics(
        source.obs_dim,
        source.act_dim,
        settings["hidden_dim"],
        settings["hidden_depth"],
        settings["gru_hidden_dim"],
        settings["gru_layers"],
    )
    ensemble = MLPEnsembleDynamics(source.obs_dim, source.act_dim, width, settings["hidden_depth"], 5)
    counts = metadata["parameter_counts"]
    assert counts["gru"] == sum(p.numel() for p in gru.parameters())
    assert counts["mlp-ensemble"] == sum(p.numel() for p in ensemble.parameters())
    assert abs(counts["mlp-ensemble"] / counts["gru"] - 1) < 0.05


@pytest.mark.slow
def test_trained_models_improve_and_beat_the_no_change_predictor(study):
    rows, _, _ = study
    mse = {(int(r["stage"]), r["model"], r["split"]): float(r["mse"]) for r in rows}
    for model in ("gru", "mlp-ensemble"):
        assert mse[(STAGES, model, "train")] < mse[(1, model, "train")]
        assert mse[(STAGES, model, "train")] < mse[(STAGES, "no-change", "train")]
        assert mse[(STAGES, model, "test")] < mse[(STAGES, "no-change", "test")]


@pytest.mark.slow
def test_rerun_with_the_same_seed_is_identical_and_out_moves_the_files(study, run_folder, tmp_path, capsys):
    rows, _, _ = study
    assert main(["study", "model-generalisation", str(run_folder), *STUDY, "--out", str(tmp_path)]) == 0
    assert read_rows(tmp_path / CSV_NAME) == rows
    assert json.loads((tmp_path / JSON_NAME).read_text())["source_run"]["path"] == str(run_folder.resolve())


@pytest.mark.slow
def test_report_draws_the_fig3_panel(study, run_folder, tmp_path):
    output = tmp_path / "report.html"
    code, _, stderr = run_cli("report", str(run_folder.parents[2]), "-o", str(output), "--reps", "10")
    assert code == 0, stderr
    html = output.read_text()
    assert 'id="model-generalisation"' in html
    assert '<img src="data:image/png;base64,' in html.split('id="model-generalisation"')[1].split("<h2")[0]
    assert "MSE at stage 3" in html and "no model_generalisation.csv" not in html


def test_a_folder_without_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["study", "model-generalisation", str(tmp_path)])
    stderr = capsys.readouterr().err
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "no checkpoint" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_too_few_episodes_for_the_stages_is_one_line_and_exit_2(run_folder, tmp_path, capsys):
    code = main(["study", "model-generalisation", str(run_folder), "--stages", "100000", "--out", str(tmp_path)])
    stderr = capsys.readouterr().err
    assert code == 2
    assert stderr.strip().count("\n") == 0 and "stages" in stderr and "Traceback" not in stderr
    assert not (tmp_path / CSV_NAME).exists()


def _ring_run(folder: Path, episode_lengths: list[int], capacity: int, unfinished: int = 0) -> None:
    """A run folder whose checkpoint holds a ring of episodes numbered by obs[0] (step in
    obs[1]), then ``unfinished`` steps of an episode that has not ended."""
    config = build_run_config("classic", "inverted-pendulum", "sac", 0, preset="quick")
    buffer = ReplayBuffer(4, 1, capacity)
    steps = 0
    for number, length in enumerate([*episode_lengths, unfinished]):
        for t in range(length):
            obs = np.array([number, t, 0, 0], dtype=np.float32)
            buffer.add(obs, np.zeros(1), 1.0, obs + 1, False, number < len(episode_lengths) and t == length - 1)
            steps += 1
    run_dir = RunDirectory(folder)
    run_dir.write_config(to_yaml(config))
    run_dir.save_checkpoint({"replay": buffer.state_dict(), "progress": {"step": steps}})


def test_wrapped_ring_is_read_oldest_first_dropping_both_partial_episodes(tmp_path):
    # 7 episodes of 4 (28 transitions) plus 2 steps of an unfinished 8th, in a ring of 20:
    # the oldest 10 are overwritten, so episode 2 lost its first 2 steps.
    _ring_run(tmp_path, [4] * 7, capacity=20, unfinished=2)
    source = load_source(tmp_path)
    assert source.wrapped
    numbers = source.transitions["obs"][:, 0].astype(int).tolist()
    assert numbers == [2, 2] + [n for n in range(3, 7) for _ in range(4)] + [7, 7]
    episodes = complete_episodes(source.transitions["episode_end"], source.wrapped)
    assert [sorted(set(source.transitions["obs"][e, 0].astype(int))) for e in episodes] == [[3], [4], [5], [6]]
    assert all(source.transitions["obs"][e, 1].tolist() == [0, 1, 2, 3] for e in episodes)


def test_a_ring_not_yet_full_keeps_its_first_episode(tmp_path):
    _ring_run(tmp_path, [3, 3, 2], capacity=20)
    source = load_source(tmp_path)
    assert not source.wrapped
    assert [len(e) for e in complete_episodes(source.transitions["episode_end"], source.wrapped)] == [3, 3, 2]


def test_checkpoint_without_replay_is_a_config_error(tmp_path):
    RunDirectory(tmp_path).write_config("suite: classic\n")
    RunDirectory(tmp_path).save_checkpoint({"progress": {"step": 0}})
    with pytest.raises(ConfigError, match="no replay buffer"):
        load_source(tmp_path)


def _write_study(folder: Path, seed: int, scale: float, batch_size: int = 256) -> None:
    """A two-stage study's files, as `harness study model-generalisation` writes them, with
    every MSE ``scale`` times a fixed pattern."""
    folder.mkdir(parents=True)
    with open(folder / CSV_NAME, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["stage", "train_episodes", "model", "split", "mse"])
        for stage in (1, 2):
            for i, model in enumerate(MODELS):
                for j, split in enumerate(SPLITS):
                    writer.writerow([stage, 10 * stage, model, split, scale * (1 + i + j / 10) / stage])
    metadata = {
        "horizon": 3,
        "parameter_counts": {"gru": 100, "mlp-ensemble": 101},
        "settings": {"seed": seed, "batch_size": batch_size, "hidden_dim": 8},
        "source_run": {
            "suite": "mbpo",
            "task": "hopper",
            "agent": "sac",
            "preset": "quick",
            "transitions": 500,
            "path": "/runs/hopper/sac/seed_0",
        },
    }
    (folder / JSON_NAME).write_text(json.dumps(metadata))


def test_report_pools_studies_that_differ_only_in_seed(tmp_path):
    _write_study(tmp_path / "s0", seed=0, scale=1.0)
    _write_study(tmp_path / "s1", seed=1, scale=3.0)
    _write_study(tmp_path / "other", seed=0, scale=1.0, batch_size=1024)  # other settings: its own panel
    section = model_generalisation_section([tmp_path])
    assert section["notes"] == []
    pooled, alone = sorted(section["panels"], key=lambda panel: -panel["seeds"])
    assert (pooled["seeds"], alone["seeds"]) == (2, 1)
    assert "2 study seeds (0, 1)" in pooled["title"] and "study seed 0" in alone["title"]
    numbers = {(r["model"], r["split"]): r for r in pooled["numbers"]["final_stage_mse"]}
    gru_test = numbers[("gru", "test")]  # stage 2: (1 + 0 + 0.2) / 2 = 0.6, times 1 and 3
    assert gru_test["values"] == pytest.approx([0.6, 1.8])
    assert gru_test["mean"] == pytest.approx(1.2) and gru_test["std"] == pytest.approx(math.sqrt(0.72))
    assert {r["model"]: r["test"] for r in pooled["rows"]}["gru"] == "1.2 ± 0.85"
    assert {r["model"]: r["test"] for r in alone["rows"]}["gru"] == "0.6"
    assert pooled["numbers"]["settings"] == {"batch_size": 256, "hidden_dim": 8}
