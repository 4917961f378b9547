"""``harness study table2 | model-generalisation``: the paper's multi-stage studies."""

from __future__ import annotations

import click

from harness.commands.common import WANDB_MODES, HarnessFailure
from harness.suites import SUITES


@click.group("study")
def study_group() -> None:
    """Multi-stage studies of the paper: the Table 2 protocol, the Fig. 3 model study."""


@study_group.command("table2")
@click.option("--suite", default="poplin", show_default=True, help=f"One of: {', '.join(SUITES)}.")
@click.option("--task", required=True, help="A task of the suite.")
@click.option(
    "--horizons",
    default="0,1,2,3,4,5,10",
    show_default=True,
    help="Comma-separated H values; H=0 is SAC, H>0 SAC-SVG(H).",
)
@click.option(
    "--trials",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Entropy-search trials per horizon (appendix A.2).",
)
@click.option(
    "--search-seeds",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seeds per search trial (seeds 0..K-1).",
)
@click.option(
    "--seeds",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="Final seeds of the best schedule (seeds K..K+N-1, never a search seed).",
)
@click.option("--preset", default="paper", show_default=True, help="paper | quick | authors-code.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Env steps per run (default: preset/task).")
@click.option("--launcher", default="local", show_default=True, help="Launcher of the final runs: local | submitit.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1), help="Final runs at once.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Search worker processes.")
@click.option(
    "--storage",
    default=None,
    help="Optuna storage URL shared by every horizon's study (default: a journal file in each study folder).",
)
@click.option("--sampler", default="random", show_default=True, type=click.Choice(["random", "tpe"]))
@click.option("--pruner", default="none", show_default=True, type=click.Choice(["none", "median"]))
@click.option("--study-seed", default=0, show_default=True, type=int, help="Seed of the schedules drawn.")
@click.option(
    "--out",
    default="runs/table2",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output root; the study goes to OUT/SUITE-TASK/.",
)
@click.option("--wandb", "wandb_mode", default="disabled", show_default=True, type=click.Choice(WANDB_MODES))
@click.option("--reps", type=click.IntRange(min=10), default=None, help="Bootstrap replications of the report.")
@click.argument("overrides", nargs=-1)
def study_table2_command(
    suite,
    task,
    horizons,
    trials,
    search_seeds,
    seeds,
    preset,
    steps,
    launcher,
    jobs,
    workers,
    storage,
    sampler,
    pruner,
    study_seed,
    out,
    wandb_mode,
    reps,
    overrides,
) -> None:
    """Paper Table 2 for one task: per horizon, the entropy search, then its best schedule on
    fresh seeds, then one report beside the published rows. Rerun to resume any stage."""
    from reports.aggregate import DEFAULT_REPS
    from reports.html import write_numbers, write_report
    from studies.table2 import Table2Settings, parse_horizons, run_table2

    settings = Table2Settings(
        suite=suite,
        task=task,
        horizons=parse_horizons(horizons),
        trials=trials,
        search_seeds=search_seeds,
        seeds=seeds,
        preset=preset,
        steps=steps,
        launcher=launcher,
        jobs=jobs,
        workers=workers,
        out=out,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        study_seed=study_seed,
        wandb=wandb_mode,
        overrides=list(overrides),
    )
    try:
        done = run_table2(settings, say=click.echo)
    except KeyboardInterrupt:
        click.echo("harness: table2 interrupted; rerun the same command to resume", err=True)
        raise SystemExit(130) from None
    html, numbers = settings.root / "table2.html", settings.root / "table2.json"
    content = write_report([done["final"]], html, reps=reps or DEFAULT_REPS)
    write_numbers(content, numbers)
    click.echo(
        f"wrote {html} and {numbers}: {content['counts']['runs']} final runs, horizons "
        f"{', '.join(map(str, done['horizons']))}; search panels: harness report {done['search']}"
    )
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
@click.option(
    "--ensemble-hidden-dim",
    type=int,
    default=None,
    help="MLP width of the ensemble (default: the width matching the GRU's parameter count).",
)
@click.option("--test-fraction", type=float, default=None, help="Share of episodes in the fixed test split.")
@click.option("--holdout-every", type=int, default=None, help="Every k-th added episode goes to holdout.")
@click.option("--from-scratch", is_flag=True, default=None, help="Rebuild the models at every stage.")
@click.option("--seed", type=int, default=None, help="Seed of the splits, the initialisation and the batches.")
@click.option("--threads", type=int, default=None, help="CPU threads for torch.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output folder (default: RUN_DIR/model_generalisation).",
)
def model_generalisation_command(run_dir: str, out: str | None, **given) -> None:
    """The paper's Fig. 3 study: multi-step error of the GRU model vs a 5-MLP ensemble of similar size,
    trained on RUN_DIR's replay episodes added stage by stage. Defaults: the settings
    printed at the end (studies/model_generalisation.py)."""
    from studies.model_generalisation import GeneralisationSettings, run_study, summary_text

    names = {"updates": "updates_per_stage"}
    settings = GeneralisationSettings(**{names.get(k, k): v for k, v in given.items() if v is not None})
    click.echo(summary_text(run_study(run_dir, settings, out)))
