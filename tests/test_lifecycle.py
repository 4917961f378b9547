"""A run's life as a user sees it: Ctrl-C checkpoints and marks runs interrupted (exit 130),
a rerun says where it resumes, the progress rate ignores the random-action phase, and the
paper preset on a CPU says what a step costs."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import lifecycle
from harness.contract import read_summary
from harness.lifecycle import ProgressBar, StepCost
from tests.conftest import TINY_SAC
from tests.test_cli import read_csv, run_cli, run_folder

RUN = [
    "run",
    "--suite",
    "classic",
    "--task",
    "inverted-pendulum",
    "--agent",
    "sac",
    "--preset",
    "quick",
    "--wandb",
    "disabled",
    *TINY_SAC,
]


def folder(out: Path, seed: int = 0) -> Path:
    return run_folder(out, "sac", seed)


def summary(path: Path) -> dict:
    return read_summary(path) or {}


def interrupt_after(out: Path, steps: int, evaluations: int, *more: str) -> subprocess.CompletedProcess:
    """Start ``harness run``, press Ctrl-C (SIGINT) once ``evaluations`` rows are written."""
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", *RUN, "--steps", str(steps), "--out", str(out), *more],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while (
        time.time() < deadline
        and min(summary(folder(out, s)).get("evaluations", 0) for s in range(2 if "--jobs" in more else 1))
        < evaluations
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # the command ignored Ctrl-C: fail, and leave no process behind
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(f"harness run did not stop within 120 s of Ctrl-C:\n{stderr}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.slow
def test_ctrl_c_checkpoints_marks_interrupted_and_the_rerun_resumes_to_the_same_result(tmp_path):
    stopped = interrupt_after(tmp_path / "a", 1500, 3)
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.strip().endswith("rerun the same command to resume"), stopped.stderr
    assert "Traceback" not in stopped.stderr
    run = folder(tmp_path / "a")
    state = summary(run)
    assert state["status"] == "interrupted" and state["interrupted_by"] == "SIGINT"
    step = state["steps_done"]
    assert 300 <= step < 1500
    code, _, stderr = run_cli(*RUN, "--steps", "1500", "--out", str(tmp_path / "a"))
    assert code == 0, stderr
    assert f"resuming {run} from step {step}" in stderr  # the checkpoint Ctrl-C wrote, not the last evaluation's
    assert summary(run)["status"] == "done"
    code, _, stderr = run_cli(*RUN, "--steps", "1500", "--out", str(tmp_path / "b"))
    assert code == 0, stderr
    straight = folder(tmp_path / "b")

    def drop(rows, key):
        return [{k: v for k, v in r.items() if k != key} for r in rows]

    assert drop(read_csv(run / "eval.csv"), "wall_time") == drop(read_csv(straight / "eval.csv"), "wall_time")
    assert drop(read_csv(run / "train.csv"), "steps_per_second") == drop(
        read_csv(straight / "train.csv"), "steps_per_second"
    )


@pytest.mark.slow
def test_ctrl_c_with_parallel_jobs_interrupts_every_run_in_flight_and_starts_no_other(tmp_path):
    stopped = interrupt_after(tmp_path, 3000, 2, "--seeds", "3", "--jobs", "2")
    assert stopped.returncode == 130, stopped.stderr
    assert "rerun the same command to resume" in stopped.stderr and "Traceback" not in stopped.stderr
    for seed in (0, 1):
        state = summary(folder(tmp_path, seed))
        assert state["status"] == "interrupted" and state["interrupted_by"] == "SIGINT", state
        assert (folder(tmp_path, seed) / "checkpoint" / "state.pt").exists()
    assert not folder(tmp_path, 2).exists(), "a run started after Ctrl-C"
    assert "not started" in stopped.stdout


def test_all_seed_steps_is_warned(tmp_path):
    code, _, stderr = run_cli(*RUN, "--steps", "60", "--out", str(tmp_path), "trainer.eval_every=60")
    assert code == 0, stderr
    assert "60 steps <= trainer.seed_steps=100: every step acts at random and nothing is learned" in stderr


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_rate_covers_learning_steps_only(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(lifecycle.time, "perf_counter", clock)
    bar = ProgressBar(total=1000, initial=0, seed_steps=100, enabled=False, desc="t")
    for step in range(1, 101):  # random actions: 1000 steps/s
        clock.now += 0.001
        bar.update(step)
    assert bar.rate is None
    for step in range(101, 201):  # learning: 20 steps/s
        clock.now += 0.05
        bar.update(step)
    assert bar.rate == pytest.approx(20.0)
    bar.close()


def test_the_paper_preset_on_a_cpu_says_what_a_step_costs_from_the_first_learning_step(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(lifecycle.time, "perf_counter", clock)
    said: list[str] = []
    cost = StepCost(total_steps=1_000_000, enabled=True)
    for step in range(1001, 1001 + StepCost.MEASURED_STEPS + 3):
        cost.start()
        clock.now += 3.0 if step == 1001 else 2.0  # the first step also warms up
        cost.stop(step, said.append)
        if step == 1001:  # said at once, not minutes later, and marked provisional
            assert len(said) == 1 and "provisional" in said[0], said
            assert "the first learning step's updates took 3.00 s here" in said[0]
            assert "998,999 steps left would take about 34.7 days" in said[0] and "GPU" in said[0]
    assert len(said) == 2, said  # then once more, on the median of the measured steps
    assert "one env step's updates take 2.00 s here" in said[1] and "provisional" not in said[1]
    assert "998,995 steps left would take about 23.1 days" in said[1] and "GPU" in said[1]


def test_a_run_that_compiles_its_update_says_only_the_median_step_cost(monkeypatch):
    """Its first steps compile the update (tens of seconds): a provisional line from the
    first would predict a run many times too long."""
    clock = FakeClock()
    monkeypatch.setattr(lifecycle.time, "perf_counter", clock)
    said: list[str] = []
    cost = StepCost(total_steps=100_000, enabled=True, provisional=False)
    for step in range(1001, 1001 + StepCost.MEASURED_STEPS):
        cost.start()
        clock.now += 40.0 if step in (1001, 1002) else 0.05  # compiling, then compiled steps
        cost.stop(step, said.append)
        if step < 1000 + StepCost.MEASURED_STEPS:
            assert said == []
    assert len(said) == 1 and "one env step's updates take 0.05 s here" in said[0], said
    assert "98,995 steps left would take about 82 minutes" in said[0]


@pytest.mark.parametrize(
    "seconds, shown",
    [
        (59, "00:59"),
        (3 * 3600 + 5, "3:00:05"),
        (86399, "23:59:59"),
        (9847 * 3600 + 35 * 60 + 30, "410 d 7 h"),
        (86400, "1 d 0 h"),
    ],
)
def test_time_left_says_days_beyond_one(seconds, shown):
    assert lifecycle.time_left(seconds) == shown


def test_the_progress_bar_counts_down_a_paper_run_in_days(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(lifecycle.time, "perf_counter", clock)
    bar = ProgressBar(total=5_000_000, initial=0, seed_steps=10, enabled=False, desc="t")
    for step in range(1, 31):  # learning from step 11 at 0.14 steps/s: 5M steps take 413 days
        clock.now += 1 / 0.14 if step > 10 else 0.001
        bar.update(step)
    assert bar.rate == pytest.approx(0.14)
    assert bar.bar.postfix.endswith("0.1 steps/s, 413 d 8 h left"), bar.bar.postfix
    bar.close()
