"""The slot rules of a search, and the trials table they give (``contract.TRIAL_COLUMNS``).

A study of N trials is N slots (user attribute ``slot``). A slot is settled by a COMPLETE or
PRUNED trial, or a FAIL whose run failed (outcome ``FINAL_FAIL_OUTCOME``); a WAITING or RUNNING
trial keeps it live; anything else leaves it open, to be enqueued again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from studies import contract
from studies.entropy_space import Schedule
from studies.liveness import gone_worker

FINAL_FAIL_OUTCOME = "run failed"  # the only FAIL that settles its slot
INTERRUPTED_OUTCOME = "interrupted"  # read, not stored: a RUNNING trial whose worker is gone


def slot_of(trial: FrozenTrial) -> int | None:
    slot = trial.user_attrs.get("slot")
    return slot if isinstance(slot, int) else None


def settles_slot(trial: FrozenTrial) -> bool:
    """Whether this trial settles its slot: COMPLETE, PRUNED, or FAIL because its run failed."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and trial.user_attrs.get("outcome") == FINAL_FAIL_OUTCOME


def slot_states(trials: list[FrozenTrial], count: int) -> dict[int, str]:
    """Per slot: "done" (settled), "live" (a WAITING or RUNNING trial) or "open" (neither)."""
    states = {slot: "open" for slot in range(count)}
    for trial in trials:
        slot = slot_of(trial)
        if slot is None or slot not in states:
            continue
        if settles_slot(trial):
            states[slot] = "done"
        elif trial.state in (TrialState.WAITING, TrialState.RUNNING) and states[slot] == "open":
            states[slot] = "live"
    return states


def outcome(trial: FrozenTrial) -> str:
    """Why the trial ended as it did (its ``outcome`` attribute), or its state in lower case;
    a RUNNING trial whose worker is gone (``liveness.gone_worker``) reads "interrupted: why":
    its Optuna state stays RUNNING until a worker of the study fails it and takes its slot."""
    if trial.state == TrialState.RUNNING:
        why = gone_worker(trial.user_attrs)
        if why:
            return f"{INTERRUPTED_OUTCOME}: {why}"
    return str(trial.user_attrs.get("outcome", trial.state.name.lower()))


def trial_rows(study: optuna.Study, study_dir: Path) -> list[dict[str, Any]]:
    """One row per slot trial, in ``contract.TRIAL_COLUMNS``."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        slot = slot_of(trial)
        if slot is None:
            continue
        # a WAITING trial of the random search already holds its schedule as fixed parameters
        schedule = Schedule.from_params(trial.params) or Schedule.from_params(
            trial.system_attrs.get("fixed_params") or {}
        )
        rows.append(
            {
                "number": trial.number,
                "slot": slot,
                "state": trial.state.name,
                "H_init": None if schedule is None else schedule.init,
                "H_final": None if schedule is None else schedule.final,
                "beta": None if schedule is None else schedule.beta,
                "objective": trial.value if trial.state == TrialState.COMPLETE else None,
                "outcome": outcome(trial),
                "run_folder": str(contract.slot_folder(study_dir, slot).relative_to(study_dir)),
            }
        )
    return rows


def export_trials(study: optuna.Study, study_dir: Path) -> None:
    contract.write_trials_file(study_dir, trial_rows(study, study_dir))


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if slot_of(t) is not None]
    return max(complete, key=lambda t: -math.inf if t.value is None else t.value) if complete else None


def finished_count(study: optuna.Study, count: int) -> int:
    return sum(state == "done" for state in slot_states(study.get_trials(deepcopy=False), count).values())
