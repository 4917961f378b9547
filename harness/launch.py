"""Job planning and launching: every (task, seed) of a command is one job, run in local
processes or as a submitit (SLURM) job array. A job trains, resumes or skips its run."""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import (ConfigError, LauncherConfig, RunConfig, build_run_config, from_yaml,
                            override_label, scientific_differences, to_dict, to_yaml)
from harness.rundir import RunDirectory, run_path


@dataclass
class Job:
    config: RunConfig
    path: Path


@dataclass
class JobResult:
    path: Path
    status: str  # done | skipped | failed
    message: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


def plan_jobs(suite: str, tasks: list[str], agent: str, seeds: list[int], preset: str, launcher: str,
              steps: int | None, out: str, wandb: str, overrides: list[str]) -> list[Job]:
    """Build and check every job's config; refuse a run folder that holds another config."""
    label = override_label(overrides)
    jobs = []
    for task in tasks:
        for seed in seeds:
            config = build_run_config(suite, task, agent, seed, preset=preset, launcher=launcher, steps=steps,
                                      out=out, wandb=wandb, overrides=overrides)
            path = run_path(out, suite, task, agent, seed, label)
            stored = RunDirectory(path).stored_config_text()
            if stored is not None:
                try:
                    stored_dict = to_dict(from_yaml(stored))
                except Exception as error:  # noqa: BLE001 - any unreadable config is refused alike
                    raise ConfigError(f"{path}/config.yaml is unreadable ({error}); not touching that run") from error
                differences = scientific_differences(stored_dict, to_dict(config))
                if differences:
                    raise ConfigError(f"{path} holds a run with another config ({'; '.join(differences[:3])}); "
                                      f"use another --out or the same settings")
            jobs.append(Job(config, path))
    return jobs


def execute_job(job: Job) -> JobResult:
    """Run one job to completion in this process; never raises."""
    from harness.trainer import train_run  # noqa: PLC0415 - keeps the CLI's start-up light

    run_dir = RunDirectory(job.path)
    summary = run_dir.read_summary()
    if summary and summary.get("status") == "done":
        return JobResult(job.path, "skipped", "already done", summary)
    try:
        if run_dir.stored_config_text() is None:
            run_dir.write_config(to_yaml(job.config))
        summary = train_run(job.config, job.path)
        return JobResult(job.path, "done", "", summary)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - reported to the user as one line
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        if job.path.exists():  # the full traceback beside the run, the one line for the user
            (job.path / "error.log").write_text(traceback.format_exc())
        return JobResult(job.path, "failed", message, run_dir.read_summary() or {})


def launch(jobs: list[Job], launcher: LauncherConfig) -> list[JobResult]:
    """Run every job not already done; finished runs are reported as skipped, untouched."""
    summaries = [RunDirectory(job.path).read_summary() or {} for job in jobs]
    pending = [job for job, summary in zip(jobs, summaries) if summary.get("status") != "done"]
    results = [JobResult(job.path, "skipped", "already done", summary)
               for job, summary in zip(jobs, summaries) if summary.get("status") == "done"]
    if not pending:
        return results
    if launcher.name == "submitit":
        return results + _launch_submitit(pending, launcher)
    if launcher.jobs <= 1 or len(pending) == 1:
        return results + [execute_job(job) for job in pending]
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(max_workers=launcher.jobs, mp_context=context) as pool:
        return results + list(pool.map(execute_job, pending))


def _launch_submitit(jobs: list[Job], launcher: LauncherConfig) -> list[JobResult]:
    import submitit  # noqa: PLC0415

    folder = Path(jobs[0].config.out) / ".submitit"
    executor = submitit.AutoExecutor(folder=folder, cluster=launcher.cluster)
    parameters: dict[str, Any] = {"timeout_min": launcher.timeout_min, "cpus_per_task": launcher.cpus_per_task,
                                  "gpus_per_node": launcher.gpus_per_node, "mem_gb": launcher.mem_gb}
    if executor.cluster == "slurm":
        parameters["slurm_array_parallelism"] = max(1, launcher.jobs)
        if launcher.partition:
            parameters["slurm_partition"] = launcher.partition
    executor.update_parameters(**parameters)
    submitted = executor.map_array(ResumableJob(), jobs)
    return [handle.result() for handle in submitted]


class ResumableJob:
    """A submitit callable that, on preemption or time-out, requeues itself: the requeued
    job resumes the run from its last checkpoint."""

    def __call__(self, job: Job) -> JobResult:
        return execute_job(job)

    def checkpoint(self, job: Job) -> Any:
        import submitit  # noqa: PLC0415

        return submitit.helpers.DelayedSubmission(self, job)
