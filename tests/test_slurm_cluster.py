"""Smoke tests of the single-node SLURM cluster (tests/slurm_cluster.py): real slurmctld,
slurmd and munged, real sbatch/squeue/sacct/scancel/scontrol, and submitit on top.

Skipped with the reason where slurm-wlm/munge are absent or the tests are not root.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import tests.slurm_cluster as sc
from tests.slurm_cluster import Cluster, ClusterError, skip_reason

pytestmark = pytest.mark.timeout(120)


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    """A client command, with the cluster's env (the fixture put it in os.environ)."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check:
        assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _sbatch(*args: str) -> str:
    return _run("sbatch", "--parsable", *args).stdout.strip().split(";")[0]


def _squeue_state(job: str) -> str:
    """RUNNING, PENDING, ... or '' once the job has left the queue."""
    return _run("squeue", "-h", "-j", job, "-o", "%T", check=False).stdout.strip()


def _job_field(job: str, field: str) -> str:
    out = _run("scontrol", "show", "job", job).stdout
    match = re.search(rf"\b{field}=(\S*)", out)
    assert match, out
    return match.group(1)


def _wait(predicate, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _sacct_states(job: str) -> list[str]:
    """Job states as submitit reads them (sacct -o JobID,State,NodeList --parsable2 -j ID)."""
    out = _run("sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", job).stdout
    return [line.split("|")[1] for line in out.splitlines()[1:] if line.split("|")[0] == job]


def test_node_is_this_machine(slurm_cluster: Cluster) -> None:
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf)
    out = _run("sinfo", "-h", "-N", "-o", "%N %c %m %T %P").stdout.split()
    assert out == [slurm_cluster.node, str(os.cpu_count()), str(slurm_cluster.memory_mb), "idle", "debug*"]
    assert slurm_cluster.running().keys() == {"munged", "slurmctld", "slurmd"}


def test_batch_job_runs_and_sacct_reports_it(slurm_cluster: Cluster, tmp_path: Path) -> None:
    done = tmp_path / "done"
    job = _sbatch("-o", str(tmp_path / "%j.out"), "--wrap", f"echo $SLURM_JOB_ID > {done}")
    _wait(lambda: done.exists() and _squeue_state(job) == "", what=f"job {job} to finish")
    assert done.read_text().strip() == job
    _wait(lambda: _sacct_states(job) == ["COMPLETED"], timeout=10, what="sacct COMPLETED")
    assert _job_field(job, "NodeList") == slurm_cluster.node


@pytest.mark.parametrize(
    "request_args, message",
    [
        (["--gres=gpu:1"], "Invalid generic resource (gres) specification"),
        (["--gpus-per-node=1"], "Invalid generic resource (gres) specification"),
        (["--mem=100G"], "Memory specification can not be satisfied"),
        # the launcher defaults: a GPU and 16 GB
        (["--gres=gpu:1", "--mem=16G"], "Invalid generic resource (gres) specification"),
        (["--cpus-per-task=4096"], "More processors requested than permitted"),
    ],
)
def test_impossible_requests_are_refused(
    slurm_cluster: Cluster, request_args: list[str], message: str, tmp_path: Path
) -> None:
    before = _run("squeue", "-h", "-o", "%A").stdout.split()
    proc = _run("sbatch", *request_args, "-o", str(tmp_path / "%j.out"), "--wrap", "true", check=False)
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr
    assert _run("squeue", "-h", "-o", "%A").stdout.split() == before


def test_scancel_a_sleeping_job(slurm_cluster: Cluster, tmp_path: Path) -> None:
    job = _sbatch("-o", str(tmp_path / "%j.out"), "--wrap", "sleep 300")
    _wait(lambda: _squeue_state(job) == "RUNNING", what=f"job {job} to run")
    _run("scancel", job)
    _wait(lambda: _squeue_state(job) == "", what=f"job {job} to leave the queue")
    assert _job_field(job, "JobState") == "CANCELLED"
    _wait(lambda: _sacct_states(job)[-1:] == ["CANCELLED"], timeout=10, what="sacct CANCELLED")


def test_scontrol_requeue_restarts_a_running_job(slurm_cluster: Cluster, tmp_path: Path) -> None:
    out = tmp_path / "requeue.out"
    job = _sbatch("-o", str(out), "--open-mode=append", "--wrap", 'echo "run ${SLURM_RESTART_COUNT:-0}"; sleep 300')
    _wait(lambda: _squeue_state(job) == "RUNNING", what=f"job {job} to run")
    _wait(lambda: "run 0" in out.read_text() if out.exists() else False, what="first run")
    _run("scontrol", "requeue", job)
    # a requeued job may restart after cred_expire (5 s here)
    _wait(
        lambda: _job_field(job, "Restarts") == "1" and _squeue_state(job) == "RUNNING",
        timeout=40,
        what=f"job {job} to run again",
    )
    _wait(lambda: "run 1" in out.read_text(), what="second run")
    assert _sacct_states(job)[:1] == ["PENDING"]  # the requeue is in the completion log
    _run("scancel", job)
    _wait(lambda: _squeue_state(job) == "", what=f"job {job} to leave the queue")


