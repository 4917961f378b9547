"""``harness search entropy | show | best``: the target-entropy search of appendix A.2 on
Optuna storage, and what it found."""

from __future__ import annotations

import json
from pathlib import Path

import click

from baselines import AGENTS
from harness.commands.common import WANDB_MODES, HarnessFailure, console, launcher_settings, slurm_options
from harness.config import ConfigError, RunFailure, compose_run
from harness.contract import atomic_write_bytes
from harness.suites import SUITES


@click.group("search")
def search_group() -> None:
    """Hyper-parameter searches with Optuna (the paper's target-entropy search, app. A.2)."""


def study_options(command):
    """--study, --storage and --out, shared by the search commands that read a study."""
    command = click.option(
        "--out",
        default="runs/search",
        show_default=True,
        type=click.Path(file_okay=False),
        help="Folder holding the study folders.",
    )(command)
    command = click.option(
        "--storage", default=None, help="Journal file path or Optuna storage URL (default: OUT/STUDY/study.journal)."
    )(command)
    return click.option("--study", "study_name", required=True, help="The study's name.")(command)


@search_group.command("entropy")
@click.option("--suite", required=True, help=f"One of: {', '.join(SUITES)}.")
@click.option("--task", required=True, help="A task of the suite.")
@click.option("--agent", default="sac-svg", show_default=True, help=f"One of: {', '.join(AGENTS)}.")
@click.option("--preset", default="paper", show_default=True, help="paper | quick | authors-code.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Env steps per run (default: preset/task).")
@click.option(
    "--seeds",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seeds 0..K-1 per trial; the objective is their mean final evaluation return.",
)
@click.option(
    "--batch-seeds",
    is_flag=True,
    help="Train a trial's seeds as one batched computation in one process (not one after another).",
)
@click.option("--trials", required=True, type=click.IntRange(min=1), help="Trials in the study, in total.")
@click.option("--study", "study_name", default=None, help="Study name (default: entropy-SUITE-TASK-AGENT).")
@click.option(
    "--storage",
    default=None,
    help="Journal file path, or an Optuna storage URL (sqlite:///..., postgresql://...) that "
    "workers on several machines share (default: OUT/STUDY/study.journal).",
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes here.")
@click.option(
    "--sampler",
    default="random",
    show_default=True,
    type=click.Choice(["random", "tpe"]),
    help="random: the paper's search, schedules drawn from --study-seed; tpe: Optuna's TPE.",
)
@click.option(
    "--pruner",
    default="none",
    show_default=True,
    type=click.Choice(["none", "median"]),
    help="median: stop a trial whose evaluation return is below the median of earlier trials'.",
)
@click.option("--study-seed", default=0, show_default=True, type=int, help="Seed of the schedules drawn.")
@click.option(
    "--out",
    default="runs/search",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder of study folders; a trial's runs go to OUT/STUDY/trials/slot_<k>/.",
)
@click.option("--wandb", "wandb_mode", default="disabled", show_default=True, type=click.Choice(WANDB_MODES))
@click.option(
    "--launcher",
    default="local",
    show_default=True,
    help="local: worker processes here; submitit: --workers SLURM jobs sharing --storage.",
)
@slurm_options
@click.argument("overrides", nargs=-1)
def search_entropy_command(
    suite,
    task,
    agent,
    preset,
    steps,
    seeds,
    batch_seeds,
    trials,
    study_name,
    storage,
    workers,
    sampler,
    pruner,
    study_seed,
    out,
    wandb_mode,
    launcher,
    wait,
    overrides,
    **slurm_flags,
) -> None:
    """The target-entropy random search of appendix A.2: TRIALS schedules (H_init, H_final,
    beta) of eq. (14), each trained on K seeds. Rerun the same command to resume; run it in
    several shells or machines on one storage to share the work: the study ends with exactly
    TRIALS finished trials."""
    from studies.entropy_search import SearchSettings, run_search
    from studies.search_tables import print_trials, run_failures

    settings = SearchSettings(
        suite=suite,
        task=task,
        trials=trials,
        agent=agent,
        preset=preset,
        steps=steps,
        seeds=seeds,
        study=study_name,
        storage=storage,
        workers=workers,
        sampler=sampler,
        pruner=pruner,
        study_seed=study_seed,
        out=out,
        wandb=wandb_mode,
        overrides=list(overrides),
        batch_seeds=batch_seeds,
    )
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
    from studies.search_jobs import submit_search_workers
    from studies.search_tables import load_named_study
    from studies.slots import finished_count

    # the launcher group's YAML (conf/launcher/submitit.yaml) under the command's flags
    given = [o for o in settings.overrides if o.lstrip("+~").startswith("launcher.")]  # launcher.* typed as overrides
    launcher = compose_run(settings.agent, settings.preset, "submitit", [], [*given, *launcher_overrides]).launcher
    ids = submit_search_workers(settings, launcher, wait, say=lambda line: click.echo(f"harness: {line}", err=True))
    if not wait or not ids:
        return None
    study, _ = load_named_study(settings.study_name, settings.storage, settings.out)
    done = finished_count(study, settings.trials)
    if done < settings.trials:
        raise RunFailure(
            f"search {settings.study_name}: {done}/{settings.trials} trials finished when the worker "
            f"jobs ended; rerun the same command to submit workers again"
        )
    return study


@search_group.command("show")
@study_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def search_show_command(study_name: str, storage: str | None, out: str, as_json: bool) -> None:
    """The trials of a study (number, state, schedule, objective, run folder) and its best trial."""
    from studies.search_tables import load_named_study, print_trials, trials_json

    study, study_dir = load_named_study(study_name, storage, out)
    if as_json:
        click.echo(json.dumps(trials_json(study, study_dir), indent=2))
    else:
        print_trials(console(), study, study_dir)


@search_group.command("best")
@study_options
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="YAML file to write; `harness run --config FILE` runs with it.",
)
def search_best_command(study_name: str, storage: str | None, out: str, output: str) -> None:
    """Write the best trial's schedule (and the study's overrides) as a config file."""
    from studies.search_tables import best_config_yaml, load_named_study

    if not Path(output).resolve().parent.is_dir():
        raise ConfigError(f"-o {output}: the folder {Path(output).parent} does not exist")
    study, _ = load_named_study(study_name, storage, out)
    text, command = best_config_yaml(study, output)
    atomic_write_bytes(Path(output), text.encode())
    click.echo(f"wrote {output}; run the best schedule with:\n  {command}")
