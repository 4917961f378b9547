"""``harness run`` and ``harness status``: train (or resume) the runs of a suite, agent
and seeds, locally or on SLURM, and show where they stand."""

from __future__ import annotations

import math
from pathlib import Path

import click

from baselines import AGENTS, get_agent
from harness.commands.common import (
    WANDB_MODES,
    HarnessFailure,
    check_out_folder,
    console,
    launcher_settings,
    slurm_options,
)
from harness.config import ConfigError, agent_override_warnings, flatten_config_file, random_only_problem
from harness.suites import SUITES, get_suite
from harness.video import VideoError, probe_rendering


@click.command("run", context_settings={"ignore_unknown_options": False})
@click.option("--suite", required=True, help=f"One of: {', '.join(SUITES)}.")
@click.option("--agent", required=True, help=f"One of: {', '.join(AGENTS)}.")
@click.option("--task", "tasks", multiple=True, help="A task of the suite (repeatable); default: all.")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1), help="Seeds 0..N-1.")
@click.option("--preset", default="paper", show_default=True, help="paper | quick | authors-code.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Env steps per run (default: preset/task).")
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False), help="Output root.")
@click.option("--launcher", default="local", show_default=True, help="local | submitit (SLURM).")
@click.option(
    "--jobs",
    default=None,
    type=click.IntRange(min=1),
    help="local: runs at once (default 1); submitit: most jobs running at once (default: no limit).",
)
@click.option(
    "--batch-seeds",
    type=click.IntRange(min=1),
    default=None,
    help="Train up to N seeds of a task as one batched computation in one process "
    "(launcher.batch_seeds; --jobs and SLURM then place batches).",
)
@click.option("--force", is_flag=True, help="Delete a run folder that holds another config and start over.")
@click.option("--wandb", "wandb_mode", default="offline", show_default=True, type=click.Choice(WANDB_MODES))
@click.option(
    "--config",
    "config_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="YAML file of settings (e.g. from `harness search best`), applied before OVERRIDES.",
)
@click.option(
    "--video",
    is_flag=True,
    help="Record the first episode of every evaluation as RUN/videos/step_<n>.mp4 (trainer.video=true).",
)
@slurm_options
@click.argument("overrides", nargs=-1)
def run_command(
    suite,
    agent,
    tasks,
    seeds,
    preset,
    steps,
    out,
    launcher,
    jobs,
    batch_seeds,
    force,
    wandb_mode,
    config_files,
    video,
    wait,
    overrides,
    **slurm_flags,
) -> None:
    """Train AGENT on every (task, seed) of SUITE; rerunning resumes or skips.

    OVERRIDES are Hydra key=value settings, e.g. agent.horizon=3 trainer.eval_episodes=5.
    With --launcher submitit the jobs are queued on SLURM and the command returns (--wait
    blocks); `harness status OUT` follows them.
    """
    from harness.launch import LaunchInterrupted, launch, plan_jobs, start_over
    from harness.run_tables import print_results

    overrides = (
        (["trainer.video=true"] if video else [])
        + [o for path in config_files for o in flatten_config_file(path)]
        + list(overrides)
    )
    suite_tasks = get_suite(suite)
    get_agent(agent)
    for line in agent_override_warnings(agent, overrides):
        click.echo(f"harness: warning: {line}", err=True)
    settings = list(overrides) + launcher_settings(launcher, jobs, slurm_flags, wait)
    if batch_seeds is not None:
        settings.append(f"launcher.batch_seeds={batch_seeds}")
    chosen = list(dict.fromkeys(tasks)) or list(suite_tasks)
    job_list = plan_jobs(
        suite, chosen, agent, list(range(seeds)), preset, launcher, steps, out, wandb_mode, settings, force=force
    )
    problem = random_only_problem(job_list[0].config.trainer) if job_list else None
    if problem:
        click.echo(f"harness: warning: {problem}; raise --steps or lower trainer.seed_steps", err=True)
    if launcher != "submitit":  # a SLURM node renders with its own back-end: checked there
        check_video_rendering(job_list)
    check_out_folder(out)
    start_over(job_list, say=lambda line: click.echo(f"harness: {line}", err=True))
    threads = threads_line(job_list, launcher)
    if threads and launcher != "submitit":  # said before the runs start
        click.echo(f"harness: {threads}", err=True)
        hint = idle_cores_hint(job_list)
        if hint:
            click.echo(f"harness: {hint}", err=True)
        compiled = compile_line(job_list)
        if compiled:
            click.echo(f"harness: {compiled}", err=True)
    try:
        results = launch(
            job_list,
            job_list[0].config.launcher,
            wait=wait or launcher != "submitit",
            say=lambda line: click.echo(f"harness: {line}", err=True),
        )
    except LaunchInterrupted as stopped:
        print_results(console(), stopped.results)
        click.echo(
            "harness: interrupted; runs in flight were checkpointed and marked interrupted; "
            "rerun the same command to resume",
            err=True,
        )
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        if launcher == "submitit":
            click.echo(f"harness: stopped waiting; the SLURM jobs go on: harness status {out}", err=True)
        else:
            click.echo("harness: interrupted; rerun the same command to resume", err=True)
        raise SystemExit(130) from None
    if threads and launcher == "submitit":  # said once the jobs are queued: a refusal stays one line
        click.echo(f"harness: {threads}", err=True)
    print_results(console(), results)
    verbs = {
        "failed": "failed",
        "busy": "was refused",
        "interrupted": "was interrupted (SLURM job cancelled?)",
        "not started": "did not start",
    }
    failed = [r for r in results if r.status in verbs]
    if failed:
        for result in failed:
            click.echo(f"harness: run {result.path} {verbs[result.status]}: {result.message}", err=True)
        raise HarnessFailure()


