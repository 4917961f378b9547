"""The ``harness`` command: list, run, status, report, search, study, bench.

Errors are one line on stderr: exit 2 for bad usage (unknown names, bad overrides, a run
folder holding another config), exit 1 when a run fails.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from baselines import AGENTS
from harness.config import ConfigError, RunFailure, agent_override_warnings, launchers, presets
from harness.names import unknown_name
from harness.suites import SUITES, get_suite

WANDB_MODES = ["offline", "online", "disabled"]


def console() -> Console:
    """A console as wide as the terminal, or wide enough that piped tables keep whole paths."""
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console()
    return Console(width=240)


class HarnessFailure(Exception):
    """A run failed: exit 1."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """svgbench: reproduce and extend model-based SAC-SVG(H) (Amos et al., 2021)."""


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(as_json: bool) -> None:
    """Agents, presets, suites and tasks with their sizes, budgets and per-task settings."""
    listing = {
        "agents": {name: {"description": v.description, "settings": v.settings} for name, v in AGENTS.items()},
        "presets": presets(),
        "suites": {suite: [spec.summary() for spec in tasks.values()] for suite, tasks in SUITES.items()},
    }
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    out = console()
    agents = Table(title="agents")
    agents.add_column("agent")
    agents.add_column("what it is")
    for name, variant in AGENTS.items():
        agents.add_row(name, variant.description)
    out.print(agents)
    out.print(f"presets: {', '.join(presets())}")
    for suite, tasks in SUITES.items():
        table = Table(title=f"suite {suite}")
        for column in ("task", "env", "obs", "act", "budget", "eval every", "H", "target entropy (init, final, beta)"):
            table.add_column(column)
        for spec in tasks.values():
            e = spec.paper.entropy
            table.add_row(spec.name, spec.env_id, str(spec.obs_dim), str(spec.act_dim), f"{spec.budget:,}",
                          f"{spec.eval_every:,}", str(spec.paper.horizon),
                          f"{e.init:g}, {e.final:g}, {'-' if e.decay is None else f'{e.decay:g}'}")
        out.print(table)


def _slurm_options(command):
    """What each SLURM job asks for (``--launcher submitit``); each flag sets a launcher.* key."""
    options = [
        click.option("--wait", is_flag=True, help="submitit: block until every job ends (exit 1 naming failed runs)."),
        click.option("--gpus", type=click.IntRange(min=0), default=None, help="submitit: GPUs per job (default 0)."),
        click.option("--partition", default=None, help="submitit: SLURM partition (default: the cluster's)."),
        click.option("--time", "time_min", type=click.IntRange(min=1), default=None,
                     help="submitit: minutes per job before it checkpoints and requeues (default 4320)."),
        click.option("--cpus", type=click.IntRange(min=1), default=None, help="submitit: CPUs per job (default 1)."),
        click.option("--mem", "mem_gb", type=click.IntRange(min=1), default=None,
                     help="submitit: memory per job in GB (default 4)."),
        click.option("--account", default=None, help="submitit: SLURM account."),
        click.option("--qos", default=None, help="submitit: SLURM quality of service."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


SLURM_FLAGS = {"gpus": "gpus_per_node", "partition": "partition", "time_min": "timeout_min", "cpus": "cpus_per_task",
               "mem_gb": "mem_gb", "account": "account", "qos": "qos"}


def launcher_settings(launcher: str, jobs: int | None, slurm_flags: dict, wait: bool) -> list[str]:
    """The launcher.* settings of the command's flags; SLURM flags and ``--wait`` need
    ``--launcher submitit``."""
    if launcher not in launchers():
        raise ConfigError(unknown_name("launcher", launcher, launchers()))
    if wait and launcher != "submitit":
        raise ConfigError("--wait only applies to --launcher submitit (a local command always waits)")
    given = {name: value for name, value in slurm_flags.items() if value not in (None, False)}
    if launcher != "submitit" and given:
        flags = ", ".join("--" + name.replace("_min", "").replace("_gb", "") for name in given)
        raise ConfigError(f"{flags} only apply to --launcher submitit")
    settings = [] if jobs is None else [f"launcher.jobs={jobs}"]
    return settings + [f"launcher.{SLURM_FLAGS[name]}={value}" for name, value in given.items() if name in SLURM_FLAGS]


def check_out_folder(out: str) -> None:
    """Refuse an output folder that cannot be created or written, before any run starts."""
    import tempfile  # noqa: PLC0415

    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise ConfigError(f"cannot write to --out {out}: {error.strerror or error}") from error


@cli.command("run", context_settings={"ignore_unknown_options": False})
@click.option("--suite", required=True, help=f"One of: {', '.join(SUITES)}.")
@click.option("--agent", required=True, help=f"One of: {', '.join(AGENTS)}.")
@click.option("--task", "tasks", multiple=True, help="A task of the suite (repeatable); default: all.")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1), help="Seeds 0..N-1.")
@click.option("--preset", default="paper", show_default=True, help="paper | quick | authors-code.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Env steps per run (default: preset/task).")
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False), help="Output root.")
@click.option("--launcher", default="local", show_default=True, help="local | submitit (SLURM).")
@click.option("--jobs", default=None, type=click.IntRange(min=1),
              help="local: runs at once (default 1); submitit: most jobs running at once (default: no limit).")
@click.option("--force", is_flag=True, help="Delete a run folder that holds another config and start over.")
@click.option("--wandb", "wandb_mode", default="offline", show_default=True, type=click.Choice(WANDB_MODES))
@click.option("--config", "config_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="YAML file of settings (e.g. from `harness search best`), applied before OVERRIDES.")
@click.option("--video", is_flag=True,
              help="Record the first episode of every evaluation as RUN/videos/step_<n>.mp4 (trainer.video=true).")
@_slurm_options
@click.argument("overrides", nargs=-1)
def run_command(suite, agent, tasks, seeds, preset, steps, out, launcher, jobs, force, wandb_mode, config_files,
                video, wait, overrides, **slurm_flags) -> None:
    """Train AGENT on every (task, seed) of SUITE; rerunning resumes or skips.

    OVERRIDES are Hydra key=value settings, e.g. agent.horizon=3 trainer.eval_episodes=5.
    With --launcher submitit the jobs are queued on SLURM and the command returns (--wait
    blocks); `harness status OUT` follows them.
    """
    from baselines import get_agent  # noqa: PLC0415
    from harness.config import flatten_config_file  # noqa: PLC0415
    from harness.launch import LaunchInterrupted, launch, plan_jobs, start_over  # noqa: PLC0415
    from harness.run_tables import print_results  # noqa: PLC0415

    overrides = (["trainer.video=true"] if video else []) + [
        o for path in config_files for o in flatten_config_file(path)] + list(overrides)
    suite_tasks = get_suite(suite)
    get_agent(agent)
    for line in agent_override_warnings(agent, overrides):
        click.echo(f"harness: warning: {line}", err=True)
    settings = list(overrides) + launcher_settings(launcher, jobs, slurm_flags, wait)
    chosen = list(dict.fromkeys(tasks)) or list(suite_tasks)
    job_list = plan_jobs(suite, chosen, agent, list(range(seeds)), preset, launcher, steps, out, wandb_mode,
                         settings, force=force)
    for job in job_list[:1]:
        trainer = job.config.trainer
        if trainer.total_steps <= trainer.seed_steps:
            click.echo(f"harness: warning: {trainer.total_steps} steps <= trainer.seed_steps={trainer.seed_steps}: "
                       f"every step acts at random and nothing is learned; raise --steps or lower "
                       f"trainer.seed_steps", err=True)
    if launcher != "submitit":  # a SLURM node renders with its own back-end: checked there
        check_video_rendering(job_list)
    check_out_folder(out)
    start_over(job_list, say=lambda line: click.echo(f"harness: {line}", err=True))
    threads = threads_line(job_list, launcher)
    if threads and launcher != "submitit":  # said before the runs start
        click.echo(f"harness: {threads}", err=True)
    try:
        results = launch(job_list, job_list[0].config.launcher, wait=wait or launcher != "submitit",
                         say=lambda line: click.echo(f"harness: {line}", err=True))
    except LaunchInterrupted as stopped:
        print_results(console(), stopped.results)
        click.echo("harness: interrupted; runs in flight were checkpointed and marked interrupted; "
                   "rerun the same command to resume", err=True)
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
    verbs = {"failed": "failed", "busy": "was refused", "interrupted": "was interrupted (SLURM job cancelled?)",
             "not started": "did not start"}
    failed = [r for r in results if r.status in verbs]
    if failed:
        for result in failed:
            click.echo(f"harness: run {result.path} {verbs[result.status]}: {result.message}", err=True)
        raise HarnessFailure()


def threads_line(jobs: list, launcher: str) -> str:
    """How many torch threads each run of ``harness run`` uses, and why: the first run's
    choice on its share of the cores (the runs of one command share their settings), or on
    SLURM, the node's. "" when every run is done."""
    from harness.launch import first_run_threads  # noqa: PLC0415

    choice = first_run_threads(jobs)
    if choice is None:
        return ""
    how_to_change = "" if choice.by_user else "; set trainer.torch_threads=N to change"
    if launcher == "submitit" and not choice.by_user:
        cpus = jobs[0].config.launcher.cpus_per_task
        return (f"each run chooses its torch threads on its SLURM node: one per CPU of its job "
                f"(SLURM_CPUS_PER_TASK, here --cpus {cpus}){how_to_change}")
    plural = "s" if choice.count != 1 else ""
    return f"each run uses {choice.count} torch thread{plural} ({choice.reason}{how_to_change})"


