"""Published results to compare with, each row naming its source (README.md beside this file).

``load_published()`` gives the final numbers (paper Table 2 and POPLIN-A on the POPLIN suite,
the authors' MBPO-suite runs) as one tidy frame; ``load_reference_curves()`` gives published
learning curves (the authors' SAC-SVG humanoid run, MBPO's own curves on the MBPO suite) as a
tidy frame of (step, return, std) rows.
"""

from __future__ import annotations

import math
import re
from importlib import resources
from typing import NamedTuple

import pandas as pd

PUBLISHED_COLUMNS = ["method", "suite", "task", "mean", "std", "n", "steps", "metric", "source"]
TABLE_FILES = ("poplin.csv", "mbpo.csv")
CURVE_INDEX = "curves.csv"
CURVE_COLUMNS = ["suite", "task", "method", "seed", "label", "step", "return", "std", "source"]

_SVG_METHOD = re.compile(r"^SAC-SVG\((\d+)\)$")


def _read_csv(name: str, **options) -> pd.DataFrame:
    # typeshed's Traversable.open declares no newline=; a package's files are pathlib.Paths, which take it
    with resources.files(__name__).joinpath(name).open("r", newline="") as handle:  # type: ignore[call-overload]
        return pd.read_csv(handle, **options)


def load_published(suite: str | None = None) -> pd.DataFrame:
    """Published final returns, one row per (method, suite, task, metric).

    Columns: ``method, suite, task, mean, std`` (returns, over ``n`` trials; ``n`` is <NA>
    where the source does not say), ``steps`` (env steps of the budget), ``metric``
    (``final eval``, ``last eval`` or ``best eval``), ``source``. ``suite`` filters.
    """
    frame = pd.concat([_read_csv(name) for name in TABLE_FILES], ignore_index=True)
    frame = frame[PUBLISHED_COLUMNS].astype({"mean": float, "std": float, "n": "Int64", "steps": int})
    if suite is not None:
        frame = frame[frame["suite"] == suite].reset_index(drop=True)
    return frame


def published_agent(method: str) -> tuple[str, int] | None:
    """The svgbench agent and horizon H a published method corresponds to, if any.

    ``SAC-SVG(H)`` is ``sac-svg`` with horizon H; the authors' own SAC run is ``sac`` (H=0).
    Methods of other papers (POPLIN, PETS, the starred rows) have no svgbench counterpart.
    """
    match = _SVG_METHOD.match(method)
    if match:
        return "sac-svg", int(match.group(1))
    if method == "SAC (authors' run)":
        return "sac", 0
    return None


class CurveEntry(NamedTuple):
    """One row of ``curves.csv``: a published curve file and how to read it ("" where empty)."""

    file: str
    suite: str
    task: str  # "" when ``task_column`` names the file's column of tasks (one file, several tasks)
    task_column: str
    method: str
    seed: str  # "" for a mean over seeds
    steps: str  # the curve's budget in env steps, for readers; "" when it differs per task
    step_column: str
    return_column: str
    std_column: str  # "" where the source gives no standard deviation
    label: str
    source: str


def _curve_rows(entry: CurveEntry) -> pd.DataFrame:
    """The rows of one index entry's file, in ``CURVE_COLUMNS``."""
    raw = _read_csv(entry.file)
    return pd.DataFrame(
        {
            "suite": entry.suite,
            "task": raw[entry.task_column] if entry.task_column else entry.task,
            "method": entry.method,
            "seed": int(entry.seed) if entry.seed else pd.NA,
            "label": entry.label,
            "step": raw[entry.step_column].astype(int),
            "return": raw[entry.return_column].astype(float),
            "std": raw[entry.std_column].astype(float) if entry.std_column else math.nan,
            "source": entry.source,
        }
    )[CURVE_COLUMNS]


def load_reference_curves() -> pd.DataFrame:
    """Published learning curves as tidy rows, in the order of the index ``curves.csv``.

    Columns: ``suite, task, method``; ``seed`` (<NA> for a mean over seeds); ``label`` (how a
    figure names the curve); ``step`` (env steps); ``return`` (mean evaluation return at that
    step: of one run's evaluation episodes, or over the source's seeds); ``std`` (the
    source's standard deviation over seeds, NaN where it gives none); ``source``.
    """
    index = _read_csv(CURVE_INDEX, dtype=str, keep_default_na=False)
    curves = [_curve_rows(CurveEntry(**row)) for row in index.to_dict("records")]
    if not curves:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(curves, ignore_index=True).astype({"seed": "Int64"})


__all__ = ["load_published", "load_reference_curves", "published_agent"]
