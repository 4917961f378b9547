"""Which runs are seeds of one experiment, and how the report names each experiment.

Runs are pooled as seeds (averaged in a table cell, bootstrapped in a band or an aggregate)
only when their config.yaml files are identical apart from the seed and the operational
keys (``harness.contract.OPERATIONAL_KEYS``: output folder, launcher, wandb, ...), and they
share suite, task and agent folder (agent plus its ``+label`` of overrides). Runs of
different budgets, presets or other settings are separate experiments, and so are runs with
the same seed in different output folders (two copies of one seed are not two seeds).

A search trial's runs (``harness.contract.ORIGIN_KEY``) are never seeds of one experiment
with other runs, even of the same config: the trial that won its search was chosen for its
score, and pooling it with the final runs of its schedule would bias their mean upward.

Each experiment gets a label, the run's ``experiment``: the agent folder name when no run of
that folder in the suite needs telling apart, so ordinary reports read as before; otherwise
the folder name followed by what sets it apart, e.g. ``sac · 3,000 steps``, ``sac · preset
quick``, ``sac · folder old-runs`` or ``sac · search trial``. Every split is explained by a
warning.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.contract import ORIGIN_SEARCH_TRIAL, is_operational
from reports.runs import Run

SEED_KEY = "seed"
BUDGET_KEY = "trainer.total_steps"
PRESET_KEY = "preset"
SEPARATOR = " · "
SEARCH_TRIAL_LABEL = "search trial"
MAX_KEYS_NAMED = 4  # config keys named in a warning before "+N more"
_MISSING = object()

Fingerprint = tuple[tuple[str, str], ...]


def scientific_config(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``config`` flattened to dotted keys, without the seed and the operational keys."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if path == SEED_KEY or is_operational(path):
            continue
        if isinstance(value, dict) and value:
            flat.update(scientific_config(value, path + "."))
        else:
            flat[path] = value
    return flat


def fingerprint(config: dict[str, Any]) -> Fingerprint:
    """A hashable summary of ``scientific_config(config)``: equal for runs that are seeds of one experiment."""
    return tuple(sorted((key, repr(value)) for key, value in scientific_config(config).items()))


def run_root(run: Run) -> Path:
    """The output folder ``run`` hangs from: ``<root>/<suite>/<task>/<agent folder(s)>/seed_<n>``."""
    depth = run.agent.count("/") + 3
    parents = run.path.parents
    return parents[min(depth, len(parents) - 1)]


def short_names(paths: list[Path]) -> dict[Path, str]:
    """Each path's part after the parts all of them share (its last name where nothing is left)."""
    parts = [p.parts for p in paths]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    return {path: "/".join(path.parts[common:]) or path.name for path in paths}


def _describe(key: str, value: Any, keys: list[str]) -> str:
    """One distinguishing setting as label text: '3,000 steps', 'preset quick', 'hidden_dim=64'."""
    if value is _MISSING:
        return f"no {key}"
    if key == BUDGET_KEY:
        return f"{value:,} steps" if isinstance(value, int) else f"steps={value}"
    if key == PRESET_KEY:
        return f"preset {value}"
    short = key.split(".")[-1]
    name = short if [k.split(".")[-1] for k in keys].count(short) == 1 else key
    return f"{name}={value}"


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """Flattened keys whose value is not the same in every config (absent counts as a value)."""
    keys = sorted(set().union(*configs))
    return [k for k in keys if len({repr(c.get(k, _MISSING)) for c in configs}) > 1]


def distinguishing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """A short list of keys whose values tell ``configs`` (all distinct) apart: the budget and the
    preset where they differ, then, in name order, each further key that splits configs still
    alike."""
    differing = differing_keys(configs)
    chosen = [k for k in (BUDGET_KEY, PRESET_KEY) if k in differing]

    def distinct() -> int:
        return len({tuple(repr(c.get(k, _MISSING)) for k in chosen) for c in configs})

    for key in differing:
        if distinct() == len(configs):
            break
        if key not in chosen:
            before = distinct()
            chosen.append(key)
            if distinct() == before:
                chosen.pop()
    return chosen


