"""The ``harness`` command end to end, as a user drives it, on tiny configurations."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.config import to_yaml
from harness.launch import plan_jobs
from harness.rundir import RunDirectory
from harness.trainer import Trainer
from tests.conftest import tiny_for

TINY_LABEL = (
    "hidden_dim=16,model_hidden_dim=16,gru_hidden_dim=16,step_batch_size=16,seq_batch_size=16,"
    "seed_steps=100,eval_every=100,eval_episodes=2"
)
SAC_LABEL = "hidden_dim=16,step_batch_size=16,seed_steps=100,eval_every=100,eval_episodes=2"


def run_cli(*args: str, columns: int | None = None) -> tuple[int, str, str]:
    """Run the real console script in a subprocess (as a user would), in a terminal of
    ``columns`` if given."""
    env = dict(os.environ, WANDB_SILENT="true", **({"COLUMNS": str(columns)} if columns else {}))
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )
    return done.returncode, done.stdout, done.stderr


def error_lines(stderr: str) -> list[str]:
    """stderr's lines less the note `harness run` gives before its runs start (their torch
    threads): what remains of a failed run must be one line."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("harness: each run ")]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def tiny_run(out: Path, agent: str = "sac-svg", steps: int = 300, extra: tuple[str, ...] = (), *more: str):
    return run_cli(
        "run",
        "--suite",
        "classic",
        "--task",
        "inverted-pendulum",
        "--agent",
        agent,
        "--preset",
        "quick",
        "--steps",
        str(steps),
        "--out",
        str(out),
        "--wandb",
        "disabled",
        *more,
        *tiny_for(agent),
        *extra,
    )


def crash_at(out: Path, agent: str, steps: int, crash_step: int) -> Path:
    """Start a tiny run as ``harness run`` would and kill it (an exception) at ``crash_step``."""
    job = plan_jobs(
        "classic", ["inverted-pendulum"], agent, [0], "quick", "local", steps, str(out), "disabled", tiny_for(agent)
    )[0]
    run_dir = RunDirectory(job.path)
    run_dir.write_config(to_yaml(job.config))
    trainer = Trainer(job.config, run_dir)
    env_step = trainer.env.step

    def step(action):
        if trainer.progress.step == crash_step:
            raise RuntimeError("simulated crash")
        return env_step(action)

    trainer.env.step = step
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.run()
    return job.path


def run_folder(out: Path, agent: str = "sac-svg", seed: int = 0, label: str | None = None) -> Path:
    label = label or (SAC_LABEL if agent == "sac" else TINY_LABEL)
    return out / "classic" / "inverted-pendulum" / f"{agent}+{label}" / f"seed_{seed}"


@pytest.mark.slow
def test_run_writes_a_contract_shaped_run_directory_and_rerun_does_no_training(tmp_path):
    code, stdout, stderr = tiny_run(tmp_path, "sac-svg", 300, (), "--seeds", "2")
    assert code == 0, stderr
    for seed in (0, 1):
        folder = run_folder(tmp_path, seed=seed)
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
            "checkpoint",
            "config.yaml",
            "eval.csv",
            "summary.json",
            "train.csv",
        ]
        evals = read_csv(folder / "eval.csv")
        assert [int(r["step"]) for r in evals] == [100, 200, 300]
        assert list(evals[0]) == [
            "step",
            "return_mean",
            "return_std",
            "episodes",
            "wall_time",
            "model_error_holdout",
            "model_error_replay",
        ]
        assert all(float(r["model_error_holdout"]) > 0 and float(r["model_error_replay"]) > 0 for r in evals)
        assert all(int(r["episodes"]) == 2 for r in evals)
        train = read_csv(folder / "train.csv")
        for column in (
            "step",
            "episode_return",
            "alpha",
            "target_entropy",
            "entropy",
            "dynamics_loss",
            "steps_per_second",
        ):
            assert column in train[0]
        assert any(r["dynamics_loss"] for r in train), "SAC-SVG must train its dynamics model"
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "done" and summary["steps_done"] == 300 and summary["seed"] == seed
        assert summary["final_eval_return"] == pytest.approx(float(evals[-1]["return_mean"]))
        assert "torch" in summary["versions"] and summary["wall_time"] > 0
        assert (folder / "checkpoint" / "state.pt").stat().st_size > 0
        assert "horizon: 2" in (folder / "config.yaml").read_text()
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    code, stdout, stderr = tiny_run(tmp_path, "sac-svg", 300, (), "--seeds", "2")
    assert code == 0, stderr
    assert "skipped" in stdout
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert before == after, "a rerun of finished runs must not touch them"


