"""What ``harness list`` prints: the agents, presets, suites and tasks, as JSON or as tables
that fit an 80-column terminal, whatever the console's width (a piped one included)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from baselines import AGENTS
from harness.config import presets
from harness.suites import SUITES

WIDTH = 80  # the terminal every table fits
AGENT_COLUMN = max(map(len, AGENTS))
COLUMN_GAP = 2  # columns are two spaces apart (collapsed padding)


def listing() -> dict[str, Any]:
    """Agents (description, settings), presets, and each suite's tasks (``TaskSpec.summary``)."""
    return {
        "agents": {name: {"description": v.description, "settings": v.settings} for name, v in AGENTS.items()},
        "presets": presets(),
        "suites": {suite: [spec.summary() for spec in tasks.values()] for suite, tasks in SUITES.items()},
    }


def _table() -> Table:
    """A table as ``harness status`` draws it: a rule under the header, no outer frame."""
    return Table(
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        collapse_padding=True,
        show_edge=False,
        pad_edge=False,
        title_justify="left",
        title_style="bold",
    )


def agents_table() -> Table:
    """One row per agent; the description wraps at word boundaries within ``WIDTH``."""
    table = _table()
    table.title = "agents"
    table.add_column("agent", no_wrap=True, min_width=AGENT_COLUMN)
    table.add_column("what it is", max_width=WIDTH - AGENT_COLUMN - COLUMN_GAP)
    for name, variant in AGENTS.items():
        table.add_row(name, variant.description)
    return table


def _schedule_text(init: float, final: float, decay: float | None) -> str:
    return f"{init:g}, {final:g}, {'-' if decay is None else f'{decay:g}'}"


def suite_table(suite: str, tasks: list[dict[str, Any]]) -> Table:
    """One row per task (``TaskSpec.summary``), its environment id on the line below its
    name: every name whole (never cut to '…') within ``WIDTH``."""
    table = _table()
    table.title = f"suite {suite}"
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("task\n  env", "left"),
        ("obs", "right"),
        ("act", "right"),
        ("budget", "right"),
        ("eval\nevery", "right"),
        ("H", "right"),
        ("target entropy\ninit, final, beta", "left"),
    )
    for header, justify in columns:
        table.add_column(header, justify=justify, no_wrap=True)
    for task in tasks:
        table.add_row(
            Text(task["task"]) + Text(f"\n  {task['env']}", style="dim"),
            str(task["obs_dim"]),
            str(task["act_dim"]),
            f"{task['budget']:,}",
            f"{task['eval_every']:,}",
            str(task["horizon"]),
            _schedule_text(*task["target_entropy"]),
        )
    return table


def print_listing(out: Console, data: dict[str, Any] | None = None) -> None:
    """The tables of ``harness list`` (``listing()`` unless ``data`` is given)."""
    data = data or listing()
    out.print(agents_table())
    out.print(f"presets: {', '.join(data['presets'])}", highlight=False)
    for suite, tasks in data["suites"].items():
        out.print()
        out.print(suite_table(suite, tasks))