def _count_text(n: int) -> str:
    return {2: "two", 3: "three", 4: "four"}.get(n, str(n))


def _budget_text(values: list[Any]) -> str:
    return ", ".join(f"{v:,}" if isinstance(v, int) else str(v) for v in values)


def _config_warning(where: str, configs: list[dict[str, Any]]) -> str:
    """Why the runs of one agent folder on one task, of these configs, are not averaged."""
    differing = differing_keys(configs)
    reasons = []
    if BUDGET_KEY in differing:
        budgets = sorted(
            {c.get(BUDGET_KEY) for c in configs}, key=lambda v: (0, v, "") if isinstance(v, int) else (1, 0, str(v))
        )
        reasons.append(f"budgets ({_budget_text(budgets)} steps)")
    if PRESET_KEY in differing:
        reasons.append(f"presets ({', '.join(sorted({str(c.get(PRESET_KEY)) for c in configs}))})")
    others = [k for k in differing if k not in (BUDGET_KEY, PRESET_KEY)]
    if others:
        named = ", ".join(others[:MAX_KEYS_NAMED]) + (
            f" +{len(others) - MAX_KEYS_NAMED} more" if len(others) > MAX_KEYS_NAMED else ""
        )
        reasons.append(f"{'other ' if reasons else ''}config.yaml values ({named})")
    return f"{where}: runs of different {' and '.join(reasons)} are shown as separate rows, not averaged"


def _seed_warning(where: str, seeds: list[int], roots: list[Path]) -> str:
    folders = ", ".join(str(r) for r in roots[:-1]) + f" and {roots[-1]}"
    if len(seeds) == 1:
        count = _count_text(len(roots))
        return f"{where}: {count} runs with seed {seeds[0]} in folders {folders}: shown as separate rows, not averaged"
    return (
        f"{where}: runs with seeds {', '.join(map(str, seeds))} in more than one folder ({folders}): "
        "shown as separate rows, one per folder, not averaged"
    )


def _origin_warning(where: str, trial_runs: list[Run]) -> str:
    """Why search-trial runs of a config are not pooled with the other runs of that config."""
    seeds = ", ".join(str(s) for s in sorted({r.seed for r in trial_runs}))
    plural = len(trial_runs) > 1
    return (
        f"{where}: {'runs' if plural else 'the run'} of a search trial (seed{'s' if ',' in seeds else ''} {seeds}) "
        f"{'are' if plural else 'is'} shown as a separate row, not averaged with the other runs of this config: "
        f"a trial that won its search was chosen for its score, so counting it again as a seed would bias the "
        f"mean upward"
    )


@dataclass
class _Experiment:
    """Runs pooled as seeds: one config (None: no config.yaml), one origin and, when a seed
    repeated, one root."""

    runs: list[Run]
    config: dict[str, Any] | None
    root: Path | None = None

    @property
    def search_trial(self) -> bool:
        return self.runs[0].origin == ORIGIN_SEARCH_TRIAL

    def shared_root(self) -> Path | None:
        roots = {run_root(r) for r in self.runs}
        return roots.pop() if len(roots) == 1 else None


def _split_duplicate_seeds(where: str, experiment: _Experiment, warnings: list[str]) -> list[_Experiment]:
    """One config's runs as one experiment, or one per output folder when a seed repeats."""
    seeds = [r.seed for r in experiment.runs]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if not repeated:
        return [experiment]
    by_root: dict[Path, list[Run]] = defaultdict(list)
    for run in experiment.runs:
        by_root[run_root(run)].append(run)
    roots = sorted(by_root)
    warnings.append(_seed_warning(where, repeated, [r for r in roots if any(x.seed in repeated for x in by_root[r])]))
    return [_Experiment(by_root[root], experiment.config, root) for root in roots]


