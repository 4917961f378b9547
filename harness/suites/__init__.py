"""Task suites: a registry filled once at import, ``suite name -> task name -> TaskSpec``.

Importing it loads neither gymnasium, MuJoCo nor torch (reports read task facts from it):
they are imported when an env is built (``TaskSpec.make_env``).
"""

from __future__ import annotations

from harness.names import unknown_name
from harness.suites import classic, mbpo, poplin
from harness.suites.base import EntropySchedule, TaskHyperparameters, TaskSpec

SUITES: dict[str, dict[str, TaskSpec]] = {
    mbpo.SUITE: mbpo.TASKS,
    poplin.SUITE: poplin.TASKS,
    classic.SUITE: classic.TASKS,
}


class UnknownNameError(LookupError):
    """A suite or task name that is not registered; the message lists valid ones (and the
    near miss, if any)."""


def get_suite(suite: str) -> dict[str, TaskSpec]:
    if suite not in SUITES:
        raise UnknownNameError(unknown_name("suite", suite, SUITES))
    return SUITES[suite]


def get_task(suite: str, task: str) -> TaskSpec:
    tasks = get_suite(suite)
    if task not in tasks:
        raise UnknownNameError(unknown_name("task", task, tasks))
    return tasks[task]


__all__ = ["SUITES", "TaskSpec", "TaskHyperparameters", "EntropySchedule", "UnknownNameError", "get_suite", "get_task"]