@cli.command("status")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def status_command(run_dir: str) -> None:
    """The runs under RUN_DIR, one table per experiment: state, steps, returns, wall time and,
    for runs submitted to SLURM, the job and its state."""
    from harness.run_tables import print_run_tables  # noqa: PLC0415
    from harness.status import collect_status  # noqa: PLC0415

    report = collect_status(Path(run_dir))
    if not report.runs and not report.workers:
        raise ConfigError(f"no runs (summary.json files) or submitted jobs under {run_dir}")
    out = console()
    print_run_tables(out, report.runs)
    for what, job_id, state in report.workers:
        out.print(f"{what}: SLURM job {job_id} {state}", highlight=False)
    if report.note:
        out.print(f"({report.note})", highlight=False)


@cli.command("replay")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--checkpoint", default="latest", show_default=True, type=click.Choice(["latest", "best"]),
              help="The latest checkpoint, or the agent of the evaluation with the best mean return.")
@click.option("--episodes", type=click.IntRange(min=1), default=None,
              help="Episodes to play (default: the run's trainer.eval_episodes).")
@click.option("--seed", type=int, default=None, help="Seed of the first reset (default: that evaluation's seed).")
@click.option("--video", type=click.Path(dir_okay=False), default=None, help="Film every episode into this mp4.")
@click.option("--size", default=None, help="Video WIDTHxHEIGHT (default: the run's, 320x240).")
@click.option("--device", default=None, help="cpu, cuda (default: the run's device if this machine has it).")
def replay_command(run_dir, checkpoint, episodes, seed, video, size, device) -> None:
    """Play a trained policy of RUN_DIR (a seed_<n> folder) deterministically: each episode's
    return and length, and optionally a video. With the defaults, the episodes are those
    of the checkpoint's evaluation and give its returns."""
    from harness.playback import describe, load_policy, play, summary_line  # noqa: PLC0415
    from harness.process import prepare_training_process  # noqa: PLC0415
    from harness.rundir import CheckpointError  # noqa: PLC0415
    from harness.video import VideoError  # noqa: PLC0415

    frame_size = _video_size(size)
    if video is not None and Path(video).suffix.lower() != ".mp4":
        raise ConfigError(f"--video {video}: the file must end in .mp4")
    if device is not None:
        _check_device(device)
    try:
        policy = load_policy(Path(run_dir), checkpoint, device)
    except CheckpointError as error:
        raise ConfigError(str(error)) from error
    prepare_training_process(policy.config.trainer.torch_threads, policy.config.agent)
    click.echo(describe(policy))
    for note in policy.notes:
        click.echo(f"harness: note: {note}", err=True)
    first_seed = policy.default_seed if seed is None else seed
    count = episodes or policy.config.trainer.eval_episodes
    click.echo(f"seed {first_seed}, {count} episode{'s' if count != 1 else ''}, deterministic policy")
    try:
        played, film = play(policy, count, first_seed, Path(video) if video else None, frame_size)
    except VideoError as error:
        raise ConfigError(f"--video: {error}") from error
    except KeyboardInterrupt:
        click.echo("harness: interrupted" + (f"; no video written to {video}" if video else ""), err=True)
        raise SystemExit(130) from None
    click.echo(f"{'episode':>7}  {'return':>12}  {'length':>6}")
    for number, episode in enumerate(played, start=1):
        click.echo(f"{number:>7}  {episode.total_return:>12.3f}  {episode.length:>6}")
    click.echo(summary_line(played, policy, first_seed))
    if film is not None:
        width, height = film.size
        click.echo(f"video: {video} ({film.frames} frames, {width}x{height}, {film.fps} fps)")


