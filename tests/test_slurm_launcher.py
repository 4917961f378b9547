"""``--launcher submitit`` against a real single-node SLURM (tests/slurm_cluster.py): the
launcher's defaults fit a plain node, the command returns once the jobs are queued, a
cancelled job's run resumes from its checkpoint on a rerun, search workers run as jobs, and
an sbatch refusal is one line naming the key to change."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.contract import read_summary
from harness.slurm import explain_refusal
from tests.conftest import TINY_SAC
from tests.test_cli import run_cli, run_folder


def submit(out: Path, steps: int, *more: str) -> tuple[int, str, str]:
    return run_cli(
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
        str(steps),
        "--out",
        str(out),
        "--wandb",
        "disabled",
        "--launcher",
        "submitit",
        *more,
        *TINY_SAC,
    )


def folder_of(out: Path, seed: int = 0) -> Path:
    return run_folder(out, "sac", seed)


def summary_of(folder: Path) -> dict:
    return read_summary(folder) or {}


def wait_until(condition, seconds: float = 120.0) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def queued_ids() -> list[str]:
    return subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.slow
def test_two_seeds_with_the_launcher_defaults_and_wait(slurm_cluster, tmp_path):
    code, stdout, stderr = submit(tmp_path, 200, "--seeds", "2", "--wait")
    assert code == 0, stderr
    for seed in (0, 1):
        summary = summary_of(folder_of(tmp_path, seed))
        assert summary["status"] == "done" and summary["steps_done"] == 200
    manifest = json.loads((tmp_path / "slurm_jobs.json").read_text())
    assert [job["serves"] for job in manifest["submissions"][0]["jobs"]] == [
        str(folder_of(tmp_path, seed).resolve()) for seed in (0, 1)
    ]


@pytest.mark.slow
def test_submit_returns_at_once_and_a_cancelled_run_resumes(slurm_cluster, tmp_path):
    started = time.time()
    code, _, stderr = submit(tmp_path, 100_000)
    assert code == 0, stderr
    assert time.time() - started < 20, "submitting must not wait for the job"
    assert "submitted 1 job(s) to slurm" in stderr and f"harness status {tmp_path}" in stderr
    [job_id] = queued_ids()
    code, stdout, _ = run_cli("status", str(tmp_path))  # the job is listed, its run folder written or not
    assert code == 0, stdout
    row = next(line for line in stdout.splitlines() if f" {job_id} " in f"{line} ")
    words = row.split()  # seed, the run's state, ..., the job and its SLURM state
    assert (words[1], words[-1]) in (("queued", "PENDING"), ("starting", "RUNNING"), ("running", "RUNNING")), row
    assert words[-2] == job_id
    folder = folder_of(tmp_path)
    wait_until(lambda: summary_of(folder).get("evaluations", 0) >= 2)
    subprocess.run(["scancel", job_id], check=True)
    wait_until(lambda: not queued_ids() and summary_of(folder).get("status") == "interrupted", 60)
    step = summary_of(folder)["steps_done"]
    assert step >= 200
    code, _, stderr = submit(tmp_path, 100_000)  # the same command again
    assert code == 0, stderr
    wait_until(lambda: summary_of(folder).get("resumed") is True and summary_of(folder).get("status") == "running")
    [job_id] = queued_ids()
    logs = list((tmp_path / ".submitit" / job_id).glob("*_log.err"))
    wait_until(lambda: any(f"from step {step}" in log.read_text() for log in logs), 30)
    subprocess.run(["scancel", job_id], check=True)
    wait_until(lambda: not queued_ids(), 60)
    steps = [int(line.split(",")[0]) for line in (folder / "eval.csv").read_text().splitlines()[1:]]
    assert steps == list(range(100, steps[-1] + 1, 100)), "evaluations lost or repeated across the resume"


@pytest.mark.slow
def test_an_sbatch_refusal_is_one_line_naming_the_key(slurm_cluster, tmp_path):
    node_gb = int(Path("/proc/meminfo").read_text().split()[1]) // 2**20  # MemTotal, kB -> GiB
    for flags, key in (
        (["--gpus", "1"], "launcher.gpus_per_node (--gpus)"),
        (["--mem", str(node_gb + 1)], "launcher.mem_gb (--mem)"),
        (["--cpus", str(os.cpu_count() + 1)], "launcher.cpus_per_task (--cpus)"),
        (["--partition", "nowhere"], "launcher.partition (--partition)"),
    ):
        code, _, stderr = submit(tmp_path, 200, *flags)
        assert code == 2, (flags, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "sbatch refused the jobs" in lines[0] and key in lines[0], stderr
    assert not (tmp_path / "slurm_jobs.json").exists() and not queued_ids()


@pytest.mark.slow
def test_search_workers_as_slurm_jobs_end_with_exactly_n(slurm_cluster, tmp_path):
    code, stdout, stderr = run_cli(
        "search",
        "entropy",
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
        "--trials",
        "3",
        "--workers",
        "2",
        "--out",
        str(tmp_path),
        "--launcher",
        "submitit",
        "--wait",
        *TINY_SAC,
    )
    assert code == 0, stderr
    study = tmp_path / "entropy-classic-inverted-pendulum-sac"
    rows = (study / "trials.csv").read_text().splitlines()[1:]
    assert len([r for r in rows if ",COMPLETE," in r]) == 3, rows
    manifest = json.loads((study / "slurm_jobs.json").read_text())
    assert len(manifest["submissions"][0]["jobs"]) == 2


@pytest.mark.slow
def test_a_preempted_job_requeues_itself_and_resumes(slurm_cluster, tmp_path):
    code, _, stderr = submit(tmp_path, 100_000)
    assert code == 0, stderr
    folder = folder_of(tmp_path)
    wait_until(lambda: summary_of(folder).get("evaluations", 0) >= 2)
    [job_id] = queued_ids()
    # what SLURM sends before a time limit or a preemption (submitit asks for --signal=USR2@90)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    wait_until(lambda: summary_of(folder).get("resumed") is True and summary_of(folder).get("status") == "running")
    assert queued_ids() == [job_id], "the same job, requeued"
    log = next((tmp_path / ".submitit" / job_id).glob("*_log.err"))
    wait_until(lambda: "resuming" in log.read_text(), 30)
    text = log.read_text()
    # it checkpointed where the signal found it, and the requeued job resumed from exactly there
    step = int(re.search(r"SIGUSR2 at step (\d+); checkpointed", text).group(1))
    assert f"from step {step}" in text
    subprocess.run(["scancel", job_id], check=True)
    wait_until(lambda: not queued_ids(), 60)


@pytest.mark.parametrize(
    "said, key",
    [
        ("Invalid account or account/partition combination specified", "launcher.account (--account)"),
        (
            "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)",
            "launcher.qos (--qos)",
        ),
        (
            "CPU count per task can not be satisfied\nsbatch: error: Batch job submission failed: Requested node "
            "configuration is not available",
            "launcher.cpus_per_task (--cpus)",
        ),
        ("Requested time limit is invalid (missing or exceeds some limit)", "launcher.timeout_min (--time)"),
        ("Invalid partition name specified", "launcher.partition (--partition)"),
    ],
)
def test_sbatch_refusals_name_the_key_to_change(said, key):
    line = explain_refusal(f"sbatch: error: Batch job submission failed: {said}")
    assert line.startswith("sbatch refused the jobs: ") and line.endswith(f"change {key}"), line


def test_an_unreachable_controller_is_one_line():
    line = explain_refusal(
        "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"
    )
    assert (
        line.startswith("cannot reach the SLURM controller (Unable to contact slurm controller")
        and "SLURM_CONF" in line
    )


def test_no_sbatch_on_path_is_one_line_exit_2(tmp_path):
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "WANDB_MODE": "disabled"}
    done = subprocess.run(
        [
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
            "200",
            "--out",
            str(tmp_path / "runs"),
            "--launcher",
            "submitit",
            *TINY_SAC,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr.strip() == "harness: error: --launcher submitit: no SLURM here (sbatch is not on PATH); "
        "launcher.cluster=local runs the jobs with submitit on this machine"
    )


@pytest.mark.slow
def test_wait_exits_1_naming_a_run_that_failed_on_the_node(slurm_cluster, tmp_path):
    code, _, stderr = submit(tmp_path, 300, "--wait", "agent.critic_lr=1e30", "agent.actor_lr=1e30")
    assert code == 1, stderr
    failed = [line for line in stderr.splitlines() if line.startswith("harness: run ")]
    assert len(failed) == 1 and "failed: DivergenceError" in failed[0], stderr
