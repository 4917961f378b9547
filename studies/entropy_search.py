"""The paper's target-entropy search (appendix A.2) as an Optuna study that any number of
workers, here or on other machines, can run together and resume after any crash.

How exactly N trials come out, however the study is run:
- The study is N *slots*. Each slot is one Optuna trial enqueued as WAITING with user
  attribute ``slot`` and, for the random search, its schedule drawn from the study seed
  (``entropy_space.sample_schedules``), so the same seed gives the same schedules whatever
  order workers take them in. With ``--sampler tpe`` a slot's schedule is asked of TPE
  when a worker takes it (the first ``TPE_STARTUP`` slots are drawn at random as above, and
  each TPE trial has its own seed, so concurrent workers do not suggest the same schedule).
- A worker takes a WAITING trial with Optuna's atomic WAITING -> RUNNING transition (what
  ``study.ask`` does for enqueued trials), so no two workers ever hold the same trial.
- A slot is finished when one of its trials is COMPLETE or PRUNED, or FAIL with outcome
  "run failed" (its run failed, e.g. a diverging loss: the same seed would fail the same
  way, so it is not retried). Any other FAIL (worker died, interrupted, duplicate, failed
  by hand) leaves the slot to be taken again. Of two live trials of one
  slot (two workers enqueued it at once), the lower-numbered one counts; the other is
  failed as "duplicate" when taken, before any training.
- A running worker beats a heartbeat (a trial user attribute). A RUNNING trial whose worker
  is gone is failed ("worker died") and its slot enqueued again, with the same schedule:
  gone means a process of this machine that no longer exists, or a heartbeat that has not
  moved for ``stale_after`` seconds. The new trial resumes the slot's runs from their
  checkpoints (they are ordinary run directories under ``trials/slot_<k>/``).
- Workers stop when every slot is finished, waiting for other workers' trials if need be
  (one of them may die and leave its slot to be taken over). A storage that fails stops
  the worker with one line; its trial stays RUNNING and a rerun takes it over.
- Claims rely on the storage's row locks: journal files and PostgreSQL/MySQL have them,
  SQLite does not (it ignores SELECT ... FOR UPDATE), so SQLite takes one worker at a time.
Every trial is made of ordinary run directories, so ``harness status`` and ``harness report``
work on them, and the objective is read back from their summaries.
"""

from __future__ import annotations

import csv
import ctypes
import dataclasses
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from baselines import get_agent
from harness.config import ConfigError, RunFailure, random_only_problem, to_yaml
from harness.contract import ORIGIN_KEY, ORIGIN_SEARCH_TRIAL
from harness.process import available_cores, core_share, pin_to_cores
from harness.suites import get_task
from studies import contract
from studies.entropy_space import Schedule, sample_schedules, space_description, suggest_schedule
from studies.liveness import HEARTBEAT_ATTR, STALE_AFTER_SECONDS, WORKER_ATTR, Heartbeat, is_gone_here, process_identity
from studies.slots import FINAL_FAIL_OUTCOME, export_trials, finished_count, settles_slot, slot_of, slot_states
from studies.storage import (
    FOLDER_ATTR,
    STORAGE_ERRORS,
    StorageUnavailable,
    create_or_load_study,
    describe,
    is_url,
    storage_errors,
)

SAMPLERS = ("random", "tpe")
PRUNERS = ("none", "median")
TPE_STARTUP = 10  # TPE slots drawn at random before TPE models the results (Optuna's default)