def _video_size(text: str | None) -> tuple[int, int] | None:
    """``--size WIDTHxHEIGHT`` as (width, height); None when not given."""
    from harness.video import check_video_size  # noqa: PLC0415

    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"--size {text!r}: write WIDTHxHEIGHT, e.g. 640x480")
    width, height = int(parts[0]), int(parts[1])
    problem = check_video_size(width, height)
    if problem:
        raise ConfigError(f"--size {text}: {problem}")
    return width, height


@cli.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="The HTML file to write (self-contained, opens offline).")
@click.option("--reps", type=click.IntRange(min=10), default=None,
              help="Bootstrap replications of the intervals (default: rliable's, 50000).")
@click.option("--json", "json_output", default=None, type=click.Path(dir_okay=False),
              help="Also write the tables' numbers (one record per experiment and task), warnings and "
                   "search results to this JSON file.")
def report_command(run_dirs: tuple[str, ...], output: str, reps: int | None, json_output: str | None) -> None:
    """One HTML report comparing the runs under RUN_DIRS with the published numbers.

    RUN_DIRS may be run folders, folders holding them, or study folders (a search panel each).
    Runs are averaged as seeds only when their configs differ in the seed alone.
    """
    from reports.aggregate import DEFAULT_REPS  # noqa: PLC0415
    from reports.html import write_numbers, write_report  # noqa: PLC0415
    from reports.load import find_run_folders  # noqa: PLC0415
    from studies.contract import find_study_folders  # noqa: PLC0415

    paths = [Path(p) for p in run_dirs]
    if not find_run_folders(paths) and not find_study_folders(paths):
        raise ConfigError(f"no runs (summary.json files) or studies (study.json) under {', '.join(run_dirs)}")
    content = write_report(paths, Path(output), reps=reps or DEFAULT_REPS)
    written = output
    if json_output:
        write_numbers(content, Path(json_output))
        written += f" and {json_output}"
    click.echo(f"wrote {written}: {content['counts']['runs']} runs, {len(content['warnings'])} warnings")


