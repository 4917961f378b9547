"""``harness list``: the agents, presets, suites and tasks (``harness.listing`` builds them)."""

from __future__ import annotations

import json

import click

from harness.commands.common import console
from harness.listing import listing, print_listing


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_command(as_json: bool) -> None:
    """Agents, presets, suites and tasks with their sizes, budgets and per-task settings."""
    data = listing()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    print_listing(console(), data)