@dataclass
class SearchSettings:
    """Everything ``harness search entropy`` was asked."""

    suite: str
    task: str
    trials: int
    agent: str = "sac-svg"
    preset: str = "paper"
    steps: int | None = None
    seeds: int = 1  # the objective is the final evaluation return averaged over seeds 0..K-1
    study: str | None = None  # default: entropy-<suite>-<task>-<agent>
    storage: str | None = None  # default: <out>/<study>/study.journal
    workers: int = 1
    sampler: str = "random"
    pruner: str = "none"
    study_seed: int = 0
    out: str = "runs/search"
    wandb: str = "disabled"
    overrides: list[str] = field(default_factory=list)
    # a trial's seeds trained by its worker as one batch (harness.batched_trainer), not one after another
    batch_seeds: bool = False
    # liveness of other workers: heartbeat period, and how long a still heartbeat means dead
    heartbeat_seconds: float = 20.0
    stale_after_seconds: float = STALE_AFTER_SECONDS
    poll_seconds: float = 2.0

    @property
    def study_name(self) -> str:
        return self.study or f"entropy-{self.suite}-{self.task}-{self.agent}"

    @property
    def study_dir(self) -> Path:
        return Path(self.out) / self.study_name

    @property
    def storage_text(self) -> str:
        return self.storage or str(self.study_dir / contract.JOURNAL_FILE)

    def identity(self) -> dict[str, Any]:
        """What makes two commands the same study (not where or how fast it runs)."""
        return {
            "kind": "entropy-search",
            "suite": self.suite,
            "task": self.task,
            "agent": self.agent,
            "preset": self.preset,
            "steps": self.steps,
            "seeds": self.seeds,
            "trials": self.trials,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "study_seed": self.study_seed,
            "overrides": list(self.overrides),
            "space": space_description(),
        }


def check_settings(settings: SearchSettings) -> None:
    """Refuse what cannot make a study, before anything is created."""
    if settings.sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {settings.sampler!r}; valid samplers: {', '.join(SAMPLERS)}")
    if settings.pruner not in PRUNERS:
        raise ConfigError(f"unknown pruner {settings.pruner!r}; valid pruners: {', '.join(PRUNERS)}")
    for override in settings.overrides:
        if override.lstrip("+~").startswith("agent.target_entropy"):
            raise ConfigError(f"override {override!r}: the search sets agent.target_entropy itself")
    for name, value in (("trials", settings.trials), ("seeds", settings.seeds), ("workers", settings.workers)):
        if value < 1:
            raise ConfigError(f"--{name} must be at least 1, got {value}")
    name = settings.study_name
    if not name or name.startswith(".") or any(c in name for c in "/\\") or not name.isprintable():
        raise ConfigError(f"--study {name!r}: a study name is one folder name (no '/', not starting with '.')")
    if settings.workers > 1 and is_url(settings.storage_text) and settings.storage_text.startswith("sqlite"):
        raise ConfigError(
            "SQLite has no row locks, so two workers could take one trial: use --workers 1 with a "
            "sqlite:// storage, or a journal file or postgresql:// storage for several workers"
        )

    get_task(settings.suite, settings.task)
    get_agent(settings.agent)
    # compose one trial's runs: an unknown suite, task, agent, preset or override fails here
    trainer = plan_trial_jobs(settings, 0, Schedule(0, -1, 1))[0].config.trainer
    problem = random_only_problem(trainer)
    if problem:  # every objective would be the random policy's: a "best" schedule would mean nothing
        raise ConfigError(
            f"{problem}, so every trial would score the same random policy; raise --steps above "
            f"{trainer.seed_steps} or lower trainer.seed_steps"
        )


def make_sampler(settings: SearchSettings, trial_number: int = 0) -> optuna.samplers.BaseSampler:
    """Random search: every slot's schedule is enqueued, the sampler draws nothing. TPE: a
    sampler seeded per trial, so workers that ask at once do not draw the same schedule."""
    if settings.sampler == "tpe":
        return optuna.samplers.TPESampler(
            seed=settings.study_seed * 1_000_003 + trial_number, n_startup_trials=TPE_STARTUP
        )
    return optuna.samplers.RandomSampler(seed=settings.study_seed)