@cli.group("search")
def search_group() -> None:
    """Hyper-parameter searches with Optuna (the paper's target-entropy search, app. A.2)."""


def _study_options(command):
    """--study, --storage and --out, shared by the search commands that read a study."""
    command = click.option("--out", default="runs/search", show_default=True, type=click.Path(file_okay=False),
                           help="Folder holding the study folders.")(command)
    command = click.option("--storage", default=None,
                           help="Journal file path or Optuna storage URL (default: OUT/STUDY/study.journal).")(command)
    return click.option("--study", "study_name", required=True, help="The study's name.")(command)


@search_group.command("entropy")
@click.option("--suite", required=True, help=f"One of: {', '.join(SUITES)}.")
@click.option("--task", required=True, help="A task of the suite.")
@click.option("--agent", default="sac-svg", show_default=True, help=f"One of: {', '.join(AGENTS)}.")
@click.option("--preset", default="paper", show_default=True, help="paper | quick | authors-code.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Env steps per run (default: preset/task).")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1),
              help="Seeds 0..K-1 per trial; the objective is their mean final evaluation return.")
@click.option("--trials", required=True, type=click.IntRange(min=1), help="Trials in the study, in total.")
@click.option("--study", "study_name", default=None, help="Study name (default: entropy-SUITE-TASK-AGENT).")
@click.option("--storage", default=None,
              help="Journal file path, or an Optuna storage URL (sqlite:///..., postgresql://...) that "
                   "workers on several machines share (default: OUT/STUDY/study.journal).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes here.")
