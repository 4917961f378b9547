"""A batch of seeds trained in one process writes each seed's run folder as a lone run of
that seed writes it (harness/batched_trainer.py): the same files, columns, rows and
checkpoint layout, and (the same environments, replay slots and noise reaching each seed)
the same numbers to float rounding; a seed that diverges fails as alone while the others
go on as alone; and a batch killed with SIGKILL and rerun ends exactly where an
uninterrupted batch ends."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import SVGAgent
from agents.batched import BatchedSVGAgent
from agents.metrics import DivergenceError
from harness.batched_trainer import train_batch
from harness.config import build_run_config
from harness.trainer import train_run
from tests.test_kill_resume import TIMING_COLUMNS, FolderState, differences, environment, read_csv, simulator_state

SEEDS = (0, 1, 2)
STEPS, SEED_STEPS, EVAL_EVERY = 200, 100, 100
OVERRIDES = [
    "agent.hidden_dim=16",
    "agent.model_hidden_dim=16",
    "agent.gru_hidden_dim=16",
    "agent.step_batch_size=16",
    "agent.seq_batch_size=16",
    f"trainer.seed_steps={SEED_STEPS}",
    f"trainer.eval_every={EVAL_EVERY}",
    "trainer.eval_episodes=1",
    "trainer.torch_threads=1",
    "trainer.progress=false",
]


def config(agent: str, seed: int, out: Path, *extra: str):
    return build_run_config(
        "classic",
        "inverted-pendulum",
        agent,
        seed,
        preset="quick",
        steps=STEPS,
        out=str(out),
        wandb="disabled",
        overrides=[*OVERRIDES, *extra],
    )


def assert_close_csv(batched: Path, lone: Path) -> None:
    """Same columns and rows; every number but the timings equal to float rounding."""
    columns_b, rows_b = read_csv(batched)
    columns_l, rows_l = read_csv(lone)
    assert columns_b == columns_l and len(rows_b) == len(rows_l) > 0, batched
    for row_b, row_l in zip(rows_b, rows_l):
        for column in columns_b:
            if column in TIMING_COLUMNS or row_l[column] == row_b[column]:
                continue
            assert float(row_b[column]) == pytest.approx(float(row_l[column]), rel=1e-4, abs=1e-5), (
                batched,
                row_l["step"],
                column,
            )


def structure(state):
    """A checkpoint's layout: keys, and the dtype and shape of every tensor."""
    if isinstance(state, torch.Tensor):
        return (state.dtype, tuple(state.shape))
    if isinstance(state, dict):
        return {key: structure(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return [structure(value) for value in state]
    return type(state).__name__


def load(folder: Path, name: str = "state.pt") -> dict:
    return torch.load(folder / "checkpoint" / name, map_location="cpu", weights_only=True)["state"]


def assert_written_as_alone(batched: Path, lone: Path) -> None:
    assert sorted(p.name for p in batched.iterdir()) == sorted(p.name for p in lone.iterdir())
    assert_close_csv(batched / "eval.csv", lone / "eval.csv")
    assert_close_csv(batched / "train.csv", lone / "train.csv")
    summary_b, summary_l = (json.loads((folder / "summary.json").read_text()) for folder in (batched, lone))
    assert summary_b.keys() == summary_l.keys()
    for key in ("status", "steps_done", "evaluations", "best_eval_step", "seed", "error", "diverged"):
        assert summary_b.get(key) == summary_l.get(key), key
    for name in ("state.pt", "state.prev.pt", "best.pt"):
        assert structure(load(batched, name)) == structure(load(lone, name)), name


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["sac-svg", "sac-svg-ensemble"])
def test_batched_seeds_write_what_lone_runs_write(tmp_path, agent):
    outcomes = train_batch(
        [config(agent, s, tmp_path) for s in SEEDS], [tmp_path / "batch" / f"seed_{s}" for s in SEEDS]
    )
    assert [o.error for o in outcomes] == [None] * 3 and all(o.summary["status"] == "done" for o in outcomes)
    for s in SEEDS:
        train_run(config(agent, s, tmp_path), tmp_path / "lone" / f"seed_{s}")
        assert_written_as_alone(tmp_path / "batch" / f"seed_{s}", tmp_path / "lone" / f"seed_{s}")
        summary = json.loads((tmp_path / "batch" / f"seed_{s}" / "summary.json").read_text())
        assert (summary["compile_mode"], summary["compile_reason"]) == ("off", "seeds trained as a batch run eagerly")
    # the seeds are seeds: their evaluations differ
    returns = [read_csv(tmp_path / "batch" / f"seed_{s}" / "train.csv")[1][-1]["critic_loss"] for s in SEEDS]
    assert len(set(returns)) == 3
    # a batched seed's checkpoint is a lone run's: a lone agent loads it
    lone = SVGAgent(4, 1, config(agent, 0, tmp_path).agent, STEPS, 0)
    lone.load_state_dict(load(tmp_path / "batch" / "seed_1")["agent"])


POISONED_STEP = 150  # seed 1's critic becomes NaN before the update of this env step


def poison_seed_1(monkeypatch) -> None:
    """Seed 1's critic weights turn NaN at ``POISONED_STEP``: in a batch (seed 1 is its
    second seed then), and in a lone run of seed 1 (its agent's rng is seed 1's)."""
    batch_update, lone_update = BatchedSVGAgent.update, SVGAgent.update
    seed_1_rng = np.random.default_rng(np.random.SeedSequence(1).spawn(2)[0]).bit_generator.state["state"]

    def poison(critic, index=None):
        with torch.no_grad():
            weight = critic.heads.layers[0].weight
            (weight if index is None else weight[index]).fill_(float("nan"))

    def batched(self, replay, step):
        if step == POISONED_STEP:
            poison(self.critic, 1)
        return batch_update(self, replay, step)

    def alone(self, replay, step):
        if step == POISONED_STEP and self.lone_seed == 1:
            poison(self.critic)
        return lone_update(self, replay, step)

    original_init = SVGAgent.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.lone_seed = 1 if self.rng.bit_generator.state["state"] == seed_1_rng else None

    monkeypatch.setattr(BatchedSVGAgent, "update", batched)
    monkeypatch.setattr(SVGAgent, "update", alone)
    monkeypatch.setattr(SVGAgent, "__init__", init)


@pytest.mark.slow
def test_a_diverging_seed_fails_as_alone_and_the_others_go_on_as_alone(tmp_path, monkeypatch):
    poison_seed_1(monkeypatch)
    outcomes = train_batch(
        [config("sac", s, tmp_path) for s in SEEDS], [tmp_path / "batch" / f"seed_{s}" for s in SEEDS]
    )
    assert [type(o.error).__name__ for o in outcomes] == ["NoneType", "DivergenceError", "NoneType"]
    for s in SEEDS:
        with pytest.raises(DivergenceError) if s == 1 else contextlib.nullcontext():
            train_run(config("sac", s, tmp_path), tmp_path / "lone" / f"seed_{s}")
    failed = json.loads((tmp_path / "batch" / "seed_1" / "summary.json").read_text())
    assert failed["status"] == "failed" and failed["diverged"]["step"] >= POISONED_STEP
    assert failed["steps_done"] < STEPS
    assert_close_csv(tmp_path / "batch" / "seed_1" / "train.csv", tmp_path / "lone" / "seed_1" / "train.csv")
    lone_failed = json.loads((tmp_path / "lone" / "seed_1" / "summary.json").read_text())
    assert (failed["diverged"], failed["error"], failed["steps_done"]) == (
        lone_failed["diverged"],
        lone_failed["error"],
        lone_failed["steps_done"],
    )
    for s in (0, 2):  # the others trained to the end as if alone
        assert_written_as_alone(tmp_path / "batch" / f"seed_{s}", tmp_path / "lone" / f"seed_{s}")


# ------------------------------------------------------------------------------------ kill

KILL_STEPS, KILL_SEED_STEPS, KILL_EVAL_EVERY = 600, 300, 150


def command(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness.cli",
        "run",
        "--suite",
        "classic",
        "--task",
        "inverted-pendulum",
        "--agent",
        "sac-svg",
        "--preset",
        "quick",
        "--steps",
        str(KILL_STEPS),
        "--seeds",
        "3",
        "--batch-seeds",
        "3",
        "--out",
        str(out),
        "--wandb",
        "disabled",
        *OVERRIDES[:5],
        f"trainer.seed_steps={KILL_SEED_STEPS}",
        f"trainer.eval_every={KILL_EVAL_EVERY}",
        "trainer.eval_episodes=2",
        "trainer.torch_threads=1",
    ]


def folders(out: Path) -> list[Path]:
    return sorted(out.glob("classic/inverted-pendulum/*/seed_*"))


def kill_when(out: Path, when, log: Path) -> None:
    """Start the batched command, SIGKILL it once ``when(state of seed 2's folder)`` holds."""
    import time  # noqa: PLC0415

    with open(log, "ab") as stderr:
        process = subprocess.Popen(
            command(out), stdout=subprocess.DEVNULL, stderr=stderr, env=environment(), start_new_session=True
        )
    deadline = time.monotonic() + 300
    try:
        while not when(FolderState.read(next(iter(folders(out)[2:]), None))):
            assert process.poll() is None, f"ended before the kill point: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the kill point was never reached"
            time.sleep(0.001)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.slow
def test_a_killed_batch_resumes_exactly(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    with open(tmp_path / "straight.log", "wb") as log:
        uninterrupted = subprocess.Popen(
            command(straight), stdout=subprocess.DEVNULL, stderr=log, env=environment(), start_new_session=True
        )
    try:
        # between checkpoints, with training rows of every seed past the last one (learning already)
        middle = KILL_SEED_STEPS + KILL_EVAL_EVERY // 2
        kill_when(
            killed,
            lambda now: (
                bool(now.train_steps) and now.train_steps[-1] >= middle and now.eval_steps[-1:] == [KILL_SEED_STEPS]
            ),
            tmp_path / "kill.log",
        )
        for folder in folders(killed):
            state = FolderState.read(folder)
            assert state.train_steps[-1] > state.eval_steps[-1] == KILL_SEED_STEPS
        with open(tmp_path / "rerun.log", "ab") as log:
            rerun = subprocess.run(
                command(killed), stdout=subprocess.DEVNULL, stderr=log, env=environment(), timeout=300
            )
        assert rerun.returncode == 0, (tmp_path / "rerun.log").read_text()[-3000:]
        assert (tmp_path / "rerun.log").read_text().count(f"from step {KILL_SEED_STEPS}") == 3
        assert uninterrupted.wait(timeout=300) == 0, (tmp_path / "straight.log").read_text()[-3000:]
    finally:
        if uninterrupted.poll() is None:
            os.killpg(uninterrupted.pid, signal.SIGKILL)
            uninterrupted.wait()
    assert len(folders(straight)) == len(folders(killed)) == 3
    for a, b in zip(folders(straight), folders(killed)):
        for name in ("eval.csv", "train.csv"):
            columns_a, rows_a = read_csv(a / name)
            columns_b, rows_b = read_csv(b / name)
            assert columns_a == columns_b and len(rows_a) == len(rows_b) > 0, (b, name)
            kept = [c for c in columns_a if c not in TIMING_COLUMNS]
            assert [{c: r[c] for c in kept} for r in rows_a] == [{c: r[c] for c in kept} for r in rows_b], (b, name)
        state_a, state_b = load(a), load(b)
        for state in (state_a, state_b):
            state["progress"].pop("wall_time")
            state["env"]["mjdata"] = simulator_state(state["env"]["mjdata"])
        assert differences(state_a, state_b) == [], b
    seeds = [load(folder)["agent"]["actor"]["trunk.0.weight"] for folder in folders(killed)]
    assert not torch.equal(seeds[0], seeds[1])


@pytest.mark.slow
def test_a_search_trains_a_trials_seeds_as_one_batch(tmp_path, monkeypatch):
    """``harness search entropy --batch-seeds``: a trial's two seeds in one batch; the
    objective is their mean final return, as when they train one after another."""
    import harness.batched_trainer  # noqa: PLC0415
    from studies.entropy_search import SearchSettings, Worker  # noqa: PLC0415

    batches = []
    train = harness.batched_trainer.train_batch
    monkeypatch.setattr(
        harness.batched_trainer,
        "train_batch",
        lambda configs, paths, **kw: batches.append(len(paths)) or train(configs, paths, **kw),
    )
    settings = SearchSettings(
        suite="classic",
        task="inverted-pendulum",
        agent="sac",
        preset="quick",
        steps=200,
        seeds=2,
        trials=1,
        out=str(tmp_path),
        batch_seeds=True,
        poll_seconds=0.05,
        overrides=[o for o in OVERRIDES if not o.startswith(("agent.model", "agent.gru", "agent.seq"))],
    )
    worker = Worker(settings, say=lambda line: None)
    worker.run()
    (trial,) = worker.study.get_trials()
    assert trial.state.name == "COMPLETE" and batches == [2]
    finals = [
        json.loads((Path(folder) / "summary.json").read_text())["final_eval_return"]
        for folder in trial.user_attrs["run_folders"]
    ]
    assert trial.value == pytest.approx(sum(finals) / 2)
    assert sorted(trial.intermediate_values) == [100, 200, 300, 400]  # seed k's evaluations at k*T + t


def test_batches_hold_seeds_of_one_task_and_config_in_order(tmp_path):
    from harness.launch import batch_units, plan_jobs  # noqa: PLC0415

    jobs = plan_jobs(
        "classic",
        ["inverted-pendulum", "inverted-double-pendulum"],
        "sac",
        [0, 1, 2],
        "quick",
        "local",
        200,
        str(tmp_path),
        "disabled",
        [],
    )
    units = batch_units(jobs, 2)
    assert [[(job.config.task, job.config.seed) for job in unit] for unit in units] == [
        [("inverted-pendulum", 0), ("inverted-pendulum", 1)],
        [("inverted-pendulum", 2)],
        [("inverted-double-pendulum", 0), ("inverted-double-pendulum", 1)],
        [("inverted-double-pendulum", 2)],
    ]
    assert batch_units(jobs, 1) == [[job] for job in jobs]


@pytest.mark.slow
def test_harness_run_places_batches_of_seeds_in_parallel_jobs(tmp_path):
    command = [
        sys.executable,
        "-m",
        "harness.cli",
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
        str(STEPS),
        "--seeds",
        "3",
        "--batch-seeds",
        "2",
        "--jobs",
        "2",
        "--out",
        str(tmp_path),
        "--wandb",
        "disabled",
        *[o for o in OVERRIDES if not o.startswith(("agent.model", "agent.gru", "agent.seq"))],
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [
        json.loads((folder / "summary.json").read_text())
        for folder in sorted(tmp_path.glob("classic/inverted-pendulum/*/seed_*"))
    ]
    assert [(s["seed"], s["status"], s["steps_done"]) for s in summaries] == [(k, "done", STEPS) for k in SEEDS]
    config_text = next(tmp_path.glob("classic/inverted-pendulum/*/seed_0/config.yaml")).read_text()
    assert "batch_seeds: 2" in config_text


@pytest.mark.slow
def test_submitit_places_a_batch_of_seeds_in_one_job(tmp_path):
    """--launcher submitit (submitit's local executor here): seeds 0 and 1 in one job, seed 2 in another."""
    command = [
        sys.executable,
        "-m",
        "harness.cli",
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
        str(STEPS),
        "--seeds",
        "3",
        "--batch-seeds",
        "2",
        "--out",
        str(tmp_path),
        "--wandb",
        "disabled",
        "--launcher",
        "submitit",
        "--wait",
        "launcher.cluster=local",
        *[o for o in OVERRIDES if not o.startswith(("agent.model", "agent.gru", "agent.seq"))],
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (submission,) = json.loads((tmp_path / "slurm_jobs.json").read_text())["submissions"]
    job_of = {Path(job["serves"]).name: job["job_id"] for job in submission["jobs"]}
    assert job_of["seed_0"] == job_of["seed_1"] != job_of["seed_2"]
    for folder in sorted(tmp_path.glob("classic/inverted-pendulum/*/seed_*")):
        assert json.loads((folder / "summary.json").read_text())["status"] == "done"