def make_pruner(settings: SearchSettings) -> optuna.pruners.BasePruner:
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def open_search(settings: SearchSettings) -> optuna.Study:
    """Create or load the study and write study.json."""
    study = create_or_load_study(
        settings.study_name,
        settings.storage_text,
        settings.identity(),
        make_sampler(settings),
        make_pruner(settings),
        grows=("trials",),  # more trials extend the study: sample_schedules(n) starts with sample_schedules(m < n)
    )
    from agents.objectives import target_entropy_schedule  # noqa: PLC0415 - torch, after a worker pins its cores

    paper = get_task(settings.suite, settings.task).paper.entropy
    total = int(plan_trial_jobs(settings, 0, Schedule(0, -1, 1))[0].config.trainer.total_steps)
    steps = [round(total * i / 200) for i in range(201)]
    info = {
        **{k: v for k, v in dataclasses.asdict(settings).items() if not k.endswith("_seconds")},
        "study": settings.study_name,
        "storage": describe(settings.storage_text),
        "space": space_description(),
        "paper_schedule": [paper.init, paper.final, paper.decay],
        "paper_schedule_curve": {
            "steps": steps,
            "values": [target_entropy_schedule(t, total, paper.init, paper.final, paper.decay) for t in steps],
        },
    }
    info.pop("workers", None)
    contract.write_study_file(settings.study_dir, info)
    study.set_user_attr(FOLDER_ATTR, str(settings.study_dir.resolve()))
    return study


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The trial's id in the study's storage, which the storage's methods take."""
    return trial._trial_id  # noqa: SLF001 - Optuna has no public getter


# ------------------------------------------------------------------------------- trials


def plan_trial_jobs(settings: SearchSettings, slot: int, schedule: Schedule) -> list[Any]:
    """The run jobs of one slot: seeds 0..K-1 with the schedule, under ``trials/slot_<k>/``."""
    from harness.launch import plan_jobs  # noqa: PLC0415 - torch, after a worker pins its cores

    overrides = [*settings.overrides, *schedule.overrides(), "trainer.progress=false"]
    return plan_jobs(
        settings.suite,
        [settings.task],
        settings.agent,
        list(range(settings.seeds)),
        settings.preset,
        "local",
        settings.steps,
        str(contract.slot_folder(settings.study_dir, slot)),
        settings.wandb,
        overrides,
    )


class RunFailed(RuntimeError):
    """A trial's run failed (e.g. a diverging loss): the trial fails for good."""


class IntermediateReporter:
    """Reports each evaluation's return to the trial (step offset by seed, so seed k's
    evaluations are steps k*T + t) and raises TrialPruned when the pruner says so."""

    def __init__(self, trial: optuna.Trial, seed_index: int, total_steps: int) -> None:
        self.trial, self.seed_index, self.offset = trial, seed_index, seed_index * total_steps

    def __call__(self, step: int, value: float) -> None:
        if not math.isfinite(value):
            return
        try:
            self.trial.report(value, self.offset + step)
            prune = self.trial.should_prune()
        except STORAGE_ERRORS as error:  # not the run's failure: stop, and let a rerun resume
            raise StorageUnavailable(
                f"the study's storage failed while reporting step {step} "
                f"({type(error).__name__}); rerun the same command to resume"
            ) from error
        if prune:
            raise optuna.TrialPruned(
                f"pruned by the median pruner at step {step} of the trial's seed "
                f"#{self.seed_index} (return {value:.2f})"
            )