@click.option("--sampler", default="random", show_default=True, type=click.Choice(["random", "tpe"]),
              help="random: the paper's search, schedules drawn from --study-seed; tpe: Optuna's TPE.")
@click.option("--pruner", default="none", show_default=True, type=click.Choice(["none", "median"]),
              help="median: stop a trial whose evaluation return is below the median of earlier trials'.")
@click.option("--study-seed", default=0, show_default=True, type=int, help="Seed of the schedules drawn.")
@click.option("--out", default="runs/search", show_default=True, type=click.Path(file_okay=False),
              help="Folder of study folders; a trial's runs go to OUT/STUDY/trials/slot_<k>/.")
@click.option("--wandb", "wandb_mode", default="disabled", show_default=True, type=click.Choice(WANDB_MODES))
@click.option("--launcher", default="local", show_default=True,
              help="local: worker processes here; submitit: --workers SLURM jobs sharing --storage.")
@_slurm_options
@click.argument("overrides", nargs=-1)
def search_entropy_command(suite, task, agent, preset, steps, seeds, trials, study_name, storage, workers, sampler,
                           pruner, study_seed, out, wandb_mode, launcher, wait, overrides, **slurm_flags) -> None:
    """The target-entropy random search of appendix A.2: TRIALS schedules (H_init, H_final,
    beta) of eq. (14), each trained on K seeds. Rerun the same command to resume; run it in
    several shells or machines on one storage to share the work: the study ends with exactly
    TRIALS finished trials."""
    from studies.entropy_search import SearchSettings, run_search  # noqa: PLC0415
    from studies.search_tables import print_trials, run_failures  # noqa: PLC0415

    settings = SearchSettings(suite=suite, task=task, trials=trials, agent=agent, preset=preset, steps=steps,
                              seeds=seeds, study=study_name, storage=storage, workers=workers, sampler=sampler,
                              pruner=pruner, study_seed=study_seed, out=out, wandb=wandb_mode,
                              overrides=list(overrides))
    launcher_overrides = launcher_settings(launcher, None, slurm_flags, wait)
    try:
        if launcher == "submitit":
            study = _search_on_slurm(settings, launcher_overrides, wait)
            if study is None:
                return
        else:
            study = run_search(settings, say=click.echo)
    except KeyboardInterrupt:
        click.echo(f"harness: search {settings.study_name} interrupted; rerun the same command to resume", err=True)
        raise SystemExit(130) from None
    print_trials(console(), study, settings.study_dir)
    failures = run_failures(study)
    for line in failures:
        click.echo(f"harness: {line}", err=True)
    if failures:
        raise HarnessFailure()


def _search_on_slurm(settings, launcher_overrides: list[str], wait: bool):
    """Submit the search's workers as SLURM jobs; with ``wait`` the finished study, else None."""
    from studies.search_jobs import submit_search_workers  # noqa: PLC0415
    from studies.search_tables import load_named_study  # noqa: PLC0415
    from studies.slots import finished_count  # noqa: PLC0415

    from harness.config import compose_run  # noqa: PLC0415

    # the launcher group's YAML (conf/launcher/submitit.yaml) under the command's flags
    given = [o for o in settings.overrides if o.lstrip("+~").startswith("launcher.")]  # launcher.* typed as overrides
    launcher = compose_run(settings.agent, settings.preset, "submitit", [], [*given, *launcher_overrides]).launcher
    ids = submit_search_workers(settings, launcher, wait, say=lambda line: click.echo(f"harness: {line}", err=True))
    if not wait or not ids:
        return None
    study, _ = load_named_study(settings.study_name, settings.storage, settings.out)
    done = finished_count(study, settings.trials)
    if done < settings.trials:
        raise RunFailure(f"search {settings.study_name}: {done}/{settings.trials} trials finished when the worker "
                         f"jobs ended; rerun the same command to submit workers again")
    return study


