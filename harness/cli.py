"""The ``harness`` command: list, run, status, replay, report, search, study, bench.

The command layer sits on top of the import graph: this module composes the command
groups of ``harness.commands`` (one module per group, each holding its options and calls),
and nothing below it imports either. Errors are one line on stderr: exit 2 for bad usage
(unknown names, bad overrides, a run folder holding another config), exit 1 when a run fails.
"""

from __future__ import annotations

import sys

import click

from harness.commands.bench import bench_command
from harness.commands.common import HarnessFailure
from harness.commands.listing import list_command
from harness.commands.replay import replay_command
from harness.commands.report import report_command
from harness.commands.run import run_command, status_command, threads_line
from harness.commands.search import search_group
from harness.commands.study import study_group
from harness.config import ConfigError, RunFailure
from harness.video import mujoco_gl_problem

__all__ = ["cli", "main", "threads_line"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """svgbench: reproduce and extend model-based SAC-SVG(H) (Amos et al., 2021)."""


for command in (
    list_command,
    run_command,
    status_command,
    replay_command,
    report_command,
    search_group,
    study_group,
    bench_command,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
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
