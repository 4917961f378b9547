"""Job planning and launching: every (task, seed) of a command is one job, run in local
processes or as one submitit (SLURM) job array. A job trains, resumes or skips its run.
With ``launcher.batch_seeds`` S > 1 the seeds of one (task, agent, config) are placed in
batches of S jobs, each batch trained by one process as one computation
(``harness.batched_trainer``): a process, a local slot or an array task runs a batch.

Local: Ctrl-C reaches this process alone (each run's process has a group of its own); it
asks each running run to checkpoint and stop, starts no new run, and raises
KeyboardInterrupt once they have. SLURM: the command submits, records the jobs in the
output folder's manifest and returns; ``wait`` blocks until they end.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import shutil
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import slurm
from harness.config import (
    ConfigError,
    LauncherConfig,
    RunConfig,
    build_run_config,
    from_yaml,
    override_label,
    scientific_differences,
    to_dict,
)
from harness.contract import DONE, RunBusyError, is_locked, run_path
from harness.process import ThreadChoice, available_cores, choose_threads, core_share, pin_to_cores
from harness.rundir import CheckpointError, RunDirectory


@dataclass
class Job:
    config: RunConfig
    path: Path
    start_over: str = ""  # --force: why the run folder is deleted before this job runs


@dataclass
class JobResult:
    path: Path
    status: str  # done | skipped | failed | interrupted | busy | submitted | queued
    message: str = ""
    summary: dict[str, Any] = field(default_factory=dict)
    job_id: str = ""


def plan_jobs(
    suite: str,
    tasks: list[str],
    agent: str,
    seeds: list[int],
    preset: str,
    launcher: str,
    steps: int | None,
    out: str,
    wandb: str,
    overrides: list[str],
    force: bool = False,
) -> list[Job]:
    """Build and check every job's config. A run folder holding another config is refused,
    or with ``force`` marked to be started over (``Job.start_over`` says why)."""
    label = override_label(overrides)
    jobs = []
    for task in tasks:
        for seed in seeds:
            config = build_run_config(
                suite,
                task,
                agent,
                seed,
                preset=preset,
                launcher=launcher,
                steps=steps,
                out=out,
                wandb=wandb,
                overrides=overrides,
            )
            path = run_path(out, suite, task, agent, seed, label)
            conflict = _config_conflict(path, config)
            if conflict and not force:
                raise ConfigError(
                    f"{path} holds a run with another config ({conflict}); use another --out, "
                    f"the same settings, or --force to delete that run and start over"
                )
            jobs.append(Job(config, path, start_over=conflict))
    return jobs


def _config_conflict(path: Path, config: RunConfig) -> str:
    """Why the run stored at ``path`` is not this config's run ("" when it is, or none is)."""
    stored = RunDirectory(path).stored_config_text()
    if stored is None:
        return ""
    try:
        stored_dict = to_dict(from_yaml(stored))
    except Exception as error:  # noqa: BLE001 - any unreadable config is refused alike
        return f"its config.yaml is unreadable: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
    return "; ".join(scientific_differences(stored_dict, to_dict(config))[:3])


def start_over(jobs: list[Job], say: Callable[[str], None]) -> None:
    """Delete the run folders ``--force`` replaces, saying what each held; a run another
    process is training is refused (nothing deleted)."""
    doomed = [job for job in jobs if job.start_over]
    for job in doomed:
        if is_locked(job.path):
            raise ConfigError(f"--force: {job.path} is being trained by another process; not deleting it")
    if doomed:  # a queued SLURM job would train its old config into the new folder
        ids, states = slurm.recorded_job_states(doomed[0].config.out, [str(job.path.resolve()) for job in doomed])
        for path, job_id in ids.items():
            if states.may_be_queued(job_id):
                raise ConfigError(
                    f"--force: {path} has SLURM job {job_id} queued or running "
                    f"({states.of(job_id) or states.note}); scancel it first"
                )
    for job in doomed:
        summary = RunDirectory(job.path).read_summary() or {}
        files = sorted(p.name + ("/" if p.is_dir() else "") for p in job.path.iterdir())
        say(
            f"--force: deleting {job.path} ({job.start_over}; status {summary.get('status', 'unknown')}, "
            f"step {summary.get('steps_done', 0)}): {', '.join(files)}"
        )
        shutil.rmtree(job.path)
        job.start_over = ""