@search_group.command("show")
@_study_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def search_show_command(study_name: str, storage: str | None, out: str, as_json: bool) -> None:
    """The trials of a study (number, state, schedule, objective, run folder) and its best trial."""
    from studies.search_tables import load_named_study, print_trials, trials_json  # noqa: PLC0415

    study, study_dir = load_named_study(study_name, storage, out)
    if as_json:
        click.echo(json.dumps(trials_json(study, study_dir), indent=2))
    else:
        print_trials(console(), study, study_dir)


@search_group.command("best")
@_study_options
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="YAML file to write; `harness run --config FILE` runs with it.")
def search_best_command(study_name: str, storage: str | None, out: str, output: str) -> None:
    """Write the best trial's schedule (and the study's overrides) as a config file."""
    from studies.search_tables import best_config_yaml, load_named_study  # noqa: PLC0415

    from harness.contract import atomic_write_bytes  # noqa: PLC0415

    if not Path(output).resolve().parent.is_dir():
        raise ConfigError(f"-o {output}: the folder {Path(output).parent} does not exist")
    study, _ = load_named_study(study_name, storage, out)
    text, command = best_config_yaml(study, output)
    atomic_write_bytes(Path(output), text.encode())
    click.echo(f"wrote {output}; run the best schedule with:\n  {command}")


@cli.group("study")
def study_group() -> None:
    """Multi-stage studies of the paper: the Table 2 protocol, the Fig. 3 model study."""


@study_group.command("table2")
@click.option("--suite", default="poplin", show_default=True, help=f"One of: {', '.join(SUITES)}.")
@click.option("--task", required=True, help="A task of the suite.")
@click.option("--horizons", default="0,1,2,3,4,5,10", show_default=True,
              help="Comma-separated H values; H=0 is SAC, H>0 SAC-SVG(H).")
@click.option("--trials", default=20, show_default=True, type=click.IntRange(min=1),
              help="Entropy-search trials per horizon (appendix A.2).")
@click.option("--search-seeds", default=1, show_default=True, type=click.IntRange(min=1),
              help="Seeds per search trial (seeds 0..K-1).")
@click.option("--seeds", default=10, show_default=True, type=click.IntRange(min=1),
              help="Final seeds of the best schedule (seeds K..K+N-1, never a search seed).")
