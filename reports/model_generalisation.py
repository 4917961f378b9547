"""Paper Fig. 3 from the files ``harness study model-generalisation`` writes: H-step model
error against training episodes, one colour per model, one line style per split.

Reports read files, never the code that wrote them: the names below are the study's
output (``model_generalisation.csv`` with its JSON beside it, by default in the run folder's
``model_generalisation/``), found anywhere under the report's input folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from reports.figures import LEGEND_FONTSIZE, palette, plain, to_data_uri

CSV_NAME = "model_generalisation.csv"
JSON_NAME = "model_generalisation.json"
COLUMNS = {"stage", "train_episodes", "model", "split", "mse"}
SPLIT_STYLES = {"train": "-", "holdout": "--", "test": ":"}
MODEL_COLORS = {"gru": "tab:blue", "mlp-ensemble": "tab:orange", "no-change": "grey"}


def find_studies(paths: list[Path]) -> list[Path]:
    """Every study CSV under ``paths`` (or given directly), each once."""
    found: set[Path] = set()
    for root in map(Path, paths):
        candidates = [root] if root.is_file() else [root / CSV_NAME, *root.rglob(CSV_NAME)]
        found.update(path.resolve() for path in candidates if path.name == CSV_NAME and path.is_file())
    return sorted(found)


def read_study(csv_path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The study's rows and metadata; ValueError (one line) if the CSV is not a study's."""
    try:
        frame = pd.read_csv(csv_path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"unreadable ({type(error).__name__})") from error
    missing = COLUMNS - set(frame.columns)
    if missing:
        raise ValueError(f"lacks columns {', '.join(sorted(missing))}")
    try:
        metadata = json.loads((csv_path.parent / JSON_NAME).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        metadata = {}
    return frame, metadata if isinstance(metadata, dict) else {}


def title(csv_path: Path, metadata: dict[str, Any]) -> str:
    source = metadata.get("source_run") or {}
    if not source:
        return str(csv_path.parent)
    return f"{source.get('suite')} / {source.get('task')}: {source.get('agent')} seed {source.get('seed')}"


def caption(metadata: dict[str, Any]) -> str:
    """Horizon and parameter counts, as the study recorded them."""
    counts = metadata.get("parameter_counts") or {}
    parts = [f"{metadata['horizon']}-step MSE in normalised state space"] if "horizon" in metadata else []
    parts += [f"{name}: {count:,} parameters" for name, count in sorted(counts.items())]
    source = (metadata.get("source_run") or {}).get("path")
    if source:
        parts.append(f"episodes from {source}")
    return "; ".join(parts)


def generalisation_figure(frame: pd.DataFrame, figure_title: str) -> str:
    """H-step MSE against training episodes: colour per model, line style per split."""
    figure, ax = plt.subplots(figsize=(7.5, 4.2))
    others = iter(palette("tab10")[2:])  # models this version does not name
    colors = {model: MODEL_COLORS.get(model) or next(others, "black") for model in sorted(frame["model"].unique())}
    order = {split: i for i, split in enumerate(SPLIT_STYLES)}
    groups = frame.sort_values("stage").groupby(["model", "split"], sort=False)
    for (model, split), rows in sorted(groups, key=lambda group: (group[0][0], order.get(group[0][1], 9))):
        ax.plot(
            rows["train_episodes"],
            rows["mse"],
            color=colors[model],
            linestyle=SPLIT_STYLES.get(split, "-."),
            marker="o",
            markersize=3,
            label=plain(f"{model}: {split}"),
        )
    if (frame["mse"] > 0).all():
        ax.set_yscale("log")
    ax.set_title(plain(figure_title))
    ax.set_xlabel("training episodes")
    ax.set_ylabel("multi-step MSE")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return to_data_uri(figure)


def final_stage_rows(frame: pd.DataFrame) -> list[dict[str, str]]:
    """The last stage's MSE per model and split, as table rows (model, train, holdout, test)."""
    last = frame[frame["stage"] == frame["stage"].max()]
    table = last.pivot_table(index="model", columns="split", values="mse", aggfunc="first")
    return [
        {
            "model": str(model),
            **{split: f"{table.loc[model, split]:.4g}" if split in table else "" for split in SPLIT_STYLES},
        }
        for model in table.index
    ]


def model_generalisation_section(paths: list[Path]) -> dict[str, Any]:
    """The report's Fig. 3 section: a figure and final-stage table per study found, or a note."""
    panels, notes = [], []
    for csv_path in find_studies(paths):
        try:
            frame, metadata = read_study(csv_path)
        except ValueError as problem:
            notes.append(f"{csv_path}: {problem}")
            continue
        name = title(csv_path, metadata)
        panels.append(
            {
                "title": name,
                "uri": generalisation_figure(frame, name),
                "caption": caption(metadata),
                "final_stage": int(frame["stage"].max()),
                "rows": final_stage_rows(frame),
            }
        )
    if not panels and not notes:
        notes.append(
            "no model_generalisation.csv under the inputs (run `harness study model-generalisation RUN_DIR`): skipped"
        )
    return {"panels": panels, "notes": notes}
