"""The ``harness`` command: list, run, status, report.

Errors are one line on stderr: exit 2 for bad usage (unknown names, bad overrides, a run
folder holding another config), exit 1 when a run fails.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from baselines import AGENTS
from harness.config import ConfigError, launchers, presets
from harness.suites import SUITES, get_suite

WANDB_MODES = ["offline", "online", "disabled"]


def console() -> Console:
    """A console as wide as the terminal, or wide enough that piped tables keep whole paths."""
    return Console() if sys.stdout.isatty() else Console(width=240)


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


@cli.command("run", context_settings={"ignore_unknown_options": False})
@click.option("--suite", required=True, help=f"One of: {', '.join(SUITES)}.")
@click.option("--agent", required=True, help=f"One of: {', '.join(AGENTS)}.")
@click.option("--task", "tasks", multiple=True, help="A task of the suite (repeatable); default: all.")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1), help="Seeds 0..N-1.")
@click.option("--preset", default="paper", show_default=True, help="paper | quick | authors-code.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Env steps per run (default: preset/task).")
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False), help="Output root.")
@click.option("--launcher", default="local", show_default=True, help="local | submitit.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1), help="Runs at once.")
@click.option("--wandb", "wandb_mode", default="offline", show_default=True, type=click.Choice(WANDB_MODES))
@click.argument("overrides", nargs=-1)
def run_command(suite, agent, tasks, seeds, preset, steps, out, launcher, jobs, wandb_mode, overrides) -> None:
    """Train AGENT on every (task, seed) of SUITE; rerunning resumes or skips.

    OVERRIDES are Hydra key=value settings, e.g. agent.horizon=3 trainer.eval_episodes=5.
    """
    from baselines import get_agent  # noqa: PLC0415
    from harness.launch import launch, plan_jobs  # noqa: PLC0415

    suite_tasks = get_suite(suite)
    get_agent(agent)
    if launcher not in launchers():
        raise ConfigError(f"unknown launcher {launcher!r}; valid launchers: {', '.join(launchers())}")
    chosen = list(dict.fromkeys(tasks)) or list(suite_tasks)
    settings = list(overrides) + [f"launcher.jobs={jobs}"]
    job_list = plan_jobs(suite, chosen, agent, list(range(seeds)), preset, launcher, steps, out, wandb_mode,
                         settings)
    results = launch(job_list, job_list[0].config.launcher)
    table = Table(title=f"{agent} on {suite}")
    for column in ("run", "status", "steps", "final eval return", "best eval return"):
        table.add_column(column)
    for result in results:
        s = result.summary
        fmt = lambda v: "" if v is None else f"{v:.1f}"  # noqa: E731
        table.add_row(str(result.path), result.status, str(s.get("steps_done", "")),
                      fmt(s.get("final_eval_return")), fmt(s.get("best_eval_return")))
    console().print(table)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        for result in failed:
            click.echo(f"harness: run {result.path} failed: {result.message}", err=True)
        raise HarnessFailure()


@cli.command("status")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def status_command(run_dir: str) -> None:
    """A table of the runs under RUN_DIR and their state."""
    from harness.status import collect_status  # noqa: PLC0415

    rows = collect_status(Path(run_dir))
    if not rows:
        raise ConfigError(f"no runs (summary.json files) under {run_dir}")
    table = Table(title=f"runs under {run_dir}")
    columns = ["suite", "task", "agent", "seed", "status", "steps", "final eval return", "best eval return", "wall time (s)", "error"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[row[c] for c in columns])
    console().print(table)


@cli.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="The HTML file to write (self-contained, opens offline).")
@click.option("--reps", type=click.IntRange(min=10), default=None,
              help="Bootstrap replications of the intervals (default: rliable's, 50000).")
def report_command(run_dirs: tuple[str, ...], output: str, reps: int | None) -> None:
    """One HTML report comparing the runs under RUN_DIRS with the published numbers."""
    from reports.aggregate import DEFAULT_REPS  # noqa: PLC0415
    from reports.html import write_report  # noqa: PLC0415
    from reports.load import find_run_folders  # noqa: PLC0415

    paths = [Path(p) for p in run_dirs]
    if not find_run_folders(paths):
        raise ConfigError(f"no runs (summary.json files) under {', '.join(run_dirs)}")
    content = write_report(paths, Path(output), reps=reps or DEFAULT_REPS)
    click.echo(f"wrote {output}: {content['counts']['runs']} runs, {len(content['warnings'])} warnings")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
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
    except HarnessFailure:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