@pytest.mark.slow
def test_sac_trains_no_model(tmp_path):
    code, _, stderr = tiny_run(tmp_path, "sac", 200)
    assert code == 0, stderr
    folder = run_folder(tmp_path, "sac")
    train = read_csv(folder / "train.csv")
    assert not any(r["dynamics_loss"] or r["reward_loss"] for r in train)
    assert any(r["critic_loss"] for r in train)
    assert "horizon: 0" in (folder / "config.yaml").read_text()
    assert "model_error_holdout" not in read_csv(folder / "eval.csv")[0]


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result_as_an_uninterrupted_one(tmp_path):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    assert tiny_run(straight, "sac-svg", 400)[0] == 0
    # the "crash": a run that wrote its checkpoint at step 200 and died at step 250
    folder = crash_at(crashed, "sac-svg", 400, 250)
    assert folder == run_folder(crashed)
    assert [int(r["step"]) for r in read_csv(folder / "train.csv")][-1] > 200  # rows after the checkpoint
    assert json.loads((folder / "summary.json").read_text())["status"] != "done"
    assert [int(r["step"]) for r in read_csv(folder / "eval.csv")] == [100, 200]
    code, _, stderr = tiny_run(crashed, "sac-svg", 400)
    assert code == 0, stderr
    a, b = run_folder(straight), folder
    eval_a, eval_b = read_csv(a / "eval.csv"), read_csv(b / "eval.csv")
    assert [r["step"] for r in eval_b] == ["100", "200", "300", "400"]
    assert [r["return_mean"] for r in eval_a] == [r["return_mean"] for r in eval_b]
    train_a, train_b = read_csv(a / "train.csv"), read_csv(b / "train.csv")
    steps_b = [int(r["step"]) for r in train_b]
    assert steps_b == sorted(set(steps_b)), "duplicated training rows after resume"
    assert [r["step"] for r in train_a] == [r["step"] for r in train_b]
    assert [r["critic_loss"] for r in train_a] == [r["critic_loss"] for r in train_b]


