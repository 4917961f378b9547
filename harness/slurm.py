"""SLURM through submitit: submitting job arrays with what the user asked for, the manifest
of submitted jobs in the output folder, the jobs' states, and sbatch refusals as one line.

The manifest (``<out>/slurm_jobs.json``) lists every submission: its job ids and the run
folders (or search worker) each job serves. ``harness status`` joins it with ``squeue`` and
``sacct`` so a user sees a queued job before its run folder exists.
"""

from __future__ import annotations

import contextlib
import getpass
import io
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import ConfigError, LauncherConfig
from harness.contract import atomic_write_bytes

MANIFEST_FILE = "slurm_jobs.json"
LOG_FOLDER = ".submitit"
# SLURM job states in which the job will still run (or is running): a rerun must not submit it again
ACTIVE_STATES = (
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "RESIZING",
    "SUSPENDED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "SIGNALING",
    "STAGE_OUT",
)


class SubmissionRefused(ConfigError):
    """sbatch refused the jobs, or no SLURM controller answered: exit 2, naming what to change."""


# (pattern in sbatch's error, what it means, the launcher key and flag to change), the most
# specific first: "accounting/QOS policy" names the QoS, "account/partition combination" the
# account, "CPU count per task" (said before "node configuration") the CPUs
_REFUSALS = [
    (r"gres|generic resource|gpu", "a GPU (GRES) this cluster does not offer", "launcher.gpus_per_node (--gpus)"),
    (r"qos|quality of service", "a QoS (or limits of it) SLURM does not allow you", "launcher.qos (--qos)"),
    (r"account", "an account SLURM does not know for you (or not on this partition)", "launcher.account (--account)"),
    (r"memory specification|\bmem", "more memory than a node has", "launcher.mem_gb (--mem)"),
    (r"partition", "a partition that does not exist or you may not use", "launcher.partition (--partition)"),
    (r"time limit", "a time limit above the partition's", "launcher.timeout_min (--time)"),
    (r"processors|cpu", "more CPUs than a node has", "launcher.cpus_per_task (--cpus)"),
    (
        r"node configuration",
        "more CPUs or memory than any node has",
        "launcher.cpus_per_task (--cpus) or launcher.mem_gb (--mem)",
    ),
]
_UNREACHABLE = (
    r"unable to contact slurm controller|connection refused|slurm_load_|socket timed out|"
    r"could not establish a configuration source|cannot open|munge"
)


def explain_refusal(stderr: str) -> str:
    """One line naming why sbatch refused (its own words) and the launcher key to change."""
    lines = [
        re.sub(r"^(sbatch:\s*error:\s*)?(Batch job submission failed:\s*)?", "", line.strip())
        for line in stderr.splitlines()
        if line.strip()
    ]
    errors = [line for line in lines if line] or ["(sbatch said nothing)"]
    said = errors[-1]
    for line in errors:
        if re.search(_UNREACHABLE, line.lower()):
            return (
                f"cannot reach the SLURM controller ({line}); check that SLURM runs here and SLURM_CONF, "
                f"or use --launcher local"
            )
    for pattern, meaning, key in _REFUSALS:
        for line in errors:
            if re.search(pattern, line.lower()):
                return f"sbatch refused the jobs: {line} (they ask for {meaning}); change {key}"
    return f"sbatch refused the jobs: {said}; check the launcher settings (harness run --help, launcher.*)"


def make_executor(launcher: LauncherConfig, folder: Path, name: str) -> Any:
    """A submitit executor asking for exactly what ``launcher`` says: no GPU unless asked."""
    import submitit  # noqa: PLC0415 - only the submitit launcher needs it

    if launcher.cluster is None and shutil.which("sbatch") is None:
        raise SubmissionRefused(
            "--launcher submitit: no SLURM here (sbatch is not on PATH); "
            "launcher.cluster=local runs the jobs with submitit on this machine"
        )
    executor = submitit.AutoExecutor(
        folder=folder / "%j", cluster=launcher.cluster, slurm_max_num_timeout=launcher.max_requeues
    )
    parameters: dict[str, Any] = {
        "name": name,
        "timeout_min": launcher.timeout_min,
        "cpus_per_task": launcher.cpus_per_task,
        "mem_gb": launcher.mem_gb,
    }
    if launcher.gpus_per_node:
        parameters["gpus_per_node"] = launcher.gpus_per_node
    if executor.cluster == "slurm":
        parameters["slurm_array_parallelism"] = max(1, launcher.jobs)
        for key in ("partition", "account", "qos"):
            value = getattr(launcher, key)
            if value:
                parameters[f"slurm_{key}"] = value
    executor.update_parameters(**parameters)
    return executor