class Worker:
    """One process taking trials of the study until every slot is finished."""

    def __init__(self, settings: SearchSettings, say: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.say = say
        self.study = open_search(settings)
        self.storage = self.study._storage  # noqa: SLF001 - Optuna has no public getter
        self.identity = process_identity()
        self.schedules = sample_schedules(settings.trials, settings.study_seed)
        self.still_beats: dict[int, tuple[Any, float]] = {}  # trial id -> (heartbeat, first seen)
        self.waiting_said = False

    # ---------------------------------------------------------------------- the loop

    def run(self) -> None:
        with storage_errors(self.settings.storage_text):
            self._run()

    def _run(self) -> None:
        while True:
            trials = self.study.get_trials(deepcopy=False)
            states = slot_states(trials, self.settings.trials)
            if all(state == "done" for state in states.values()):
                break
            self.fail_dead_workers(trials)
            self.enqueue_open_slots(trials, states)
            trial = self.take_waiting_trial()
            if trial is None:
                if not self.waiting_said:
                    running = sorted(t.number for t in trials if t.state == TrialState.RUNNING)
                    self.say(f"waiting for trials run by other workers: {', '.join(map(str, running)) or 'none'}")
                    self.waiting_said = True
                time.sleep(self.settings.poll_seconds)
                continue
            self.waiting_said = False
            self.run_trial(trial)
        self.take_waiting_trial()  # every slot is done: a trial still waiting is failed as a duplicate
        export_trials(self.study, self.settings.study_dir)

    def enqueue_open_slots(self, trials: list[FrozenTrial], states: dict[int, str]) -> None:
        for slot, state in states.items():
            if state != "open":
                continue
            if self.settings.sampler == "random" or slot < TPE_STARTUP:
                params = self.schedules[slot].params()
            else:
                params = self._last_params(trials, slot)
            self.study.enqueue_trial(params, user_attrs={"slot": slot}, skip_if_exists=False)

    @staticmethod
    def _last_params(trials: list[FrozenTrial], slot: int) -> dict[str, Any]:
        """A retried TPE slot keeps the schedule its runs were started with."""
        tried = [s for t in trials if slot_of(t) == slot and (s := Schedule.from_params(t.params)) is not None]
        return tried[-1].params() if tried else {}

    def fail_dead_workers(self, trials: list[FrozenTrial]) -> None:
        now = time.monotonic()
        for trial in trials:
            if trial.state != TrialState.RUNNING or slot_of(trial) is None:
                continue
            worker = str(trial.user_attrs.get(WORKER_ATTR, ""))
            beat = trial.user_attrs.get(HEARTBEAT_ATTR)
            seen, since = self.still_beats.get(trial_id(trial), (object(), now))
            if beat != seen:
                self.still_beats[trial_id(trial)] = (beat, now)
            gone = is_gone_here(worker) or (beat == seen and now - since > self.settings.stale_after_seconds)
            # this worker holds no trial while it looks, so one under its own name is an orphan
            if gone or worker == self.identity:
                try:
                    self.storage.set_trial_user_attr(trial_id(trial), "outcome", "worker died")
                    self.storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)
                except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
                    continue
                self.say(
                    f"trial {trial.number} (slot {slot_of(trial)}): its worker {worker} is gone; "
                    f"the slot is taken again and resumes from its runs' checkpoints"
                )

    def take_waiting_trial(self) -> optuna.Trial | None:
        """Claim a WAITING trial (lowest number first), atomically; drop duplicates."""
        study_id = self.study._study_id  # noqa: SLF001 - Optuna has no public getter
        waiting = self.storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
        for frozen in sorted(waiting, key=lambda t: t.number):
            if slot_of(frozen) is None:
                continue
            try:
                if not self.storage.set_trial_state_values(trial_id(frozen), TrialState.RUNNING):
                    continue  # another worker took it first
            except optuna.exceptions.UpdateFinishedTrialError:  # taken and already ended (a duplicate) by another
                continue
            self.storage.set_trial_user_attr(trial_id(frozen), WORKER_ATTR, self.identity)
            self.storage.set_trial_user_attr(trial_id(frozen), HEARTBEAT_ATTR, time.time())
            if self._duplicate(frozen):
                self.storage.set_trial_user_attr(trial_id(frozen), "outcome", "duplicate")
                self.storage.set_trial_state_values(trial_id(frozen), TrialState.FAIL)
                continue
            if self.settings.sampler == "tpe":
                self.study.sampler = make_sampler(self.settings, frozen.number)
            return optuna.trial.Trial(self.study, trial_id(frozen))
        return None

    def _duplicate(self, mine: FrozenTrial) -> bool:
        slot = slot_of(mine)
        for other in self.study.get_trials(deepcopy=False):
            if slot_of(other) != slot or other.number == mine.number:
                continue
            if settles_slot(other) or (other.number < mine.number and other.state != TrialState.FAIL):
                return True
        return False

    # ---------------------------------------------------------------------- one trial

    def run_trial(self, trial: optuna.Trial) -> None:
        slot = trial.user_attrs["slot"]
        schedule = suggest_schedule(trial)
        for key, setting in (("H_init", schedule.init), ("H_final", schedule.final), ("beta", schedule.beta)):
            trial.set_user_attr(key, setting)
        text = (
            f"trial {trial.number} (slot {slot}): H_init={schedule.init} H_final={schedule.final} beta={schedule.beta}"
        )
        self.say(f"{text}: started")
        start = time.perf_counter()
        try:
            with Heartbeat(self.storage, trial_id(trial), self.settings.heartbeat_seconds):
                value = self.train_slot(trial, slot, schedule)
        except optuna.TrialPruned as pruned:
            self._finish(trial, TrialState.PRUNED, "pruned")
            self.say(f"{text}: {pruned}")
        except RunFailed as error:
            trial.set_user_attr("error", str(error))
            self._finish(trial, TrialState.FAIL, FINAL_FAIL_OUTCOME)
            self.say(f"{text}: run failed: {error}")
        except KeyboardInterrupt:
            try:  # best effort: if this fails too, the rerun finds the trial's worker gone
                self._finish(trial, TrialState.FAIL, "interrupted")
            except STORAGE_ERRORS:
                pass
            raise
        else:
            self._finish(trial, TrialState.COMPLETE, "complete", value)
            self.say(f"{text}: objective {value:.2f} ({time.perf_counter() - start:.0f} s)")
        export_trials(self.study, self.settings.study_dir)

    def _finish(self, trial: optuna.Trial, state: TrialState, outcome: str, value: float | None = None) -> None:
        try:
            trial.set_user_attr("outcome", outcome)
            self.study.tell(trial, value, state=state)
        except optuna.exceptions.UpdateFinishedTrialError:  # judged dead by another worker, its slot taken
            self.say(f"trial {trial.number}: not recorded, another worker took its slot over")

    def train_slot(self, trial: optuna.Trial, slot: int, schedule: Schedule) -> float:
        """Train (or resume, or read back) every seed's run of the slot; the mean final return."""
        from harness.rundir import RunBusyError  # noqa: PLC0415 - torch, after a worker pins its cores
        from harness.trainer import train_run  # noqa: PLC0415 - as above; tests replace train_run

        finals = []
        jobs = plan_trial_jobs(self.settings, slot, schedule)
        trial.set_user_attr("run_folders", [str(job.path) for job in jobs])
        if self.settings.batch_seeds and len(jobs) > 1:
            return self.train_slot_as_batch(trial, jobs)
        for index, job in enumerate(jobs):
            reporter = self.prepare_run(trial, index, job)
            while True:
                try:
                    summary = train_run(job.config, job.path, on_evaluation=reporter)
                    break
                except RunBusyError:  # its old worker still holds it: wait, then read or resume it
                    time.sleep(self.settings.poll_seconds)
                except (optuna.TrialPruned, KeyboardInterrupt, StorageUnavailable):
                    raise
                except Exception as error:  # the run is marked failed in its summary
                    raise RunFailed(f"{job.path}: {type(error).__name__}: {error}".splitlines()[0]) from error
            final = summary.get("final_eval_return")
            if summary.get("status") != "done" or final is None:
                raise RunFailed(f"{job.path}: status {summary.get('status')}, final return {final}")
            finals.append(float(final))
        return sum(finals) / len(finals)

    def prepare_run(self, trial: optuna.Trial, index: int, job: Any) -> IntermediateReporter:
        """Seed ``index``'s run of the trial, before it trains: its reporter (given what the
        run already recorded, for a resumed slot), its config and its search-trial origin."""
        from harness.rundir import RunDirectory  # noqa: PLC0415

        reporter = IntermediateReporter(trial, index, int(job.config.trainer.total_steps))
        run_dir = RunDirectory(job.path)
        for step, value in recorded_returns(run_dir.eval_path):  # a resumed slot: what is already there
            reporter(step, value)
        if run_dir.stored_config_text() is None:
            run_dir.write_config(to_yaml(job.config))
        if (run_dir.read_summary() or {}).get(ORIGIN_KEY) != ORIGIN_SEARCH_TRIAL:  # said before it trains
            run_dir.update_summary(**{ORIGIN_KEY: ORIGIN_SEARCH_TRIAL})
        return reporter

    def train_slot_as_batch(self, trial: optuna.Trial, jobs: list[Any]) -> float:
        """``train_slot`` with the slot's seeds trained as one batch. The seeds report as they
        would alone (seed k's evaluations at steps k*T + t); once one seed's report prunes the
        trial, every other seed stops at its next evaluation."""
        from harness.batched_trainer import train_batch  # noqa: PLC0415
        from harness.rundir import RunBusyError  # noqa: PLC0415

        reporters = [self.prepare_run(trial, index, job) for index, job in enumerate(jobs)]
        pruned: list[optuna.TrialPruned] = []

        def stop_together(reporter: IntermediateReporter) -> Callable[[int, float], None]:
            def report(step: int, value: float) -> None:
                if pruned:
                    raise pruned[0]
                try:
                    reporter(step, value)
                except optuna.TrialPruned as error:
                    pruned.append(error)
                    raise

            return report

        while True:
            outcomes = train_batch(
                [job.config for job in jobs],
                [job.path for job in jobs],
                on_evaluation=[stop_together(reporter) for reporter in reporters],
            )
            if not any(isinstance(outcome.error, RunBusyError) for outcome in outcomes):
                break
            time.sleep(self.settings.poll_seconds)  # an old worker still holds a run: wait, then resume
        for outcome in outcomes:
            if isinstance(outcome.error, (optuna.TrialPruned, StorageUnavailable)):
                raise outcome.error
        finals = []
        for job, outcome in zip(jobs, outcomes):
            if outcome.error is not None:
                raise RunFailed(f"{job.path}: {type(outcome.error).__name__}: {outcome.error}".splitlines()[0])
            summary = outcome.summary
            if summary is None:  # SeedOutcome: a summary when done, an error when failed
                raise RunFailed(f"{job.path}: the batch reported neither a summary nor an error")
            final = summary.get("final_eval_return")
            if summary.get("status") != "done" or final is None:
                raise RunFailed(f"{job.path}: status {summary.get('status')}, final return {final}")
            finals.append(float(final))
        return sum(finals) / len(finals)


