"""Search workers as SLURM jobs (``harness search entropy --launcher submitit --workers W``).

The command creates the study and enqueues its slots once, then submits W jobs; each job is
an ordinary worker of the study (the same protocol as workers started by hand), so the study
still ends with exactly N trials. The workers share the study's storage: a journal file on a
filesystem every node mounts, or a PostgreSQL URL. A preempted or timed-out worker requeues
itself; its trial is taken over (and its runs resumed) once its heartbeat is still.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import slurm
from harness.config import LauncherConfig
from studies.entropy_search import SearchSettings, Worker, check_settings
from studies.slots import slot_states
from studies.storage import is_url


class SearchWorkerJob:
    """A submitit callable: worker ``index`` of the study, given as (settings as a dict,
    index); requeued on preemption or time-out."""

    def __call__(self, task: tuple[dict[str, Any], int]) -> int:
        settings, index = task

        def say(line: str) -> None:
            print(f"[worker {index}] {line}", flush=True)

        Worker(SearchSettings(**settings), say=say).run()
        return index

    def checkpoint(self, task: tuple[dict[str, Any], int]) -> Any:
        import submitit  # noqa: PLC0415 - only a requeued SLURM job needs it

        return submitit.helpers.DelayedSubmission(self, task)


def submit_search_workers(
    settings: SearchSettings, launcher: LauncherConfig, wait: bool, say: Callable[[str], None] = print
) -> list[str]:
    """Create the study, enqueue its slots, submit ``settings.workers`` worker jobs and record
    them in the study folder's manifest; with ``wait``, block until they end. Returns the
    job ids ([] when the study's worker jobs are still queued or running: none is added);
    an sbatch refusal is one line (``harness.slurm.SubmissionRefused``)."""
    check_settings(settings)
    folder = settings.study_dir
    recorded, states = slurm.recorded_job_states(folder)
    active = sorted(job_id for job_id in recorded.values() if states.may_be_queued(job_id))
    if active:
        say(
            f"worker jobs of {settings.study_name} are still queued or running ({', '.join(active)}"
            f"{'; ' + states.note if states.note else ''}); "
            f"not submitting more: follow them with harness status {folder}"
        )
        return []
    if not is_url(settings.storage_text):
        say(
            f"the workers share the journal file {Path(settings.storage_text).resolve()}: every node must mount "
            f"it at that path (on many nodes, a postgresql:// --storage scales better)"
        )
    parent = Worker(settings, say)
    trials = parent.study.get_trials(deepcopy=False)
    parent.enqueue_open_slots(trials, slot_states(trials, settings.trials))
    executor = slurm.make_executor(launcher, folder / slurm.LOG_FOLDER, f"svgbench-search-{settings.study_name}")
    if executor.cluster == "slurm":
        executor.update_parameters(slurm_array_parallelism=settings.workers)
    one_worker = dataclasses.replace(settings, workers=1)
    arguments = [(dataclasses.asdict(one_worker), index) for index in range(settings.workers)]
    handles = slurm.submit_array(executor, SearchWorkerJob(), arguments)
    ids = [handle.job_id for handle in handles]
    manifest = slurm.record_submission(
        folder,
        "search-worker",
        [(job_id, f"{settings.study_name} worker {i}") for i, job_id in enumerate(ids)],
        executor.cluster,
    )
    say(f"submitted {len(ids)} search worker job(s) to {executor.cluster}: {', '.join(ids)}; recorded in {manifest}")
    if not wait:
        say(
            f"follow them with: harness search show --study {settings.study_name} --out {settings.out}"
            f"{' --storage ' + settings.storage if settings.storage else ''}   or: harness status {folder}"
        )
        return ids
    failures = []
    for handle in handles:
        try:
            handle.result()
        except Exception as error:  # noqa: BLE001 - one line per worker that ended badly
            failures.append(f"worker job {handle.job_id}: {slurm.first_line(error)}")
    for line in failures:
        say(line)
    return ids