def threads_line(jobs: list, launcher: str) -> str:
    """How many torch threads each run of ``harness run`` uses, and why: the first run's
    choice on its share of the cores (the runs of one command share their settings), or on
    SLURM, the node's. "" when every run is done."""
    from harness.launch import local_placement

    placement = local_placement(jobs)
    if placement is None:
        return ""
    choice = placement.threads
    how_to_change = "" if choice.by_user else "; set trainer.torch_threads=N to change"
    if launcher == "submitit" and not choice.by_user:
        cpus = jobs[0].config.launcher.cpus_per_task
        return (
            f"each run chooses its torch threads on its SLURM node: one per CPU of its job "
            f"(SLURM_CPUS_PER_TASK, here --cpus {cpus}){how_to_change}"
        )
    plural = "s" if choice.count != 1 else ""
    who = "each batch of seeds" if jobs[0].config.launcher.batch_seeds > 1 else "each run"
    return f"{who} uses {choice.count} torch thread{plural} ({choice.reason}{how_to_change})"


def compile_line(jobs: list) -> str:
    """When ``agent.compile=auto`` compiles the runs' whole update (long runs on a CPU), the
    line that says so before they start: compiling takes seconds to a minute at the start
    of each run. "" otherwise (a mode the user named, or "auto" choosing "off"). The runs of
    one command may differ in length (a suite's tasks have their own budgets): the line
    counts those that compile."""
    from agents.agent import resolve_device
    from agents.compile import AUTO_UPDATE_MIN_STEPS, choose_compile_mode
    from harness.launch import local_placement

    placement = local_placement(jobs)
    if placement is None:
        return ""
    config = placement.pending[0].config
    if config.agent.compile != "auto" or config.launcher.batch_seeds > 1:  # a batch runs eagerly
        return ""
    device = resolve_device(config.agent.device)
    steps = [job.config.trainer.total_steps for job in placement.pending]
    choices = [choose_compile_mode("auto", device, int(n)) for n in steps if n is not None]
    compiling = [choice for choice in choices if choice.mode == "update"]
    if not compiling:
        return ""
    if len(compiling) == len(placement.pending):
        who, why = "each run compiles its", compiling[0].reason
    else:
        who = f"{len(compiling)} of the {len(placement.pending)} runs compile their"
        why = f"agent.compile=auto: those of {AUTO_UPDATE_MIN_STEPS} env steps or more, on a CPU"
    return (
        f"{who} whole update with torch.compile ({why}; 10-40 s at its start, "
        "seconds once cached); set agent.compile=off to change"
    )


def idle_cores_hint(jobs: list, cores: list[int] | None = None) -> str:
    """With seeds batched on this machine's CPU, a hint when the batches trained at once
    leave cores idle: one batch keeps one thread at the quick preset's sizes, where a second
    thread does not pay, and N batches on N cores are faster than one batch (measured in
    docs/performance.md, "Seeds batched in one process"). "" otherwise. ``cores``: the
    cores this command may use (default: ``available_cores()``)."""
    from agents.agent import resolve_device
    from harness.launch import local_placement
    from harness.process import available_cores

    placement = local_placement(jobs)
    if placement is None or len(placement.pending) < 2:
        return ""
    config, seeds = placement.pending[0].config, len(placement.pending)
    if config.launcher.batch_seeds <= 1 or placement.threads.by_user:
        return ""
    cores = cores if cores is not None else available_cores()
    idle = len(cores) - placement.at_once * placement.threads.count
    if idle <= 0 or resolve_device(config.agent.device).type != "cpu":
        return ""
    batches = min(len(cores), seeds)
    size = math.ceil(seeds / batches)
    split = (
        f"--batch-seeds {size} --jobs {batches} trains these {seeds} seeds as {batches} batches at once"
        if size > 1
        else f"--jobs {batches} without --batch-seeds trains these {seeds} seeds as lone runs at once"
    )
    return (
        f"{idle} of the {len(cores)} cores {'stays' if idle == 1 else 'stay'} idle; on a CPU, {split}, "
        'faster than one batch (docs/performance.md, "Seeds batched")'
    )


def check_video_rendering(jobs: list) -> None:
    """Where runs record videos, draw one frame of each of their tasks before any run
    starts: a machine that cannot render off-screen is one line, and nothing is written."""
    checked = set()
    for job in jobs:
        trainer = job.config.trainer
        key = (job.config.suite, job.config.task, trainer.video_width, trainer.video_height)
        if not trainer.video or key in checked:
            continue
        checked.add(key)
        try:
            problem = probe_rendering(*key[:2], (trainer.video_width, trainer.video_height))
        except VideoError as error:
            problem = str(error)
        if problem:
            raise ConfigError(f"--video: {problem}")


@click.command("status")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def status_command(run_dir: str) -> None:
    """The runs under RUN_DIR, one table per experiment: state, steps, returns, wall time and,
    for runs submitted to SLURM, the job and its state."""
    from harness.run_tables import print_run_tables
    from harness.status import collect_status

    report = collect_status(Path(run_dir))
    if not report.runs and not report.workers:
        raise ConfigError(f"no runs (summary.json files) or submitted jobs under {run_dir}")
    out = console()
    print_run_tables(out, report.runs)
    for what, job_id, state in report.workers:
        out.print(f"{what}: SLURM job {job_id} {state}", highlight=False)
    if report.note:
        out.print(f"({report.note})", highlight=False)
