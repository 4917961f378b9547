"""Published results to compare with, each row naming its source (README.md beside this file).

``load_published()`` gives the final numbers (paper Table 2 and POPLIN-A on the POPLIN suite,
the authors' MBPO-suite runs) as one tidy frame; ``load_reference_curves()`` gives published
learning curves (the authors' SAC-SVG humanoid run) as a tidy frame of (step, return) rows.
"""

from __future__ import annotations

import re
from importlib import resources

import pandas as pd

PUBLISHED_COLUMNS = ["method", "suite", "task", "mean", "std", "n", "steps", "metric", "source"]
TABLE_FILES = ("poplin.csv", "mbpo.csv")
CURVE_INDEX = "curves.csv"
CURVE_COLUMNS = ["suite", "task", "method", "seed", "step", "return", "source"]

_SVG_METHOD = re.compile(r"^SAC-SVG\((\d+)\)$")


def _read_csv(name: str) -> pd.DataFrame:
    with resources.files(__name__).joinpath(name).open("r", newline="") as handle:
        return pd.read_csv(handle)


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


def load_reference_curves() -> pd.DataFrame:
    """Published learning curves as tidy rows: ``suite, task, method, seed, step, return, source``.

    ``step`` is env steps, ``return`` the mean evaluation return at that step.
    """
    index = _read_csv(CURVE_INDEX)
    curves = []
    for entry in index.itertuples(index=False):
        raw = _read_csv(entry.file)
        curves.append(pd.DataFrame({
            "suite": entry.suite, "task": entry.task, "method": entry.method, "seed": int(entry.seed),
            "step": raw[entry.step_column].astype(int), "return": raw[entry.return_column].astype(float),
            "source": entry.source,
        }))
    if not curves:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return pd.concat(curves, ignore_index=True)[CURVE_COLUMNS]


__all__ = ["load_published", "load_reference_curves", "published_agent"]