@click.option("--preset", default="paper", show_default=True, help="paper | quick | authors-code.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Env steps per run (default: preset/task).")
@click.option("--launcher", default="local", show_default=True, help="Launcher of the final runs: local | submitit.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1), help="Final runs at once.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Search worker processes.")
@click.option("--storage", default=None, help="Optuna storage URL shared by every horizon's study (default: a "
                                              "journal file in each study folder).")
@click.option("--sampler", default="random", show_default=True, type=click.Choice(["random", "tpe"]))
@click.option("--pruner", default="none", show_default=True, type=click.Choice(["none", "median"]))
@click.option("--study-seed", default=0, show_default=True, type=int, help="Seed of the schedules drawn.")
@click.option("--out", default="runs/table2", show_default=True, type=click.Path(file_okay=False),
              help="Output root; the study goes to OUT/SUITE-TASK/.")
@click.option("--wandb", "wandb_mode", default="disabled", show_default=True, type=click.Choice(WANDB_MODES))
@click.option("--reps", type=click.IntRange(min=10), default=None, help="Bootstrap replications of the report.")
@click.argument("overrides", nargs=-1)
def study_table2_command(suite, task, horizons, trials, search_seeds, seeds, preset, steps, launcher, jobs, workers,
                         storage, sampler, pruner, study_seed, out, wandb_mode, reps, overrides) -> None:
    """Paper Table 2 for one task: per horizon, the entropy search, then its best schedule on
    fresh seeds, then one report beside the published rows. Rerun to resume any stage."""
    from reports.aggregate import DEFAULT_REPS  # noqa: PLC0415
    from reports.html import write_numbers, write_report  # noqa: PLC0415
    from studies.table2 import Table2Settings, parse_horizons, run_table2  # noqa: PLC0415

    settings = Table2Settings(suite=suite, task=task, horizons=parse_horizons(horizons), trials=trials,
                              search_seeds=search_seeds, seeds=seeds, preset=preset, steps=steps, launcher=launcher,
                              jobs=jobs, workers=workers, out=out, storage=storage, sampler=sampler, pruner=pruner,
                              study_seed=study_seed, wandb=wandb_mode, overrides=list(overrides))
    try:
        done = run_table2(settings, say=click.echo)
    except KeyboardInterrupt:
        click.echo("harness: table2 interrupted; rerun the same command to resume", err=True)
        raise SystemExit(130) from None
    html, numbers = settings.root / "table2.html", settings.root / "table2.json"
    content = write_report([done["final"]], html, reps=reps or DEFAULT_REPS)
    write_numbers(content, numbers)
    click.echo(f"wrote {html} and {numbers}: {content['counts']['runs']} final runs, horizons "
               f"{', '.join(map(str, done['horizons']))}; search panels: harness report {done['search']}")
    for line in done["failures"]:
        click.echo(f"harness: {line}", err=True)
    if done["failures"]:
        raise HarnessFailure()


@study_group.command("model-generalisation")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--horizon", type=int, default=None, help="H: transitions per training sequence and error rollout.")
@click.option("--stages", type=int, default=None, help="Times episodes are added and the models retrained.")
@click.option("--updates", type=int, default=None, help="Gradient steps of each model per stage.")
@click.option("--batch-size", type=int, default=None, help="Sequences (GRU) or transitions per member per update.")
@click.option("--hidden-dim", type=int, default=None, help="GRU encoder and decoder MLP width (paper: 512).")
@click.option("--gru-hidden-dim", type=int, default=None, help="GRU state width (paper: 512).")
@click.option("--ensemble-hidden-dim", type=int, default=None,
              help="MLP width of the ensemble (default: the width matching the GRU's parameter count).")
@click.option("--test-fraction", type=float, default=None, help="Share of episodes in the fixed test split.")
@click.option("--holdout-every", type=int, default=None, help="Every k-th added episode goes to holdout.")
@click.option("--from-scratch", is_flag=True, default=None, help="Rebuild the models at every stage.")
@click.option("--seed", type=int, default=None, help="Seed of the splits, the initialisation and the batches.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder (default: RUN_DIR/model_generalisation).")
def model_generalisation_command(run_dir: str, out: str | None, **given) -> None:
    """The paper's Fig. 3 study: multi-step error of the GRU model vs a 5-MLP ensemble of similar size,
    trained on RUN_DIR's replay episodes added stage by stage. Defaults: the settings
    printed at the end (studies/model_generalisation.py)."""
    from studies.model_generalisation import GeneralisationSettings, run_study, summary_text  # noqa: PLC0415

    names = {"updates": "updates_per_stage"}
    settings = GeneralisationSettings(**{names.get(k, k): v for k, v in given.items() if v is not None})
    click.echo(summary_text(run_study(run_dir, settings, out)))


@cli.command("bench")
@click.option("--agent", "agents", multiple=True, help="An agent (repeatable); default: sac, sac-svg, mve, "
              "sac-svg-ensemble.")
@click.option("--preset", "preset_names", multiple=True, help="A preset (repeatable); default: paper, authors-code.")
@click.option("--task", "tasks", multiple=True, help="SUITE/TASK (repeatable); default: mbpo/hopper, mbpo/humanoid.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1), help="torch threads.")
@click.option("--updates", default=20, show_default=True, type=click.IntRange(min=1),
              help="Timed updates per row (after 3 warm-up updates).")
@click.option("--loop-steps", default=20, show_default=True, type=click.IntRange(min=0),
              help="Learning steps of the whole-loop measurement (0: skip it).")
@click.option("--parallel", default=1, show_default=True, type=click.IntRange(min=1),
              help="Also N whole loops at once, as --jobs N runs seeds, against one alone.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write the results here.")
@click.option("--markdown", "markdown_path", default=None, type=click.Path(dir_okay=False),
              help="Write the Markdown table here.")
@click.argument("overrides", nargs=-1)
def bench_command(agents, preset_names, tasks, device, threads, updates, loop_steps, parallel, json_path, markdown_path,
                  overrides) -> None:
    """Time the agents' updates and training loop on this machine (benchmarks/throughput.py).

    Prints one Markdown row per (agent, preset, task) as it finishes. OVERRIDES are run
    config settings, e.g. agent.fast_path.batched_ensembles=false or agent.compile=compile.
    """
    from harness import bench  # noqa: PLC0415
    from harness.config import build_run_config  # noqa: PLC0415

    settings = bench.BenchSettings(agents=tuple(agents) or bench.DEFAULT_AGENTS,
                                   presets=tuple(preset_names) or bench.DEFAULT_PRESETS,
                                   tasks=tuple(tasks) or bench.DEFAULT_TASKS, device=device, threads=threads,
                                   updates=updates, loop_steps=loop_steps, parallel=parallel,
                                   overrides=tuple(overrides))
    if any(o.lstrip("+~").startswith("agent.device=") for o in overrides):
        raise ConfigError("harness bench takes the device from --device, not agent.device")
    for agent in settings.agents:  # every name and override checked before minutes of timing
        if agent not in AGENTS:
            raise ConfigError(unknown_name("agent", agent, AGENTS))
    for preset in settings.presets:
        if preset not in presets():
            raise ConfigError(unknown_name("preset", preset, presets()))
    for task in settings.tasks:
        suite, _, name = task.partition("/")
        if suite not in SUITES:
            raise ConfigError(unknown_name("suite", suite, SUITES) + " (--task is SUITE/TASK)")
        for agent in settings.agents:
            for preset in settings.presets:
                build_run_config(suite, name, agent, 0, preset=preset, overrides=[f"agent.device={device}",
                                                                                  *overrides])
    _check_device(device)
    for path in (json_path, markdown_path):
        if path and not Path(path).resolve().parent.is_dir():
            raise ConfigError(f"{path}: the folder {Path(path).parent} does not exist")
    click.echo(bench.MARKDOWN_HEADER)
    try:
        result = bench.run_benchmark(settings, say=click.echo)
    except RuntimeError as error:  # e.g. CUDA out of memory, a parallel process that died
        click.echo(f"harness: bench failed: {str(error).strip().splitlines()[0]}", err=True)
        raise HarnessFailure() from None
    except KeyboardInterrupt:  # the rows printed so far stand; nothing was written
        click.echo("harness: bench interrupted; no --json or --markdown file written", err=True)
        raise SystemExit(130) from None
    bench.write_outputs(result, json_path, markdown_path)
    parallel = [bench.BenchRow(**row) for row in result["rows"] if row["parallel"]]
    if parallel:
        click.echo("\n" + bench.PARALLEL_HEADER)
        for row in parallel:
            click.echo(bench.parallel_row(row))


def check_video_rendering(jobs: list) -> None:
    """Where runs record videos, draw one frame of each of their tasks before any run
    starts: a machine that cannot render off-screen is one line, and nothing is written."""
    from harness.video import VideoError, probe_rendering  # noqa: PLC0415

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


def _check_device(device: str) -> None:
    import torch  # noqa: PLC0415

    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r} is not a device svgbench runs on (cpu, cuda, cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: this machine has no CUDA device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from harness.video import mujoco_gl_problem  # noqa: PLC0415

    if mujoco_gl_problem():  # importing MuJoCo would raise, for any command that builds an env
        click.echo(f"harness: error: {mujoco_gl_problem()}", err=True)
        return 2
    try:
        cli.main(args=argv, prog_name="harness", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.Abort:
        click.echo("harness: aborted", err=True)
        return 1
    except click.UsageError as error:
        click.echo(f"harness: error: {error.format_message()}", err=True)
        return 2
    except (ConfigError, LookupError) as error:
        click.echo(f"harness: error: {error}", err=True)
        return 2
    except RunFailure as error:
        click.echo(f"harness: {error}", err=True)
        return 1
    except OSError as error:  # a full disk, a folder that vanished: the cause in one line
        click.echo(f"harness: {error}", err=True)
        return 1
    except HarnessFailure:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