def test_unknown_names_and_bad_overrides_give_one_line_and_exit_2(tmp_path, capsys):
    cases = [
        (["run", "--suite", "atari", "--agent", "sac"], "valid suites: mbpo, poplin, classic"),
        (["run", "--suite", "mbpo", "--agent", "dqn"], "valid agents: sac, sac-svg"),
        (["run", "--suite", "mbpo", "--agent", "sac", "--task", "pong"], "valid tasks: hopper"),
        (["run", "--suite", "mbpo", "--agent", "sac", "--preset", "huge"], "valid presets: authors-code, paper, quick"),
        (["run", "--suite", "mbpo", "--agent", "sac", "agent.hiden_dim=3"], "valid keys: name, horizon"),
        (["run", "--suite", "mbpo", "--agent", "sac", "agent.horizon=many"], "agent.horizon=many"),
        (["run", "--suite", "mbpo", "--agent", "sac", "--wandb", "loud"], "'loud' is not one of"),
        (["run", "--suite", "mbpo", "--agent", "sac", "--launcher", "k8s"], "valid launchers: local, submitit"),
    ]
    for argv, expected in cases:
        code = main(argv + ["--out", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2, argv
        assert expected in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("harness: error: ")
    assert not any(tmp_path.iterdir()), "bad input must write nothing"


@pytest.mark.slow
def test_a_folder_holding_another_config_is_refused_and_kept(tmp_path):
    assert tiny_run(tmp_path, "sac", 200)[0] == 0
    folder = run_folder(tmp_path, "sac")
    before = (folder / "eval.csv").read_text()
    code, _, stderr = tiny_run(tmp_path, "sac", 300)  # another budget
    assert code == 2
    assert "another config" in stderr and "total_steps" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert (folder / "eval.csv").read_text() == before


@pytest.mark.slow
def test_corrupt_checkpoints_are_one_line_exit_1_and_change_nothing(tmp_path):
    folder = crash_at(tmp_path, "sac", 300, 250)
    (folder / "summary.json").write_text(json.dumps({"status": "running"}))  # as if killed by a signal
    for name in ("state.pt", "state.prev.pt"):  # the latest and the previous one both damaged
        (folder / "checkpoint" / name).write_bytes(b"not a checkpoint")

    def files():
        return {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}

    before = files()
    code, _, stderr = tiny_run(tmp_path, "sac", 300)
    assert code == 1
    lines = error_lines(stderr)
    assert len(lines) == 1 and "state.pt" in lines[0] and "state.prev.pt" in lines[0], stderr
    assert files() == before  # (the empty lock file the command held is the only new file)


@pytest.mark.slow
def test_diverging_run_is_marked_failed_with_one_line_and_exit_1(tmp_path):
    code, _, stderr = tiny_run(tmp_path, "sac", 300, ("agent.critic_lr=1e30", "agent.actor_lr=1e30"))
    assert code == 1
    assert len(error_lines(stderr)) == 1 and "DivergenceError" in stderr
    folder = next((tmp_path / "classic" / "inverted-pendulum").iterdir()) / "seed_0"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed" and "DivergenceError" in summary["error"]
    # the episodes logged before the divergence are still there
    train = read_csv(folder / "train.csv")
    assert train and all(int(r["step"]) <= 100 for r in train)


@pytest.mark.slow
def test_parallel_jobs_and_status_table(tmp_path):
    code, _, stderr = tiny_run(tmp_path, "sac", 200, (), "--seeds", "2", "--jobs", "2")
    assert code == 0, stderr
    code, stdout, _ = run_cli("status", str(tmp_path), columns=80)
    assert code == 0
    lines = stdout.splitlines()
    assert max(map(len, lines)) <= 80, stdout  # readable in an 80-column terminal
    header = lines[: next(i for i, line in enumerate(lines) if line.startswith("seed"))]
    assert "".join(header) == f"classic/inverted-pendulum/sac+{SAC_LABEL}"  # the experiment, folded
    rows = [line.split() for line in lines if "done" in line]
    assert [row[:3] for row in rows] == [["0", "done", "200/200"], ["1", "done", "200/200"]]


def test_list_json_names_agents_suites_and_dims(capsys):
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing["agents"]) >= {"sac", "sac-svg"}
    dims = {t["task"]: (t["obs_dim"], t["act_dim"], t["budget"]) for t in listing["suites"]["mbpo"]}
    assert dims["humanoid"] == (45, 17, 5_000_000) and dims["hopper"] == (11, 3, 1_000_000)
    assert main(["list"]) == 0
    assert "inverted-pendulum" in capsys.readouterr().out


@pytest.mark.slow
def test_wandb_offline_mirror_writes_beside_the_run(tmp_path):
    code, _, stderr = run_cli(
        "run",
        "--suite",
        "classic",
        "--task",
        "inverted-pendulum",
        "--agent",
        "sac",
        "--preset",
        "quick",
        "--steps",
        "200",
        "--out",
        str(tmp_path),
        "--wandb",
        "offline",
        *tiny_for("sac"),
    )
    assert code == 0, stderr
    folder = run_folder(tmp_path, "sac")
    assert list((folder / "wandb").glob("offline-run-*")), "no offline wandb run beside the files"
    assert json.loads((folder / "summary.json").read_text())["wandb_run_id"]


@pytest.mark.slow
def test_wandb_offline_mirror_of_a_batch_gives_each_seed_its_own_run(tmp_path):
    # a batch's seeds share one process: each wandb.init had finished the one before, and every
    # seed of `--batch-seeds` failed on wandb's "Run ... is finished" at its first row
    code, _, stderr = run_cli(
        *["run", "--suite", "classic", "--task", "inverted-pendulum", "--agent", "sac", "--preset", "quick"],
        *["--steps", "200", "--seeds", "2", "--batch-seeds", "2", "--out", str(tmp_path), "--wandb", "offline"],
        *tiny_for("sac"),
    )
    assert code == 0, stderr
    ids = []
    for seed in (0, 1):
        folder = run_folder(tmp_path, "sac", seed)
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["status"] == "done", summary
        (offline,) = (folder / "wandb").glob("offline-run-*")
        assert offline.name.endswith(summary["wandb_run_id"])
        ids.append(summary["wandb_run_id"])
    assert ids[0] != ids[1]


@pytest.mark.slow
def test_submitit_launcher_runs_every_seed_as_an_array_task(tmp_path):
    code, stdout, stderr = tiny_run(
        tmp_path, "sac", 200, ("launcher.cluster=local",), "--seeds", "2", "--launcher", "submitit", "--wait"
    )
    assert code == 0, stderr
    for seed in (0, 1):  # launcher settings do not label the run folder
        summary = json.loads((run_folder(tmp_path, "sac", seed) / "summary.json").read_text())
        assert summary["status"] == "done" and summary["steps_done"] == 200
    assert list((tmp_path / ".submitit").glob("*/*_result.pkl"))
    manifest = json.loads((tmp_path / "slurm_jobs.json").read_text())
    assert len(manifest["submissions"][0]["jobs"]) == 2
