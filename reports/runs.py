"""One run folder as the reports see it (``Run``): who it is, how far it got, what it
recorded. ``reports.load`` fills it from the folder; ``reports.experiments`` pools runs into
experiments by their settings. Owning the class here keeps those two modules one-way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.contract import DONE, ORIGIN_RUN


@dataclass
class Run:
    """One run folder: who it is, how far it got, and what it recorded."""

    path: Path
    suite: str
    task: str
    agent: str  # the folder name, with its ``+label`` of overrides
    seed: int
    status: str  # done | running | interrupted | failed | unreadable
    horizon: int | None = None
    preset: str | None = None
    steps_done: int | None = None
    total_steps: int | None = None
    final_eval_return: float | None = None
    best_eval_return: float | None = None
    wall_time: float | None = None  # seconds
    steps_per_second: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    error: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    config_text: str = ""
    evals: pd.DataFrame = field(default_factory=pd.DataFrame)  # eval.csv as read, sorted by step
    videos: dict[int, Path] = field(default_factory=dict)  # evaluation videos by env step (contract.list_videos)
    problems: list[str] = field(default_factory=list)
    experiment: str = ""  # the label of the runs it is pooled with (reports.experiments); default: agent
    origin: str = ORIGIN_RUN  # ORIGIN_SEARCH_TRIAL for a search trial's run (harness.contract.ORIGIN_KEY)

    def __post_init__(self) -> None:
        self.experiment = self.experiment or self.agent

    @property
    def base_agent(self) -> str:
        """The agent's registry name, without the ``+label`` of overrides."""
        return self.agent.split("+", 1)[0]

    @property
    def complete(self) -> bool:
        return self.status == DONE

    @property
    def last_eval_step(self) -> int | None:
        return None if self.evals.empty else int(self.evals["step"].iloc[-1])

    @property
    def final_return(self) -> float | None:
        """return_mean of the last evaluation recorded in eval.csv (None before the first)."""
        return None if self.evals.empty else float(self.evals["return_mean"].iloc[-1])

    def target_entropy(self) -> tuple[float, float, float | None] | None:
        """(init, final, decay) of eq. (14) from config.yaml; decay None means constant."""
        schedule = (self.config.get("agent") or {}).get("target_entropy")
        if not isinstance(schedule, dict) or "init" not in schedule:
            return None
        decay = schedule.get("decay")
        final = schedule["final"] if "final" in schedule else schedule["init"]
        return float(schedule["init"]), float(final), (None if decay is None else float(decay))
