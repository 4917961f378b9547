"""The paper's Table 2 protocol as one resumable study: for every horizon H, the target-entropy
search of appendix A.2 (H = 0 is SAC), then the best schedule on fresh seeds, then one report
beside the published rows.

Layout under ``<out>/<suite>-<task>/``:
- ``search/table2-<suite>-<task>-H<h>/``: one entropy-search study folder per H;
- ``final/<suite>/<task>/<agent>+<label>/seed_<n>/``: the final runs, seeds K..K+N-1 where K
  is the number of search seeds (so no final run reuses a search seed);
- ``table2.html`` and ``table2.json``: the report of the final runs (the search panels come
  from the study folders).
Every stage skips what is done, so rerunning the command resumes wherever it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import ConfigError
from studies.entropy_search import SearchSettings, run_search
from studies.entropy_search import check_settings as check_search
from studies.entropy_space import Schedule
from studies.slots import best_trial


@dataclass
class Table2Settings:
    """Everything ``harness study table2`` was asked."""

    suite: str
    task: str
    horizons: list[int]
    trials: int = 20
    search_seeds: int = 1
    seeds: int = 10
    preset: str = "paper"
    steps: int | None = None
    launcher: str = "local"
    jobs: int = 1
    workers: int = 1
    out: str = "runs/table2"
    storage: str | None = None
    sampler: str = "random"
    pruner: str = "none"
    study_seed: int = 0
    wandb: str = "disabled"
    reps: int | None = None
    overrides: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return Path(self.out) / f"{self.suite}-{self.task}"


def agent_for(horizon: int) -> tuple[str, list[str]]:
    """Table 2's row for H: SAC at H = 0, else SAC-SVG(H) (the agent and its horizon override)."""
    return ("sac", []) if horizon == 0 else ("sac-svg", [f"agent.horizon={horizon}"])


def parse_horizons(text: str) -> list[int]:
    try:
        horizons = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise ConfigError(f"--horizons {text!r}: give comma-separated whole numbers, e.g. 0,1,2,3,4,5,10") from error
    if not horizons or any(h < 0 for h in horizons) or len(set(horizons)) != len(horizons):
        raise ConfigError(f"--horizons {text!r}: give distinct horizons >= 0, e.g. 0,1,2,3,4,5,10")
    return horizons


def search_settings(settings: Table2Settings, horizon: int) -> SearchSettings:
    agent, horizon_override = agent_for(horizon)
    return SearchSettings(
        suite=settings.suite,
        task=settings.task,
        trials=settings.trials,
        agent=agent,
        preset=settings.preset,
        steps=settings.steps,
        seeds=settings.search_seeds,
        study=f"table2-{settings.suite}-{settings.task}-H{horizon}",
        storage=settings.storage,
        workers=settings.workers,
        sampler=settings.sampler,
        pruner=settings.pruner,
        study_seed=settings.study_seed,
        out=str(settings.root / "search"),
        wandb=settings.wandb,
        overrides=[*horizon_override, *settings.overrides],
    )


def final_jobs(settings: Table2Settings, horizon: int, schedule: Schedule) -> list:
    """The best schedule's runs on seeds the search never used."""
    from harness.launch import plan_jobs  # noqa: PLC0415 - torch: a bad count is refused before it loads

    agent, horizon_override = agent_for(horizon)
    seeds = list(range(settings.search_seeds, settings.search_seeds + settings.seeds))
    return plan_jobs(
        settings.suite,
        [settings.task],
        agent,
        seeds,
        settings.preset,
        settings.launcher,
        settings.steps,
        str(settings.root / "final"),
        settings.wandb,
        [*horizon_override, *settings.overrides, *schedule.overrides(), f"launcher.jobs={settings.jobs}"],
    )


def check_settings(settings: Table2Settings) -> None:
    """Refuse bad names, overrides or counts before any stage starts."""
    for name, value in (
        ("trials", settings.trials),
        ("search-seeds", settings.search_seeds),
        ("seeds", settings.seeds),
    ):
        if value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    for horizon in settings.horizons:
        check_search(search_settings(settings, horizon))
        final_jobs(settings, horizon, Schedule(0, -1, 1))


def run_table2(settings: Table2Settings, say: Callable[[str], None] = print) -> dict:
    """Run (or resume) every stage; returns the report's paths and the failed final runs."""
    from harness.launch import launch  # noqa: PLC0415 - torch: a bad count is refused before it loads

    check_settings(settings)
    finals, failures = [], []
    for horizon in settings.horizons:
        search = search_settings(settings, horizon)
        say(
            f"H={horizon}: entropy search {search.study_name} ({settings.trials} trials, "
            f"{settings.search_seeds} seed(s) each)"
        )

        def say_for_horizon(line: str, h: int = horizon) -> None:
            say(f"H={h}: {line}")

        study = run_search(search, say=say_for_horizon)
        best = best_trial(study)
        if best is None:
            failures.append(f"H={horizon}: no trial of {search.study_name} completed; no final runs")
            continue
        schedule = Schedule(best.user_attrs["H_init"], best.user_attrs["H_final"], best.user_attrs["beta"])
        jobs = final_jobs(settings, horizon, schedule)
        say(
            f"H={horizon}: best schedule H_init={schedule.init} H_final={schedule.final} beta={schedule.beta} "
            f"(trial {best.number}, objective {best.value:.2f}); final runs on seeds "
            f"{jobs[0].config.seed}..{jobs[-1].config.seed}"
        )
        results = launch(jobs, jobs[0].config.launcher)
        failures += [f"H={horizon}: run {r.path} failed: {r.message}" for r in results if r.status == "failed"]
        finals.append(horizon)
    return {
        "final": settings.root / "final",
        "search": settings.root / "search",
        "horizons": finals,
        "failures": failures,
    }
