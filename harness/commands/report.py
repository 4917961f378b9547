"""``harness report``: one self-contained HTML report (and JSON numbers) of run folders and studies."""

from __future__ import annotations

from pathlib import Path

import click

from harness.config import ConfigError


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option(
    "-o",
    "--output",
    default="report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write (self-contained, opens offline).",
)
@click.option(
    "--reps",
    type=click.IntRange(min=10),
    default=None,
    help="Bootstrap replications of the intervals (default: rliable's, 50000).",
)
@click.option(
    "--json",
    "json_output",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the tables' numbers (one record per experiment and task), warnings and "
    "search results to this JSON file.",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Also give the env steps each run took to first reach this evaluation return.",
)
def report_command(
    run_dirs: tuple[str, ...], output: str, reps: int | None, json_output: str | None, threshold: float | None
) -> None:
    """One HTML report comparing the runs under RUN_DIRS with the published numbers.

    RUN_DIRS may be run folders, folders holding them, or study folders (a search panel each).
    Runs are averaged as seeds only when their configs differ in the seed alone.
    """
    from reports.aggregate import DEFAULT_REPS
    from reports.html import write_numbers, write_report
    from reports.load import find_run_folders
    from studies.contract import find_study_folders

    paths = [Path(p) for p in run_dirs]
    if not find_run_folders(paths) and not find_study_folders(paths):
        raise ConfigError(f"no runs (summary.json files) or studies (study.json) under {', '.join(run_dirs)}")
    content = write_report(paths, Path(output), reps=reps or DEFAULT_REPS, threshold=threshold)
    written = output
    if json_output:
        write_numbers(content, Path(json_output))
        written += f" and {json_output}"
    click.echo(f"wrote {written}: {content['counts']['runs']} runs, {len(content['warnings'])} warnings")
