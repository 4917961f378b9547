"""What ``harness search show`` and ``harness search best`` print and write."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.config import ConfigError
from studies import contract
from studies.slots import INTERRUPTED_OUTCOME, best_trial, finished_count, trial_rows
from studies.storage import FOLDER_ATTR, IDENTITY_ATTR, load_study


def load_named_study(name: str, storage: str | None, out: str) -> tuple[optuna.Study, Path]:
    """The study NAME from --storage, or from its journal file under OUT; and its folder."""
    study_dir = Path(out) / name
    if storage is None and not (study_dir / contract.JOURNAL_FILE).exists():
        there = sorted(p.parent.name for p in Path(out).glob(f"*/{contract.JOURNAL_FILE}"))
        raise ConfigError(
            f"no study {name!r} under {out} (no {study_dir / contract.JOURNAL_FILE}); studies there: "
            f"{', '.join(there) or 'none'}; give the search's --out or --storage"
        )
    study = load_study(name, storage or str(study_dir / contract.JOURNAL_FILE))
    folder = study.user_attrs.get(FOLDER_ATTR)
    return study, Path(folder) if storage is not None and folder else study_dir


def identity(study: optuna.Study) -> dict[str, Any]:
    stored = study.user_attrs.get(IDENTITY_ATTR)
    if not isinstance(stored, dict):
        raise ConfigError(f"study {study.study_name!r} was not made by `harness search entropy`")
    return stored


def _text(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def trials_json(study: optuna.Study, study_dir: Path) -> dict[str, Any]:
    settings = identity(study)
    best = best_trial(study)
    return {
        "study": study.study_name,
        "settings": settings,
        "folder": str(study_dir),
        "finished": finished_count(study, settings["trials"]),
        "best": None
        if best is None
        else {
            "number": best.number,
            "slot": best.user_attrs.get("slot"),
            "objective": best.value,
            "H_init": best.user_attrs.get("H_init"),
            "H_final": best.user_attrs.get("H_final"),
            "beta": best.user_attrs.get("beta"),
        },
        "trials": trial_rows(study, study_dir),
    }


def print_trials(console: Console, study: optuna.Study, study_dir: Path) -> None:
    """The trials table, the count of finished slots and the best trial, in 80 columns: the
    study's folder is said once above the table, and the run folders relative to it (one per
    slot, ``contract.slot_folder``), so the table needs no column of paths."""
    data = trials_json(study, study_dir)
    console.print(Text(f"study {study.study_name}, folder:", style="bold", overflow="fold"))
    console.print(Text(str(study_dir), overflow="fold"), highlight=False)
    folders = sorted({row["run_folder"] for row in data["trials"]})
    if folders:
        span = folders[0] + (f" to {folders[-1]}" if len(folders) > 1 else "")
        console.print(Text(f"  run folders: {span} (one per slot)", overflow="fold"), highlight=False)
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, show_edge=False, pad_edge=False)
    for column in ("trial", "slot", "state", "H_init", "H_final", "beta", "objective", "outcome"):
        table.add_column(column, justify="left" if column in ("state", "outcome") else "right", overflow="fold")
    for row in data["trials"]:
        table.add_row(
            *[_text(row[k]) for k in ("number", "slot", "state", "H_init", "H_final", "beta", "objective", "outcome")]
        )
    console.print(table)
    console.print(f"{data['finished']}/{data['settings']['trials']} trials finished", highlight=False)
    for row in data["trials"]:
        if row["state"] == "RUNNING" and row["outcome"].startswith(INTERRUPTED_OUTCOME):
            console.print(
                f"trial {row['number']} (slot {row['slot']}) was {row['outcome']}; rerun the search "
                f"command to resume its runs from their checkpoints",
                highlight=False,
            )
    best = data["best"]
    if best is not None:
        console.print(
            f"best: trial {best['number']}, H_init={best['H_init']} H_final={best['H_final']} "
            f"beta={best['beta']}, objective {best['objective']:.2f}",
            highlight=False,
        )


def run_failures(study: optuna.Study) -> list[str]:
    """One line per trial whose run failed (not retried: the same seed fails the same way)."""
    return [
        f"trial {t.number} (slot {t.user_attrs.get('slot')}) failed: {t.user_attrs.get('error', 'no error recorded')}"
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.user_attrs.get("outcome") == "run failed"
    ]


def _nest(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in pairs:
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def best_config_yaml(study: optuna.Study, output: str) -> tuple[str, str]:
    """The best trial's schedule with the study's overrides, as a config file for
    ``harness run --config``, and the command that runs it."""
    settings = identity(study)
    best = best_trial(study)
    if best is None:
        raise ConfigError(f"study {study.study_name!r} has no complete trial yet")
    pairs = []
    for override in settings["overrides"]:
        key, _, value = override.lstrip("+~").partition("=")
        if key != "trainer.progress":
            pairs.append((key, yaml.safe_load(value) if value else None))
    pairs += [
        ("agent.target_entropy.init", best.user_attrs["H_init"]),
        ("agent.target_entropy.final", best.user_attrs["H_final"]),
        ("agent.target_entropy.decay", best.user_attrs["beta"]),
    ]
    command = [
        "harness",
        "run",
        "--config",
        output,
        "--suite",
        settings["suite"],
        "--task",
        settings["task"],
        "--agent",
        settings["agent"],
        "--preset",
        settings["preset"],
    ]
    if settings.get("steps"):
        command += ["--steps", str(settings["steps"])]
    header = (
        f"# Best schedule of study {study.study_name}: trial {best.number} (slot {best.user_attrs.get('slot')}), "
        f"objective {best.value:.2f}\n# (final evaluation return, mean over {settings['seeds']} seed(s)), "
        f"of {settings['trials']} trials. Eq. (14): init = H_init, final = H_final, decay = beta.\n"
        f"# Run it: {shlex.join(command)}\n"
    )
    return header + yaml.safe_dump(_nest(pairs), sort_keys=False), shlex.join(command)


__all__ = ["load_named_study", "print_trials", "trials_json", "run_failures", "best_config_yaml"]