def submit_array(executor: Any, function: Callable[[Any], Any], arguments: list[Any]) -> list[Any]:
    """Submit one array job; an sbatch refusal becomes one :class:`SubmissionRefused` line."""
    from submitit.core.utils import FailedJobError  # noqa: PLC0415 - only the submitit launcher needs it

    try:
        # submitit prints sbatch's stderr before raising; the refusal is said once, below
        with contextlib.redirect_stderr(io.StringIO()):
            return list(executor.map_array(function, arguments))
    except FailedJobError as error:
        raise SubmissionRefused(explain_refusal(str(error))) from error
    except (OSError, subprocess.SubprocessError) as error:
        raise SubmissionRefused(explain_refusal(f"sbatch: error: {error}")) from error


# ---------------------------------------------------------------------------------- manifest


def manifest_path(out: str | Path) -> Path:
    return Path(out) / MANIFEST_FILE


def read_manifest(out: str | Path) -> list[dict[str, Any]]:
    """Every submission recorded in ``out`` (oldest first); an unreadable manifest reads as none."""
    path = manifest_path(out)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return data.get("submissions", []) if isinstance(data, dict) else []


def record_submission(out: str | Path, kind: str, jobs: Iterable[tuple[str, str]], cluster: str) -> Path:
    """Append one submission: ``jobs`` are (job id, what it serves: a run folder or a worker name)."""
    path = manifest_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    submissions = read_manifest(out)
    submissions.append(
        {
            "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "kind": kind,
            "cluster": cluster,
            "jobs": [{"job_id": job_id, "serves": serves} for job_id, serves in jobs],
        }
    )
    atomic_write_bytes(path, json.dumps({"submissions": submissions}, indent=2).encode())
    return path


def latest_jobs(out: str | Path) -> dict[str, str]:
    """What each recorded SLURM job serves -> the id of its latest job (submissions to
    submitit's local or debug executor are processes here, not queued jobs: left out)."""
    latest: dict[str, str] = {}
    for submission in read_manifest(out):
        if submission.get("cluster") != "slurm":
            continue
        for job in submission.get("jobs", []):
            latest[str(job["serves"])] = str(job["job_id"])
    return latest


def find_manifests(root: Path) -> list[Path]:
    """Folders under (or at) ``root`` holding a manifest."""
    root = Path(root)
    found = [root] if manifest_path(root).exists() else []
    return found + sorted(p.parent for p in root.rglob(MANIFEST_FILE) if p.parent != root)


# ---------------------------------------------------------------------------------- job states


@dataclass(frozen=True)
class JobStates:
    """SLURM states by job id; ``queue_read`` False when squeue could not be read (then no
    state is known); ``note`` says why some could not be read (e.g. no accounting)."""

    states: dict[str, str]
    queue_read: bool = True
    note: str = ""

    def of(self, job_id: str) -> str:
        return self.states.get(job_id, "")

    def may_be_queued(self, job_id: str) -> bool:
        """Whether the job may still run: queued or running, or unknown because the queue
        could not be read (then submitting it again could train one run twice)."""
        return self.of(job_id) in ACTIVE_STATES or not self.queue_read


def recorded_job_states(out: str | Path, serves: Iterable[str] | None = None) -> tuple[dict[str, str], JobStates]:
    """The latest recorded SLURM job of each of ``serves`` that has one (of every recorded
    one when None), and those jobs' states."""
    latest = latest_jobs(out)
    ids = latest if serves is None else {key: latest[key] for key in serves if key in latest}
    return ids, query_states(ids.values())


def first_line(error: BaseException) -> str:
    """What a job's error says first (submitit's errors open with blank lines)."""
    return next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)


def query_states(job_ids: Iterable[str], env: dict[str, str] | None = None) -> JobStates:
    """States from ``squeue`` (this user's jobs still queued or running; a job no longer
    listed has ended) and ``sacct`` (how ended jobs ended, where the cluster keeps
    accounting). Array task ids look like ``123_4``."""
    ids = sorted(set(job_ids))
    if not ids:
        return JobStates({})
    if shutil.which("squeue") is None:
        return JobStates({}, False, "squeue not found: SLURM job states unavailable here")
    env = env or dict(os.environ)
    queue = _run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"], env)
    if queue is None:
        return JobStates({}, False, "squeue failed: is SLURM reachable from here? job states unknown")
    listed = _parse_pairs(queue)
    states = {i: listed[i] for i in ids if i in listed}
    missing = [i for i in ids if i not in states]
    note = ""
    if missing and shutil.which("sacct"):
        ended = _run(
            [
                "sacct",
                "-n",
                "-X",
                "-P",
                "-o",
                "JobID,State",
                "-j",
                ",".join(sorted({i.split("_")[0] for i in missing})),
            ],
            env,
        )
        if ended is None:
            note = "sacct failed (no job accounting?): ended jobs show as 'ended'"
        else:
            states.update({k: v for k, v in _parse_pairs(ended).items() if k in missing})
    for job_id in missing:
        states.setdefault(job_id, "ended")
    return JobStates(states, True, note)


def _run(command: list[str], env: dict[str, str]) -> str | None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _parse_pairs(text: str) -> dict[str, str]:
    pairs = {}
    for line in text.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id and state:
            pairs[job_id] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    return pairs