def recorded_returns(eval_path: Path) -> list[tuple[int, float]]:
    """(step, return_mean) rows of an eval.csv, if any."""
    if not eval_path.exists():
        return []
    with open(eval_path, newline="") as handle:
        return [
            (int(float(r["step"])), float(r["return_mean"]))
            for r in csv.DictReader(handle)
            if r.get("step") and r.get("return_mean")
        ]


# ------------------------------------------------------------------------------- workers


def _worker_process(settings: dict[str, Any], index: int, cores: list[int]) -> None:
    """A child worker on its share of the cores (its runs choose their torch threads for
    that share, harness.process.choose_threads, so workers do not contend for cores); it
    dies with its parent (Linux), so a killed command leaves no orphans."""
    pin_to_cores(cores)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def say(line: str) -> None:
        print(f"[worker {index}] {line}", flush=True)

    try:
        worker = Worker(SearchSettings(**settings), say=say)
        worker.run()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:  # noqa: BLE001 - one line, as the parent command would say it
        say(f"stopped: {type(error).__name__}: {error}".splitlines()[0])
        sys.exit(1)
    sys.exit(0)


def run_search(settings: SearchSettings, say: Callable[[str], None] = print) -> optuna.Study:
    """Run the study to its end with ``settings.workers`` worker processes (this one if 1).
    Returns the study; raises KeyboardInterrupt if interrupted."""
    check_settings(settings)
    if settings.workers == 1:
        worker = Worker(settings, say)
        worker.run()
        return worker.study
    parent = Worker(settings, say)  # create the study and enqueue its slots once, before the workers start
    trials = parent.study.get_trials(deepcopy=False)
    parent.enqueue_open_slots(trials, slot_states(trials, settings.trials))
    # a worker killed from outside leaves its semaphores to multiprocessing's resource tracker,
    # which would print a multi-line warning about them; the tracker inherits this filter
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning:multiprocessing.resource_tracker")
    context = multiprocessing.get_context("spawn")
    cores = available_cores()
    processes = [
        context.Process(
            target=_worker_process,
            daemon=False,
            args=(dataclasses.asdict(settings), i, core_share(i, settings.workers, cores)),
        )
        for i in range(settings.workers)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        for process in processes:
            process.join(timeout=30)
        raise
    study = parent.study  # reads what the workers wrote: every read syncs with the storage
    export_trials(study, settings.study_dir)
    done = finished_count(study, settings.trials)
    failed = [f"worker {i} exited with code {p.exitcode}" for i, p in enumerate(processes) if p.exitcode]
    if done < settings.trials:
        raise RunFailure(
            f"search {settings.study_name}: {done}/{settings.trials} trials finished "
            f"({'; '.join(failed) or 'workers stopped'}); rerun the same command to resume"
        )
    return study