def test_submitit_runs_a_function(slurm_cluster: Cluster, tmp_path: Path) -> None:
    submitit = pytest.importorskip("submitit")

    def where(x: int) -> tuple[int, str, str]:  # nested: cloudpickle ships it by value
        return x * 2, os.environ["SLURM_JOB_ID"], os.environ["SLURM_JOB_PARTITION"]

    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(gpus_per_node=0, mem_gb=1, cpus_per_task=1, timeout_min=5)
    job = executor.submit(where, 21)
    assert job.result() == (42, job.job_id, "debug")
    # submitit's own sacct call; the result file may come a moment before the job's record
    _wait(
        lambda: job.get_info(mode="force").get("State") == "COMPLETED",
        timeout=10,
        what="submitit's sacct to say COMPLETED",
    )


def test_submitit_sees_a_cancelled_job(slurm_cluster: Cluster, tmp_path: Path) -> None:
    """Without a working sacct, submitit would wait forever on a job that wrote no result."""
    submitit = pytest.importorskip("submitit")
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(gpus_per_node=0, mem_gb=1, cpus_per_task=1, timeout_min=5)
    job = executor.submit(time.sleep, 300)
    _wait(lambda: _squeue_state(job.job_id) == "RUNNING", what=f"job {job.job_id} to run")
    job.cancel()
    _wait(lambda: job.done(force_check=True), timeout=30, what="submitit to see the job end")
    assert job.state.startswith("CANCELLED")


def test_start_twice_stop_twice_restart(tmp_path: Path) -> None:
    """A second cluster (its own folder, ports and munged) beside the session's one."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="svgbench-slurm2-", dir="/tmp"))
    cluster = Cluster(folder)
    try:
        cluster.start()
        with pytest.raises(ClusterError, match="already running in"):
            Cluster(folder).start()
        env = {**os.environ, **cluster.env}
        first = subprocess.run(
            ["sbatch", "--parsable", "-o", str(folder / "%j.out"), "--wrap", "true"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert "stopped" in cluster.stop()
        assert not cluster.running()
        assert "nothing to stop" in cluster.stop()
        key = (folder / "munge" / "munge.key").read_bytes()
        with Cluster(folder).start() as again:
            assert (folder / "munge" / "munge.key").read_bytes() == key
            second = subprocess.run(
                ["sbatch", "--parsable", "-o", str(folder / "%j.out"), "--wrap", "true"],
                env={**os.environ, **again.env},
                capture_output=True,
                text=True,
                check=True,
            )
            assert int(second.stdout.split(";")[0]) > int(first.stdout.split(";")[0])
        assert not Cluster(folder).running()
        assert (folder / "log" / "slurmctld.log").exists()  # stop deletes nothing
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_script_start_status_stop(tmp_path: Path) -> None:
    """The command line as a user runs it: eval the start output, then stop (twice)."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="svgbench-slurm3-", dir="/tmp"))
    script = [sys.executable, str(Path(__file__).with_name("slurm_cluster.py"))]
    try:
        shell = (
            f'eval "$({shlex.join(script)} start {folder})" && sinfo -h -o %T '
            f"&& sbatch --parsable --wait -o /dev/null --wrap true && sacct -n -X -o State -j 1 "
            f"&& {shlex.join(script)} start {folder}"
        )
        proc = subprocess.run(
            ["bash", "-c", shell],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if k not in ("SLURM_CONF", "PATH")} | {"PATH": os.defpath},
        )
        assert proc.returncode == 1, proc.stderr  # the second start is refused
        assert proc.stdout.split() == ["idle", "1", "COMPLETED"], proc.stdout
        err = proc.stderr.strip().splitlines()
        assert err[0].startswith(f"slurm cluster up in {folder}: node "), err
        assert err[-1].startswith(f"error: a slurm cluster is already running in {folder} ("), err
        status = subprocess.run([*script, "status", str(folder)], capture_output=True, text=True)
        assert status.returncode == 0 and "slurmctld pid" in status.stdout, status
        for expected in ("stopped", "nothing to stop"):
            stop = subprocess.run([*script, "stop", str(folder)], capture_output=True, text=True)
            assert stop.returncode == 0 and expected in stop.stderr, stop
            assert len(stop.stderr.strip().splitlines()) == 1
    finally:
        Cluster(folder).stop()
        shutil.rmtree(folder, ignore_errors=True)


def test_missing_packages_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        sc.shutil,
        "which",
        lambda name, path=None: None if name in ("munged", "slurmd") else real_which(name, path=path),
    )
    reason = sc.skip_reason()
    assert reason and "slurmd (slurm-wlm), munged (munge)" in reason
    with pytest.raises(ClusterError, match=r"not installed: slurmd \(slurm-wlm\), munged"):
        sc.start_cluster(tmp_path / "c")
    assert not (tmp_path / "c").exists()  # nothing written


def test_not_root_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if sc.find_binaries()[1]:
        pytest.skip("slurm-wlm/munge absent: the missing packages are named first")
    monkeypatch.setattr(sc.os, "geteuid", lambda: 1000)
    assert "root" in (sc.skip_reason() or "")
    with pytest.raises(ClusterError, match="run this as root"):
        sc.start_cluster(tmp_path / "c")
