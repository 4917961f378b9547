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


def group_key(csv_path: Path, metadata: dict[str, Any]) -> tuple:
    """Studies that differ only in their seed share a key: the same source (suite, task, agent,
    preset, transitions) and the same settings. A study without metadata stands alone."""
    source = metadata.get("source_run") or {}
    settings = metadata.get("settings")
    if not source or not isinstance(settings, dict):
        return ("alone", str(csv_path))
    same = {name: value for name, value in settings.items() if name != "seed"}
    fields = ("suite", "task", "agent", "preset", "transitions")
    return ("source", *(source.get(field) for field in fields), json.dumps(same, sort_keys=True))


def study_seed(metadata: dict[str, Any]) -> Any:
    return (metadata.get("settings") or {}).get("seed")


def title(csv_path: Path, metadata: dict[str, Any], seeds: list[Any]) -> str:
    source = metadata.get("source_run") or {}
    if not source:
        return str(csv_path.parent)
    head = f"{source.get('suite')} / {source.get('task')}: {source.get('agent')} replay"
    if len(seeds) == 1:
        return f"{head}, study seed {seeds[0]}"
    return f"{head}, {len(seeds)} study seeds ({', '.join(map(str, seeds))})"


def caption(metadata: dict[str, Any], sources: list[str], seeds: int) -> str:
    """Horizon, parameter counts and sources, as the study recorded them."""
    counts = metadata.get("parameter_counts") or {}
    parts = [f"{metadata['horizon']}-step MSE in normalised state space"] if "horizon" in metadata else []
    if seeds > 1:
        parts.append(f"lines: mean over {seeds} seeds, band: their range")
    parts += [f"{name}: {count:,} parameters" for name, count in sorted(counts.items())]
    if sources:
        parts.append(f"episodes from {', '.join(sources)}")
    return "; ".join(parts)


def generalisation_figure(frame: pd.DataFrame, figure_title: str) -> str:
    """H-step MSE against training episodes (``frame`` has a ``seed`` column): colour per
    model, line style per split; with several seeds, the mean over seeds and a band over
    their range."""
    figure, ax = plt.subplots(figsize=(7.5, 4.2))
    others = iter(palette("tab10")[2:])  # models this version does not name
    colors = {model: MODEL_COLORS.get(model) or next(others, "black") for model in sorted(frame["model"].unique())}
    order = {split: i for i, split in enumerate(SPLIT_STYLES)}
    stats = (
        frame.groupby(["model", "split", "stage"])
        .agg(episodes=("train_episodes", "mean"), mse=("mse", "mean"), low=("mse", "min"), high=("mse", "max"))
        .reset_index()
    )
    several = frame["seed"].nunique() > 1
    groups = stats.sort_values("stage").groupby(["model", "split"], sort=False)
    for (model, split), rows in sorted(groups, key=lambda group: (group[0][0], order.get(group[0][1], 9))):
        ax.plot(
            rows["episodes"],
            rows["mse"],
            color=colors[model],
            linestyle=SPLIT_STYLES.get(split, "-."),
            marker="o",
            markersize=3,
            label=plain(f"{model}: {split}"),
        )
        if several:
            ax.fill_between(rows["episodes"], rows["low"], rows["high"], color=colors[model], alpha=0.12, lw=0)
    if (frame["mse"] > 0).all():
        ax.set_yscale("log")
    ax.set_title(plain(figure_title))
    ax.set_xlabel("training episodes")
    ax.set_ylabel("multi-step MSE")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return to_data_uri(figure)


def final_stage_numbers(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The last stage's MSE per model and split over the ``seed`` column's seeds: mean,
    sample std (None for one seed) and each seed's value, in seed order."""
    last = frame[frame["stage"] == frame["stage"].max()].sort_values("seed")
    records = []
    for (model, split), rows in last.groupby(["model", "split"]):
        values = [float(v) for v in rows["mse"]]
        records.append(
            {
                "model": str(model),
                "split": str(split),
                "n": len(values),
                "mean": float(rows["mse"].mean()),
                "std": float(rows["mse"].std(ddof=1)) if len(values) > 1 else None,
                "values": values,
            }
        )
    return records


def final_stage_rows(numbers: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Table rows (model, train, holdout, test) from ``final_stage_numbers``: mean ± std over seeds."""
    cells: dict[str, dict[str, str]] = {}
    for record in numbers:
        text = f"{record['mean']:.4g}"
        if record["std"] is not None:
            text += f" ± {record['std']:.2g}"
        cells.setdefault(record["model"], {})[record["split"]] = text
    return [{"model": model, **{split: row.get(split, "") for split in SPLIT_STYLES}} for model, row in cells.items()]


def model_generalisation_section(paths: list[Path]) -> dict[str, Any]:
    """The report's Fig. 3 section: a figure and final-stage table per group of studies that
    differ only in seed (``group_key``), with their numbers for the JSON, or a note."""
    groups: dict[tuple, list[tuple[Path, pd.DataFrame, dict[str, Any]]]] = {}
    notes: list[str] = []
    for csv_path in find_studies(paths):
        try:
            frame, metadata = read_study(csv_path)
        except ValueError as problem:
            notes.append(f"{csv_path}: {problem}")
            continue
        groups.setdefault(group_key(csv_path, metadata), []).append((csv_path, frame, metadata))
    panels = []
    for members in groups.values():
        members.sort(key=lambda member: (str(study_seed(member[2])), str(member[0])))
        seeds = [study_seed(metadata) for _, _, metadata in members]
        if len(members) > 1 and len(set(map(str, seeds))) < len(seeds):
            seeds = list(range(len(members)))  # repeated seeds: count the studies instead
        frame = pd.concat(
            [member_frame.assign(seed=seed) for (_, member_frame, _), seed in zip(members, seeds)], ignore_index=True
        )
        first = members[0][2]
        sources = sorted({str((metadata.get("source_run") or {}).get("path")) for _, _, metadata in members} - {"None"})
        name = title(members[0][0], first, seeds)
        numbers = final_stage_numbers(frame)
        panels.append(
            {
                "title": name,
                "uri": generalisation_figure(frame, name),
                "caption": caption(first, sources, len(members)),
                "final_stage": int(frame["stage"].max()),
                "seeds": len(members),
                "rows": final_stage_rows(numbers),
                "numbers": {
                    "title": name,
                    "studies": [str(path) for path, _, _ in members],
                    "seeds": seeds,
                    "sources": sources,
                    "horizon": first.get("horizon"),
                    "parameter_counts": first.get("parameter_counts"),
                    "settings": {k: v for k, v in (first.get("settings") or {}).items() if k != "seed"},
                    "final_stage": int(frame["stage"].max()),
                    "final_stage_mse": numbers,
                },
            }
        )
    if not panels and not notes:
        notes.append(
            "no model_generalisation.csv under the inputs (run `harness study model-generalisation RUN_DIR`): skipped"
        )
    return {"panels": panels, "notes": notes}