def _split_origins(where: str, experiment: _Experiment, warnings: list[str]) -> list[_Experiment]:
    """One config's runs as one experiment, or the search trial's runs apart from the others."""
    trial_runs = [r for r in experiment.runs if r.origin == ORIGIN_SEARCH_TRIAL]
    if not trial_runs or len(trial_runs) == len(experiment.runs):
        return [experiment]
    warnings.append(_origin_warning(where, trial_runs))
    others = [r for r in experiment.runs if r.origin != ORIGIN_SEARCH_TRIAL]
    return [_Experiment(others, experiment.config), _Experiment(trial_runs, experiment.config)]


def _task_experiments(where: str, runs: list[Run], warnings: list[str]) -> tuple[list[_Experiment], list[str]]:
    """The experiments of one agent folder on one task, and the config keys that tell them apart."""
    by_config: dict[Fingerprint | None, list[Run]] = defaultdict(list)
    for run in runs:
        by_config[fingerprint(run.config) if run.config else None].append(run)
    configs: dict[Fingerprint | None, dict[str, Any]] = {
        key: scientific_config(group[0].config) for key, group in by_config.items() if key is not None
    }
    keys = distinguishing_keys(list(configs.values())) if len(configs) > 1 else []
    if len(configs) > 1:
        warnings.append(_config_warning(where, list(configs.values())))
    if None in by_config and configs and any(r.final_return is not None for r in by_config[None]):
        warnings.append(
            f"{where}: runs without a config.yaml cannot be compared with the others: shown as a separate row"
        )
    experiments = []
    for key, group in by_config.items():
        for experiment in _split_origins(where, _Experiment(group, configs.get(key)), warnings):
            experiments += _split_duplicate_seeds(where, experiment, warnings)
    return experiments, keys


def _label(
    agent: str, experiment: _Experiment, keys: list[str], alone: bool, root_names: dict[Path, str], mixed_origins: bool
) -> str:
    """The agent folder name, then the values of ``keys`` (or "no config.yaml" unless ``alone``),
    then "search trial" where the folder's search-trial runs need telling from its others
    (``mixed_origins``), then the experiment's output folder where one is named in ``root_names``."""
    if experiment.config is None:
        parts = [] if alone else ["no config.yaml"]
    else:
        parts = [_describe(k, experiment.config.get(k, _MISSING), keys) for k in keys]
    if mixed_origins and experiment.search_trial:
        parts.append(SEARCH_TRIAL_LABEL)
    root = experiment.shared_root()
    if root in root_names:
        parts.append(f"folder {root_names[root]}")
    return SEPARATOR.join([agent, *parts])


def assign_experiments(runs: list[Run]) -> list[str]:
    """Set each run's ``experiment`` label (see the module docstring); returns the warnings
    that explain every agent folder split into several experiments.

    Labels are chosen per (suite, agent folder), so a table row spans tasks: the config keys
    that tell experiments apart on some task, and the output folder where a seed repeated on
    some task, qualify that agent folder's experiments on every task of the suite."""
    warnings: list[str] = []
    buckets: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        buckets[(run.suite, run.task, run.agent)].append(run)
    by_folder: dict[tuple[str, str], list[tuple[list[_Experiment], list[str]]]] = defaultdict(list)
    for (suite, task, agent), members in sorted(buckets.items()):
        by_folder[(suite, agent)].append(_task_experiments(f"{suite}/{task} {agent}", members, warnings))
    for (_suite, agent), tasks in by_folder.items():
        chosen = {key for _, keys in tasks for key in keys}
        keys = [k for k in (BUDGET_KEY, PRESET_KEY) if k in chosen] + sorted(chosen - {BUDGET_KEY, PRESET_KEY})
        split = [e.root for experiments, _ in tasks for e in experiments if e.root is not None]
        shared = {common for experiments, _ in tasks for e in experiments if (common := e.shared_root()) is not None}
        root_names = short_names(sorted(shared)) if split else {}
        mixed_origins = len({e.search_trial for experiments, _ in tasks for e in experiments}) > 1
        for experiments, _ in tasks:
            alone = all(e.config is None for e in experiments)
            for experiment in experiments:
                label = _label(agent, experiment, keys, alone, root_names, mixed_origins)
                for run in experiment.runs:
                    run.experiment = label
    return warnings