def execute_job(job: Job) -> JobResult:
    """Run one job to completion in this process; never raises but KeyboardInterrupt."""
    from harness.trainer import train_run  # noqa: PLC0415 - keeps the CLI's start-up light

    run_dir = RunDirectory(job.path)
    summary = run_dir.read_summary()
    if summary and summary.get("status") == DONE:
        return JobResult(job.path, "skipped", "already done", summary)
    try:
        summary = train_run(job.config, job.path)
        return JobResult(job.path, "done", "", summary)
    except RunBusyError:  # refused before anything was written: that run's folder is untouched
        return JobResult(
            job.path,
            "busy",
            "another process is training it; this command left it untouched",
            run_dir.read_summary() or {},
        )
    except KeyboardInterrupt:
        raise
    except CheckpointError as error:  # refused before training: the run's files stay as they were
        return JobResult(job.path, "failed", str(error).splitlines()[0], run_dir.read_summary() or {})
    except Exception as error:  # noqa: BLE001 - reported to the user as one line
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        try:
            (job.path / "error.log").write_text(traceback.format_exc())  # the full traceback beside the run
        except OSError:  # a full disk: the one line still reaches the user
            pass
        return JobResult(job.path, "failed", message, run_dir.read_summary() or {})


def execute_batch(jobs: list[Job]) -> list[JobResult]:
    """Train seeds of one (task, agent, config) as one batch in this process; a result per
    job, as ``execute_job`` gives it. Never raises but KeyboardInterrupt."""
    from harness.batched_trainer import train_batch  # noqa: PLC0415 - keeps the CLI's start-up light

    try:
        outcomes = train_batch([job.config for job in jobs], [job.path for job in jobs])
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - before any seed trained (building the envs or the batch)
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        return [JobResult(job.path, "failed", message, RunDirectory(job.path).read_summary() or {}) for job in jobs]
    results = []
    for job, outcome in zip(jobs, outcomes):
        summary = RunDirectory(job.path).read_summary() or {}
        if outcome.error is None:
            results.append(JobResult(job.path, "done", "", outcome.summary or summary))
        elif isinstance(outcome.error, RunBusyError):
            results.append(
                JobResult(job.path, "busy", "another process is training it; this command left it untouched", summary)
            )
        else:
            if outcome.trace and not isinstance(outcome.error, CheckpointError):
                try:
                    (job.path / "error.log").write_text(outcome.trace)  # the full traceback beside the run
                except OSError:
                    pass
            message = (
                str(outcome.error)
                if isinstance(outcome.error, CheckpointError)
                else f"{type(outcome.error).__name__}: {outcome.error}"
            )
            results.append(JobResult(job.path, "failed", message.splitlines()[0], summary))
    return results


def execute_unit(unit: list[Job]) -> list[JobResult]:
    """A job alone (``execute_job``) or a batch of seeds (``execute_batch``)."""
    return [execute_job(unit[0])] if len(unit) == 1 else execute_batch(unit)


def batch_units(jobs: list[Job], batch_seeds: int) -> list[list[Job]]:
    """``jobs`` in the units one process trains: batches of at most ``batch_seeds`` seeds of
    one (task, agent, config), in order (single jobs when ``batch_seeds`` <= 1)."""
    units: list[list[Job]] = []
    for job in jobs:
        last = units[-1] if units else None
        if last and len(last) < batch_seeds and last[0].path.parent == job.path.parent:
            last.append(job)
        else:
            units.append([job])
    return units


class LaunchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the command; ``results`` are what each run reached."""

    def __init__(self, results: list[JobResult]) -> None:
        super().__init__()
        self.results = results


def launch(
    jobs: list[Job], launcher: LauncherConfig, wait: bool = True, say: Callable[[str], None] = print
) -> list[JobResult]:
    """Run every job not already done; finished runs are reported as skipped, untouched.
    With the submitit launcher, ``wait`` False returns once the jobs are queued."""
    summaries = [RunDirectory(job.path).read_summary() or {} for job in jobs]
    pending = [job for job, summary in zip(jobs, summaries) if summary.get("status") != DONE]
    results = [
        JobResult(job.path, "skipped", "already done", summary)
        for job, summary in zip(jobs, summaries)
        if summary.get("status") == DONE
    ]
    if not pending:
        return results
    if launcher.name == "submitit":
        return results + _launch_submitit(pending, launcher, wait, say)
    units = batch_units(pending, launcher.batch_seeds)
    at_once = runs_at_once(launcher, len(units))
    if at_once == 1:
        done: list[JobResult] = []
        for unit in units:
            try:
                done.extend(execute_unit(unit))
            except KeyboardInterrupt:
                raise LaunchInterrupted(results + done + [_interrupted(job) for job in unit]) from None
        return results + done
    return results + _launch_processes(units, at_once)


def runs_at_once(launcher: LauncherConfig, pending: int) -> int:
    """How many of ``pending`` runs (or batches of seeds) ``launch`` trains at once locally;
    1: one after another, in this process, on every core it may use."""
    return 1 if launcher.jobs <= 1 or pending <= 1 else min(launcher.jobs, pending)


@dataclass
class LocalPlacement:
    """How ``launch`` trains the jobs still to train on this machine: in ``units`` (single
    runs, or batches of seeds), ``at_once`` of them at a time, each with ``threads`` torch
    threads on its share of the cores."""

    pending: list[Job]
    units: list[list[Job]]
    at_once: int
    threads: ThreadChoice


def local_placement(jobs: list[Job]) -> LocalPlacement | None:
    """The placement of ``jobs`` not yet done when launched locally; the runs of one command
    share their settings, so the first unit's thread choice (``choose_threads`` on its share
    of the cores) is every unit's. None when all are done."""
    pending = [job for job in jobs if (RunDirectory(job.path).read_summary() or {}).get("status") != DONE]
    if not pending:
        return None
    config = pending[0].config
    units = batch_units(pending, config.launcher.batch_seeds)
    at_once = runs_at_once(config.launcher, len(units))
    cores = core_share(0, at_once, available_cores())
    threads = choose_threads(config.trainer.torch_threads, config.agent, cores, seeds=len(units[0]))
    return LocalPlacement(pending, units, at_once, threads)


def _interrupted(job: Job) -> JobResult:
    summary = RunDirectory(job.path).read_summary() or {}
    return JobResult(job.path, "interrupted", f"checkpointed at step {summary.get('steps_done', 0)}", summary)


def _job_process(unit: list[Job], results: Any, cores: list[int]) -> None:
    """One local run (or batch of seeds) in a process of its own, on its share of the cores (so its torch
    threads, chosen for that share, do not contend with the other runs'): Ctrl-C at the terminal
    reaches the parent only (its own process group), which forwards it once; a child whose
    parent dies is sent SIGTERM (Linux), so it checkpoints too."""
    os.setpgrp()
    pin_to_cores(cores)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # the parent's forwarded Ctrl-C, even if inherited ignored
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    try:
        for result in execute_unit(unit):
            results.put(result)
    except KeyboardInterrupt:
        for job in unit:
            results.put(_interrupted(job))


def _launch_processes(units: list[list[Job]], at_once: int) -> list[JobResult]:
    """Run ``units`` in at most ``at_once`` processes, one process per run (or batch of
    seeds). Ctrl-C starts no new run and forwards one SIGINT to each running one (it
    checkpoints and stops); a second Ctrl-C forwards another (it stops at once, keeping its
    last checkpoint)."""
    context = multiprocessing.get_context("spawn")
    results_queue = context.Queue()
    pending: list[list[Job]] = list(units)
    running: dict[Any, list[Job]] = {}
    cores, free_slots = available_cores(), list(range(at_once))  # slot k runs on the k-th share of the cores
    slots: dict[Any, int] = {}
    done: dict[Path, JobResult] = {}
    stopping = False

    def collect(block: bool) -> None:
        try:
            result = results_queue.get(timeout=0.2 if block else 0)
            done[result.path] = result
        except queue.Empty:
            pass

    # Ctrl-C must reach this loop even where SIGINT was inherited ignored (a shell's background job)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while running or (pending and not stopping):
            try:
                while pending and len(running) < at_once and not stopping:
                    unit, slot = pending.pop(0), free_slots.pop(0)
                    process = context.Process(
                        target=_job_process, args=(unit, results_queue, core_share(slot, at_once, cores))
                    )
                    process.start()
                    running[process] = unit
                    slots[process] = slot
                collect(block=True)
                for process in [p for p in running if not p.is_alive()]:
                    process.join()
                    collect(block=False)
                    free_slots.append(slots.pop(process))
                    for job in running.pop(process):
                        if job.path not in done:  # died without a word (killed): a rerun resumes it
                            done[job.path] = JobResult(
                                job.path,
                                "failed",
                                f"its process exited with code {process.exitcode}",
                                RunDirectory(job.path).read_summary() or {},
                            )
            except KeyboardInterrupt:
                stopping = True
                for process in running:
                    _signal(process.pid, signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, previous)
    while True:  # results put just before a process ended
        before = len(done)
        collect(block=False)
        if len(done) == before:
            break
    results = [
        done.get(job.path)
        or JobResult(
            job.path, "not started", "interrupted before it started", RunDirectory(job.path).read_summary() or {}
        )
        for unit in units
        for job in unit
    ]
    if stopping:
        raise LaunchInterrupted(results)
    return results


