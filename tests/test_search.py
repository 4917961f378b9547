"""The target-entropy search: A.2's space, its sampling, the pruner, and the study protocol
that ends with exactly N finished trials however it is run (rerun, SIGKILL, two commands,
worker processes, PostgreSQL)."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml
from optuna.storages import JournalStorage
from optuna.trial import TrialState

import harness.trainer
from harness.config import ConfigError
from studies import contract
from studies.entropy_search import IntermediateReporter, SearchSettings, Worker, check_settings, make_pruner
from studies.entropy_space import (
    BETA_CHOICES,
    H_INIT_CHOICES,
    Schedule,
    h_final_choices,
    sample_schedules,
    search_space,
    suggest_schedule,
)
from studies.liveness import Heartbeat, gone_worker
from studies.slots import slot_states
from studies.storage import StorageUnavailable, load_study, not_a_journal, open_storage
from tests.conftest import TINY_SAC
from tests.test_cli import read_csv, run_cli

SEARCH = [
    "search",
    "entropy",
    "--suite",
    "classic",
    "--task",
    "inverted-pendulum",
    "--agent",
    "sac",
    "--preset",
    "quick",
]
STUDY = "entropy-classic-inverted-pendulum-sac"
# One torch thread per run (a trainer otherwise takes one per core, in this process too): runs
# that train at once (two commands, worker processes, another user's job) would each spin a
# thread per core against the others', slowing a tiny update tens of times. An operational
# key: it changes no result.
ONE_THREAD = ["trainer.torch_threads=1"]


def journal(out: Path, study: str = STUDY) -> str:
    return str(out / study / contract.JOURNAL_FILE)


def finished(out: Path, study: str = STUDY, storage: str | None = None) -> list:
    """The trials that settle their slot, from the storage."""
    trials = load_study(study, storage or journal(out, study)).get_trials()
    return [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def search_command(out: Path, trials: int, steps: int = 300, *more: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "harness.cli",
        *SEARCH,
        "--steps",
        str(steps),
        "--trials",
        str(trials),
        "--out",
        str(out),
        *more,
        *TINY_SAC,
        *ONE_THREAD,
    ]


# ------------------------------------------------------------------------------ the space


def test_space_is_exactly_appendix_a2():
    assert H_INIT_CHOICES == (1, 0, -1, -2)
    assert BETA_CHOICES == (1, 2, 4, 8, 16, 32, 64)
    powers = {-1, -2, -4, -8, -16, -32, -64}
    assert set(h_final_choices(1)) == {1, -5} | powers and len(h_final_choices(1)) == 9
    assert set(h_final_choices(0)) == {0, -5} | powers and len(h_final_choices(0)) == 9
    assert set(h_final_choices(-1)) == {-5} | powers and len(h_final_choices(-1)) == 8  # -1 collapses
    assert set(h_final_choices(-2)) == {-5} | powers and len(h_final_choices(-2)) == 8
    space = search_space()
    assert len(space) == len(set(space)) == (9 + 9 + 8 + 8) * 7


def test_random_draws_cover_the_space_uniformly_at_each_level():
    draws = sample_schedules(40_000, seed=1)
    assert set(draws) == set(search_space())
    inits = collections.Counter(d.init for d in draws)
    assert all(abs(inits[i] / len(draws) - 0.25) < 0.01 for i in H_INIT_CHOICES)
    for init in H_INIT_CHOICES:  # H_final uniform over the collapsed set given H_init
        finals = collections.Counter(d.final for d in draws if d.init == init)
        expected = 1 / len(h_final_choices(init))
        assert all(abs(finals[f] / inits[init] - expected) < 0.02 for f in h_final_choices(init))


def test_the_study_seed_fixes_the_schedules():
    assert sample_schedules(20, seed=7) == sample_schedules(20, seed=7)
    assert sample_schedules(20, seed=7) != sample_schedules(20, seed=8)


def test_enqueued_params_round_trip_and_tpe_stays_in_the_space():
    schedule = Schedule(-1, -16, 4)
    assert Schedule.from_params(schedule.params()) == schedule
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3))
    study.enqueue_trial(schedule.params())
    assert suggest_schedule(study.ask()) == schedule
    space = set(search_space())
    for _ in range(12):
        trial = study.ask()
        drawn = suggest_schedule(trial)
        assert drawn in space
        study.tell(trial, float(drawn.init - drawn.final))


def test_median_pruner_prunes_a_clearly_worse_trial():
    settings = SearchSettings(suite="classic", task="inverted-pendulum", trials=8, pruner="median")

    study = optuna.create_study(direction="maximize", pruner=make_pruner(settings))
    for value in (900.0, 950.0, 1000.0, 980.0, 940.0):
        trial = study.ask()
        for step in (1000, 2000):
            trial.report(value, step)
        study.tell(trial, value)
    good, bad = study.ask(), study.ask()
    IntermediateReporter(good, 0, 2000)(1000, 990.0)  # above the median: goes on
    with pytest.raises(optuna.TrialPruned, match="step 1000"):
        IntermediateReporter(bad, 0, 2000)(1000, 10.0)
    assert bad.storage.get_trial(bad._trial_id).intermediate_values == {1000: 10.0}


# ------------------------------------------------------------------------------ the protocol


def tiny_settings(out: Path, trials: int, **more) -> SearchSettings:
    return SearchSettings(
        suite="classic",
        task="inverted-pendulum",
        agent="sac",
        preset="quick",
        steps=200,
        trials=trials,
        out=str(out),
        overrides=[*TINY_SAC, *ONE_THREAD],
        poll_seconds=0.05,
        **more,
    )


def test_duplicate_slot_trials_count_once(tmp_path):
    settings = tiny_settings(tmp_path, 2)
    worker = Worker(settings, say=lambda line: None)
    for slot in (0, 1, 0):  # slot 0 enqueued twice, as two workers starting at once may do
        worker.study.enqueue_trial(worker.schedules[slot].params(), user_attrs={"slot": slot})
    worker.run()
    trials = worker.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    assert trials[2].user_attrs["outcome"] == "duplicate" and "run_folders" not in trials[2].user_attrs
    assert [row["state"] for row in contract.read_trials_file(settings.study_dir)] == ["COMPLETE", "COMPLETE", "FAIL"]


def test_a_waiting_trial_taken_and_ended_by_another_worker_meanwhile_is_skipped(tmp_path, monkeypatch):
    # four workers starting at once: a trial listed as WAITING may be claimed and failed as a
    # duplicate by another worker before this one claims it (Optuna then raises, not returns False)
    settings = tiny_settings(tmp_path, 1)
    first, second = Worker(settings, say=lambda line: None), Worker(settings, say=lambda line: None)
    for _ in range(2):  # slot 0 enqueued twice, as workers starting at once do
        first.study.enqueue_trial(first.schedules[0].params(), user_attrs={"slot": 0})
    listed = first.storage.get_all_trials(first.study._study_id, states=(TrialState.WAITING,))
    assert second.take_waiting_trial().number == 0
    assert second.take_waiting_trial() is None  # trial 1: a duplicate of the live trial 0, failed
    monkeypatch.setattr(first.storage, "get_all_trials", lambda *args, **kwargs: listed)  # listed before that
    assert first.take_waiting_trial() is None
    assert [t.state for t in second.study.get_trials()] == [TrialState.RUNNING, TrialState.FAIL]


def test_a_still_heartbeat_on_another_machine_means_the_worker_died(tmp_path):
    settings = tiny_settings(tmp_path, 1, stale_after_seconds=0.3)
    worker = Worker(settings, say=lambda line: None)
    worker.study.enqueue_trial(worker.schedules[0].params(), user_attrs={"slot": 0})
    frozen = worker.study.get_trials()[0]
    worker.storage.set_trial_state_values(frozen._trial_id, TrialState.RUNNING)
    worker.storage.set_trial_user_attr(frozen._trial_id, "worker", "another-machine:12:34")
    worker.fail_dead_workers(worker.study.get_trials())
    assert worker.study.get_trials()[0].state == TrialState.RUNNING  # first sight: not yet stale
    time.sleep(0.4)
    worker.fail_dead_workers(worker.study.get_trials())
    assert worker.study.get_trials()[0].state == TrialState.FAIL
    worker.run()  # the slot is enqueued again and completed
    states = [t.state for t in worker.study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_failed_run_fails_its_trial_for_good_and_the_others_finish(tmp_path, monkeypatch):
    real = harness.trainer.train_run

    def diverging(config, path, on_evaluation=None):
        if "decay=1" in str(path) and "init=0" in str(path):
            raise FloatingPointError("critic_loss is nan at env step 150")
        return real(config, path, on_evaluation)

    monkeypatch.setattr(harness.trainer, "train_run", diverging)
    settings = tiny_settings(tmp_path, 3)
    worker = Worker(settings, say=lambda line: None)
    assert worker.schedules[1] == Schedule(0, -2, 1)  # the slot that diverges, seed 0's draws
    worker.run()
    trials = worker.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["outcome"] == "run failed"
    assert "critic_loss is nan" in trials[1].user_attrs["error"]
    assert slot_states(trials, 3) == {0: "done", 1: "done", 2: "done"}


def test_the_worker_prunes_a_clearly_worse_trial_and_counts_it(tmp_path, monkeypatch):
    returns = {0: 900.0, 1: 950.0, 2: 1000.0, 3: 980.0, 4: 940.0, 5: 3.0, 6: 990.0}

    def scripted(config, path, on_evaluation=None):  # evaluations at 100 and 200 steps
        slot = int(str(path).split("slot_")[1][:3])
        for step in (100, 200):
            on_evaluation(step, returns[slot])
        return {"status": "done", "final_eval_return": returns[slot]}

    monkeypatch.setattr(harness.trainer, "train_run", scripted)
    worker = Worker(tiny_settings(tmp_path, 7, pruner="median"), say=lambda line: None)
    worker.run()
    trials = worker.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5 + [TrialState.PRUNED, TrialState.COMPLETE]
    assert trials[5].intermediate_values == {100: 3.0}  # stopped at its first evaluation
    assert slot_states(trials, 7) == {slot: "done" for slot in range(7)}


def test_only_a_failed_run_settles_a_slot_among_fail_trials(tmp_path):
    study = optuna.create_study(direction="maximize")
    for slot, outcome in ((0, "run failed"), (1, "worker died"), (2, None), (3, "complete")):
        trial = study.ask()
        trial.set_user_attr("slot", slot)
        if outcome:
            trial.set_user_attr("outcome", outcome)
        study.tell(trial, state=TrialState.FAIL)
    # a FAIL failed by hand (no outcome), or whose outcome was written by a worker that lost
    # the race to finish it, is not a finished slot: it is taken again
    assert slot_states(study.get_trials(), 4) == {0: "done", 1: "open", 2: "open", 3: "open"}


def test_a_storage_failure_mid_trial_stops_with_one_line_and_a_rerun_finishes_exactly_n(tmp_path, monkeypatch):
    real = JournalStorage.set_trial_intermediate_value
    calls = {"n": 0}

    def flaky(self, trial_id, step, value):
        calls["n"] += 1
        if calls["n"] == 3:  # slot 1's first evaluation
            raise optuna.exceptions.StorageInternalError("connection lost")
        return real(self, trial_id, step, value)

    monkeypatch.setattr(JournalStorage, "set_trial_intermediate_value", flaky)
    settings = tiny_settings(tmp_path, 3)
    with pytest.raises(StorageUnavailable, match="rerun the same command to resume"):
        Worker(settings, say=lambda line: None).run()
    trials = load_study(STUDY, journal(tmp_path)).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING]
    worker = Worker(settings, say=lambda line: None)  # the rerun
    worker.run()
    trials = worker.study.get_trials()
    assert sorted(t.user_attrs["slot"] for t in trials if t.state == TrialState.COMPLETE) == [0, 1, 2]
    assert [t.user_attrs.get("outcome") for t in trials if t.user_attrs["slot"] == 1] == ["worker died", "complete"]


def test_tpe_slots_start_from_the_seeded_draws_and_concurrent_tpe_trials_differ(tmp_path, monkeypatch):
    def scripted(config, path, on_evaluation=None):
        entropy = config.agent.target_entropy
        value = 100.0 - abs(entropy.final + 4) - entropy.decay / 8  # best near H_final = -4, small beta
        return {"status": "done", "final_eval_return": value}

    monkeypatch.setattr(harness.trainer, "train_run", scripted)
    settings = tiny_settings(tmp_path, 14, sampler="tpe")
    first, second = Worker(settings, say=lambda line: None), Worker(settings, say=lambda line: None)
    first.enqueue_open_slots([], slot_states([], 14))
    for _ in range(10):  # the seeded random start-up slots
        first.run_trial(first.take_waiting_trial())
    a, b = first.take_waiting_trial(), second.take_waiting_trial()  # two workers ask TPE at once
    drawn = suggest_schedule(a), suggest_schedule(b)
    assert drawn[0] != drawn[1] and set(drawn) <= set(search_space())
    trials = first.study.get_trials()
    assert [Schedule.from_params(t.params) for t in trials[:10]] == sample_schedules(14, settings.study_seed)[:10]


# ------------------------------------------------------------------------------ the command


@pytest.mark.slow
def test_search_runs_n_trials_rerun_adds_none_and_best_file_reproduces_the_schedule(tmp_path):
    code, stdout, stderr = run_cli(*search_command(tmp_path, 3)[3:])
    assert code == 0, stderr
    assert "3/3 trials finished" in stdout
    rows = read_csv(tmp_path / STUDY / contract.TRIALS_FILE)
    assert [(r["state"], r["slot"]) for r in rows] == [("COMPLETE", "0"), ("COMPLETE", "1"), ("COMPLETE", "2")]
    drawn = sample_schedules(3, seed=0)
    assert [Schedule(int(r["H_init"]), int(r["H_final"]), int(r["beta"])) for r in rows] == drawn
    for row, schedule in zip(rows, drawn):  # each trial is ordinary run directories with its schedule
        (config_path,) = (tmp_path / STUDY / row["run_folder"]).rglob("config.yaml")
        entropy = yaml.safe_load(config_path.read_text())["agent"]["target_entropy"]
        assert (entropy["init"], entropy["final"], entropy["decay"]) == (schedule.init, schedule.final, schedule.beta)
        assert float(row["objective"]) == float(read_csv(config_path.parent / "eval.csv")[-1]["return_mean"])

    code, stdout, _ = run_cli(*search_command(tmp_path, 3)[3:])  # rerun: nothing to do
    assert code == 0 and "started" not in stdout and len(load_study(STUDY, journal(tmp_path)).get_trials()) == 3

    code, stdout, stderr = run_cli("search", "show", "--study", STUDY, "--out", str(tmp_path), "--json")
    assert code == 0, stderr
    shown = json.loads(stdout)
    best_row = max(rows, key=lambda r: float(r["objective"]))
    assert shown["best"]["objective"] == float(best_row["objective"]) and shown["finished"] == 3

    best_file = tmp_path / "best.yaml"
    code, stdout, stderr = run_cli("search", "best", "--study", STUDY, "--out", str(tmp_path), "-o", str(best_file))
    assert code == 0, stderr
    code, _, stderr = run_cli(
        "run",
        "--config",
        str(best_file),
        "--suite",
        "classic",
        "--task",
        "inverted-pendulum",
        "--agent",
        "sac",
        "--preset",
        "quick",
        "--steps",
        "200",
        "--out",
        str(tmp_path / "again"),
        "--wandb",
        "disabled",
    )
    assert code == 0, stderr
    (config_path,) = (tmp_path / "again").rglob("config.yaml")
    config = yaml.safe_load(config_path.read_text())
    entropy = config["agent"]["target_entropy"]
    assert (entropy["init"], entropy["final"], entropy["decay"]) == (
        int(best_row["H_init"]),
        int(best_row["H_final"]),
        int(best_row["beta"]),
    )
    assert config["agent"]["hidden_dim"] == 16  # the study's overrides came along


@pytest.mark.slow
def test_refusals_are_one_line_and_touch_nothing(tmp_path):
    code, _, stderr = run_cli(*search_command(tmp_path, 2)[3:], "agent.target_entropy.init=1")
    assert code == 2 and "sets agent.target_entropy itself" in stderr and len(stderr.strip().splitlines()) == 1
    assert not tmp_path.joinpath(STUDY).exists()
    code, _, stderr = run_cli(*search_command(tmp_path, 1)[3:])
    assert code == 0, stderr
    before = (tmp_path / STUDY / contract.JOURNAL_FILE).read_bytes()
    code, _, stderr = run_cli(*search_command(tmp_path, 1, 400)[3:])  # same name, another budget
    assert code == 2 and "was made with other settings" in stderr and "steps: 300 -> 400" in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert (tmp_path / STUDY / contract.JOURNAL_FILE).read_bytes() == before
    code, _, stderr = run_cli("search", "show", "--study", "nope", "--out", str(tmp_path))
    assert code == 2 and "no study 'nope'" in stderr


@pytest.mark.slow
def test_more_trials_extend_the_study_and_fewer_are_refused(tmp_path):
    code, _, stderr = run_cli(*search_command(tmp_path, 1)[3:])
    assert code == 0, stderr
    first = finished(tmp_path)[0]
    code, stdout, stderr = run_cli(*search_command(tmp_path, 2)[3:])  # a user who wants one more trial
    assert code == 0, stderr
    assert "trial 0 " not in stdout and "trial 1 (slot 1)" in stdout and "2/2 trials finished" in stdout
    trials = sorted(finished(tmp_path), key=lambda t: t.number)
    assert [t.number for t in trials] == [0, 1] and trials[0].datetime_complete == first.datetime_complete
    rows = read_csv(tmp_path / STUDY / contract.TRIALS_FILE)  # the draws of a 2-trial study from the start
    assert [Schedule(int(r["H_init"]), int(r["H_final"]), int(r["beta"])) for r in rows] == sample_schedules(2, 0)
    before = (tmp_path / STUDY / contract.JOURNAL_FILE).read_bytes()
    code, _, stderr = run_cli(*search_command(tmp_path, 1)[3:])
    (line,) = stderr.strip().splitlines()
    assert code == 2 and "already holds more (trials 1 < 2)" in line and "at least trials=2" in line
    assert (tmp_path / STUDY / contract.JOURNAL_FILE).read_bytes() == before
    code, stdout, stderr = run_cli("search", "show", "--study", STUDY, "--out", str(tmp_path), "--json")
    assert code == 0 and json.loads(stdout)["settings"]["trials"] == 2 and json.loads(stdout)["finished"] == 2


def test_a_search_whose_runs_never_leave_the_random_seed_steps_is_refused_before_any_trial(tmp_path):
    # issue 18: --steps 300 under the default 1000 seed steps scored the random policy in every trial
    command = [*SEARCH, "--steps", "300", "--trials", "2", "--out", str(tmp_path / "out")]
    code, stdout, stderr = run_cli(*command)
    assert code == 2 and stdout == ""
    (line,) = stderr.strip().splitlines()
    assert "300 steps <= trainer.seed_steps=1000" in line and "raise --steps above 1000" in line
    assert not (tmp_path / "out").exists()  # no study, no trial, no run folder
    at_the_edge = SearchSettings(
        suite="classic",
        task="inverted-pendulum",
        agent="sac",
        preset="quick",
        steps=100,
        trials=1,
        out=str(tmp_path),
        overrides=["trainer.seed_steps=100"],
    )
    with pytest.raises(ConfigError, match="100 steps <= trainer.seed_steps=100"):
        check_settings(at_the_edge)  # equal: not one learning step either
    check_settings(dataclasses.replace(at_the_edge, steps=101))  # one learning step: accepted


def test_a_storage_file_that_is_not_a_journal_is_one_line_and_left_byte_for_byte(tmp_path):
    bad = tmp_path / "bad.journal"
    bad.write_bytes(b"this is not a journal\n")
    before = sorted(tmp_path.iterdir())
    code, stdout, stderr = run_cli(*search_command(tmp_path / "out", 1, 200, "--storage", str(bad))[3:])
    assert code == 2 and stdout == ""
    (line,) = stderr.strip().splitlines()
    assert line == (
        f"harness: error: cannot open storage {bad.resolve()}: not an Optuna journal file (line 1 is not "
        f"JSON); it is left as it is: give another --storage, or move it away to start a new study"
    )
    assert bad.read_bytes() == b"this is not a journal\n"
    assert sorted(tmp_path.iterdir()) == before  # no lock file beside it, no study folder
    code, _, stderr = run_cli("search", "show", "--study", STUDY, "--storage", str(bad), "--out", str(tmp_path))
    assert code == 2 and stderr.strip().splitlines() == [line]
    assert bad.read_bytes() == b"this is not a journal\n"
    # a JSON line that is not an Optuna operation is refused too; a journal Optuna wrote is not
    bad.write_bytes(b'{"op_code": 0}\n[1, 2]\n')
    assert not_a_journal(bad) == "line 2 is not an Optuna operation"
    good = tmp_path / "good.journal"
    optuna.create_study(study_name="s", storage=open_storage(str(good)))
    assert not_a_journal(good) is None and not_a_journal(tmp_path / "absent.journal") is None


def test_a_postgres_scheme_is_refused_naming_postgresql(tmp_path):
    url = "postgres://someone:secret@127.0.0.1:9/db"
    code, _, stderr = run_cli(*search_command(tmp_path, 1, 200, "--storage", url)[3:])
    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert line == (
        "harness: error: cannot open storage postgres://someone:***@127.0.0.1:9/db: SQLAlchemy spells "
        "PostgreSQL URLs postgresql://, not postgres://; write postgresql://someone:***@127.0.0.1:9/db"
    )
    assert "secret" not in stderr and not tmp_path.joinpath(STUDY).exists()


def wait_for_running_trial(out: Path, timeout: float = 120.0) -> None:
    """Until some trial is RUNNING with at least one evaluation reported (looked at every
    50 ms, so that a kill that follows lands early in that trial's run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(journal(out)).exists():
            try:
                trials = load_study(STUDY, journal(out)).get_trials()
            except Exception:  # noqa: BLE001 - the study may not exist yet
                trials = []
            if any(t.state == TrialState.RUNNING and t.intermediate_values for t in trials):
                return
        time.sleep(0.05)
    raise AssertionError("no trial started")


@pytest.mark.slow
def test_sigkill_then_rerun_ends_with_exactly_n_and_resumes_the_killed_slot(tmp_path):
    run_steps = 1000  # the kill lands a few tens of steps after the first evaluation (step 100): mid-run
    command = search_command(tmp_path, 3, run_steps)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_running_trial(tmp_path)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed = [t for t in load_study(STUDY, journal(tmp_path)).get_trials() if t.state == TrialState.RUNNING]
    assert len(killed) == 1
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "is gone" in done.stdout
    trials = load_study(STUDY, journal(tmp_path)).get_trials()
    assert len(finished(tmp_path)) == 3
    assert sorted(t.user_attrs["slot"] for t in finished(tmp_path)) == [0, 1, 2]
    retried = [t for t in trials if t.user_attrs["slot"] == killed[0].user_attrs["slot"]]
    assert [t.user_attrs["outcome"] for t in retried] == ["worker died", "complete"]
    # the slot's run resumed from its checkpoint: one run folder, evaluations not repeated
    (eval_csv,) = contract.slot_folder(tmp_path / STUDY, killed[0].user_attrs["slot"]).rglob("eval.csv")
    steps = [int(r["step"]) for r in read_csv(eval_csv)]
    assert steps == list(range(100, run_steps + 1, 100))
    assert (eval_csv.parent / "summary.json").read_text().count('"resumed": true') == 1


@pytest.mark.slow
def test_after_a_sigkill_search_show_and_status_say_interrupted_not_running(tmp_path):
    # issue 18: after kill -9, search show said RUNNING until the next command
    process = subprocess.Popen(
        search_command(tmp_path, 2, 1000), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for_running_trial(tmp_path)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    code, stdout, stderr = run_cli("search", "show", "--study", STUDY, "--out", str(tmp_path), "--json")
    assert code == 0, stderr
    (killed,) = [row for row in json.loads(stdout)["trials"] if row["state"] == "RUNNING"]
    worker = load_study(STUDY, journal(tmp_path)).trials[killed["number"]].user_attrs["worker"]
    assert worker.split(":")[1] == str(process.pid)
    assert killed["outcome"] == f"interrupted: its worker {worker} is gone"
    code, stdout, stderr = run_cli("search", "show", "--study", STUDY, "--out", str(tmp_path), columns=200)
    assert code == 0, stderr
    assert (
        f"trial {killed['number']} (slot {killed['slot']}) was interrupted: its worker {worker} is gone; "
        f"rerun the search command"
    ) in stdout
    # the run's summary.json still says running (no process was left to write it); its readers do not
    (summary,) = contract.slot_folder(tmp_path / STUDY, killed["slot"]).rglob("summary.json")
    assert json.loads(summary.read_text())["status"] == "running"
    code, stdout, stderr = run_cli("status", str(tmp_path / STUDY))
    assert code == 0, stderr
    (row,) = [line for line in stdout.splitlines() if line.strip().startswith("0 ")]
    assert row.split()[1] == "interrupted"


def test_a_reader_judges_a_worker_elsewhere_by_its_heartbeats_age():
    now = time.time()
    elsewhere = "another-machine:12:34"
    assert gone_worker({"worker": elsewhere, "heartbeat": now - 10.0}, now) is None
    assert gone_worker({"worker": elsewhere, "heartbeat": now - 200.0}, now) == (
        "no heartbeat from its worker another-machine:12:34 for 200 s"
    )
    assert gone_worker({"worker": elsewhere, "heartbeat": 7}, now) is None  # a count (older versions): no age
    assert gone_worker({"worker": elsewhere}, now) is None
    study = optuna.create_study()
    trial = study.ask()
    with Heartbeat(study._storage, trial._trial_id, period=0.01):
        time.sleep(0.1)
    beat = study.trials[0].user_attrs["heartbeat"]
    assert isinstance(beat, float) and 0 <= time.time() - beat < 5


@pytest.mark.slow
def test_two_commands_at_once_and_worker_processes_end_with_exactly_n(tmp_path):
    first = subprocess.Popen(
        search_command(tmp_path / "a", 6, 600), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    second = subprocess.Popen(
        search_command(tmp_path / "a", 6, 600), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for process in (first, second):
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    trials = finished(tmp_path / "a")
    assert sorted(t.user_attrs["slot"] for t in trials) == list(range(6))
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both commands took trials

    done = subprocess.run(
        search_command(tmp_path / "b", 6, 300, "--workers", "2"), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    trials = finished(tmp_path / "b")
    assert sorted(t.user_attrs["slot"] for t in trials) == list(range(6))
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both worker processes took trials
    assert "[worker 0]" in done.stdout and "[worker 1]" in done.stdout


@pytest.mark.slow
def test_two_workers_share_a_study_on_postgresql(tmp_path, postgres_url):
    study = f"pg-{os.getpid()}-{time.monotonic_ns()}"
    done = subprocess.run(
        # trials long enough (as in the test above) that the second worker's start, slower
        # on a loaded machine, comes before the first has taken every trial
        search_command(tmp_path, 6, 600, "--workers", "2", "--storage", postgres_url, "--study", study),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    trials = load_study(study, postgres_url).get_trials()
    assert sorted(t.user_attrs["slot"] for t in trials if t.state == TrialState.COMPLETE) == list(range(6))
    assert len(trials) == 6
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert contract.read_study_file(tmp_path / study)["storage"].startswith("postgresql://")


@pytest.fixture
def empty_postgres_database(postgres_url):
    """The URL of a new, empty database on the test server (no Optuna tables yet); dropped after."""
    name = f"empty_{os.getpid()}_{time.monotonic_ns()}"
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.slow
def test_four_commands_started_at_once_on_an_empty_postgresql_database_all_join_the_study(
    tmp_path, empty_postgres_database
):
    # issue 18: all four created Optuna's tables at once, and all but one failed with UniqueViolation
    command = search_command(tmp_path, 4, 200, "--storage", empty_postgres_database, "--study", "together")
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        for process in processes:
            out, err = process.communicate(timeout=600)
            assert process.returncode == 0, err
            assert "4/4 trials finished" in out  # each command ends with the study's trials counted
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    trials = load_study("together", empty_postgres_database).get_trials()
    assert sorted(t.user_attrs["slot"] for t in trials if t.state == TrialState.COMPLETE) == [0, 1, 2, 3]
    assert all(
        t.state == TrialState.FAIL and t.user_attrs["outcome"] == "duplicate"
        for t in trials
        if t.state != TrialState.COMPLETE
    )
