"""Task suites: a registry filled once at import, ``suite name -> task name -> TaskSpec``."""

from __future__ import annotations

from harness.suites import classic, mbpo, poplin
from harness.suites.base import EntropySchedule, TaskHyperparameters, TaskSpec

SUITES: dict[str, dict[str, TaskSpec]] = {
    mbpo.SUITE: mbpo.TASKS,
    poplin.SUITE: poplin.TASKS,
    classic.SUITE: classic.TASKS,
}


class UnknownNameError(LookupError):
    """A suite or task name that is not registered; the message lists valid ones."""


def get_suite(suite: str) -> dict[str, TaskSpec]:
    if suite not in SUITES:
        raise UnknownNameError(f"unknown suite {suite!r}; valid suites: {', '.join(SUITES)}")
    return SUITES[suite]


def get_task(suite: str, task: str) -> TaskSpec:
    tasks = get_suite(suite)
    if task not in tasks:
        raise UnknownNameError(f"unknown task {task!r} in suite {suite!r}; valid tasks: {', '.join(tasks)}")
    return tasks[task]


__all__ = ["SUITES", "TaskSpec", "TaskHyperparameters", "EntropySchedule", "UnknownNameError",
           "get_suite", "get_task"]