def _signal(pid: int | None, number: int) -> None:
    try:
        if pid is not None:
            os.kill(pid, number)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------------------------ SLURM


def _launch_submitit(
    jobs: list[Job], launcher: LauncherConfig, wait: bool, say: Callable[[str], None]
) -> list[JobResult]:
    out = Path(jobs[0].config.out)
    ids, states = slurm.recorded_job_states(out, [str(job.path.resolve()) for job in jobs])
    if ids and not states.queue_read:  # a queued job submitted again would train twice
        raise slurm.SubmissionRefused(
            f"cannot read the SLURM queue ({states.note}), so cannot tell which of "
            f"these runs are still queued; not submitting anything"
        )
    results, to_submit = [], []
    for job in jobs:
        job_id = ids.get(str(job.path.resolve()), "")
        if job_id and states.may_be_queued(job_id):
            results.append(
                JobResult(
                    job.path, "queued", f"already queued as SLURM job {job_id} ({states.of(job_id)})", job_id=job_id
                )
            )
        elif is_locked(job.path):
            results.append(JobResult(job.path, "busy", "another process here is training it"))
        else:
            to_submit.append(job)
    if not to_submit:
        return results
    first = to_submit[0].config
    executor = slurm.make_executor(launcher, out / slurm.LOG_FOLDER, f"svgbench-{first.suite}-{first.agent.name}")
    if executor.cluster == "slurm" and launcher.jobs <= 0:
        executor.update_parameters(slurm_array_parallelism=len(to_submit))
    units = batch_units(to_submit, launcher.batch_seeds)  # one array task per run, or per batch of seeds
    handles = slurm.submit_array(executor, ResumableJob(), units)
    submitted = [(h, j) for h, unit in zip(handles, units) for j in unit]
    manifest = slurm.record_submission(
        out, "run", [(h.job_id, str(j.path.resolve())) for h, j in submitted], executor.cluster
    )
    job_ids = [h.job_id for h in handles]
    say(f"submitted {len(job_ids)} job(s) to {executor.cluster}: {', '.join(job_ids)}; recorded in {manifest}")
    if not wait:
        say(
            f"follow them with: harness status {out}   (logs: {out / slurm.LOG_FOLDER}/<job id>/); "
            f"rerunning this command resubmits only runs that are neither done nor queued"
        )
        return results + [
            JobResult(j.path, "submitted", f"SLURM job {h.job_id}", job_id=h.job_id) for h, j in submitted
        ]
    return results + [result for handle, unit in zip(handles, units) for result in _wait_for(handle, unit)]


def _wait_for(handle: Any, unit: list[Job]) -> list[JobResult]:
    try:
        results = handle.result()
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - cancelled, killed or failed on the node
        return [
            JobResult(
                job.path,
                "failed",
                f"SLURM job {handle.job_id}: {slurm.first_line(error)}",
                RunDirectory(job.path).read_summary() or {},
                job_id=handle.job_id,
            )
            for job in unit
        ]
    for result in results:
        result.job_id = handle.job_id
    return results


class ResumableJob:
    """A submitit callable that, on preemption or time-out, requeues itself: the requeued
    job resumes its runs (one, or a batch of seeds) from their last checkpoints."""

    def __call__(self, unit: list[Job]) -> list[JobResult]:
        try:
            return execute_unit(unit)
        except KeyboardInterrupt:  # scancel's SIGTERM: the runs checkpointed and are marked interrupted
            return [_interrupted(job) for job in unit]

    def checkpoint(self, unit: list[Job]) -> Any:
        import submitit  # noqa: PLC0415 - only a requeued SLURM job needs it

        return submitit.helpers.DelayedSubmission(self, unit)
