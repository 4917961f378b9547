"""Rendering the report to one self-contained HTML file (jinja2, autoescaping every value),
and its numbers to JSON for scripts and regression checks.

Figures are embedded as base64 PNG data URIs and the CSS is inline: the file opens offline
with nothing beside it, but for evaluation videos too big to embed, which are copied into a
folder beside it (``reports.videos``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from reports.aggregate import DEFAULT_REPS
from reports.build import build_report
from reports.videos import copy_linked_videos, linked_video_folder

TEMPLATE = "report.html.j2"


BREAK_AFTER = re.compile(r",(?!\d)")  # a comma between settings, not one of thousands (5,000)


def breakable(text: object) -> Markup:
    """``text`` escaped, with a line-break opportunity after each comma between settings: a
    label of overrides (``sac+init=1,final=-4,...``) wraps there instead of widening its table."""
    return Markup(BREAK_AFTER.sub(",<wbr>", str(escape(text))))


def environment() -> jinja2.Environment:
    """The template environment: autoescape on for every template (names come from disk)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["breakable"] = breakable
    return env


def render(content: dict[str, Any]) -> str:
    """The HTML text of a report built by ``reports.build.build_report``."""
    return environment().get_template(TEMPLATE).render(**content)


def write_report(
    paths: list[Path], output: Path, reps: int = DEFAULT_REPS, threshold: float | None = None
) -> dict[str, Any]:
    """Build the report of the runs under ``paths`` and write it to ``output``, its linked
    videos into ``<stem>_videos/`` beside it; returns the content. ``threshold``: see
    ``reports.build.build_report``."""
    output = Path(output)
    folder = linked_video_folder(output)
    content = build_report(paths, reps=reps, video_folder=folder, threshold=threshold)
    output.parent.mkdir(parents=True, exist_ok=True)
    copy_linked_videos(content["videos"], output.parent / folder)
    output.write_text(render(content), encoding="utf-8")
    return content


def write_numbers(content: dict[str, Any], output: Path) -> None:
    """Write the report's numbers (``content["numbers"]``: counts, warnings, one record per
    table group, the search panels without figures) to ``output`` as JSON."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(content["numbers"], indent=2, allow_nan=False) + "\n", encoding="utf-8")
