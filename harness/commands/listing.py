"""``harness list``: the agents, presets, suites and tasks."""

from __future__ import annotations

import json

import click
from rich.table import Table

from baselines import AGENTS
from harness.commands.common import console
from harness.config import presets
from harness.suites import SUITES


@click.command("list")
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
