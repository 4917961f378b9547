"""The run-directory contract module: standard library only, one lock rule, atomic writes,
and reports that read run folders through it without torch or gymnasium."""

from __future__ import annotations

import csv
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import reports
from harness import contract
from harness.contract import (
    DONE,
    FAILED,
    INTERRUPTED,
    RUNNING,
    UNREADABLE,
    CsvLog,
    RunBusyError,
    atomic_write_bytes,
    inspect_summary,
    is_locked,
    read_summary,
    run_lock,
    run_path,
    run_state,
    truncate_csv,
    update_summary,
    write_summary,
)

ROOT = Path(__file__).resolve().parent.parent


def _fresh_import(modules: list[str]) -> dict[str, list[str]]:
    """sys.modules of a fresh interpreter after importing ``modules``: what they loaded."""
    code = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        f"for name in {modules!r}: __import__(name)\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_contract_module_imports_only_the_standard_library():
    loaded = _fresh_import(["harness.contract"])
    foreign = sorted({name.split(".")[0] for name in loaded} - set(sys.stdlib_module_names) - {"harness"})
    assert foreign == []
    assert [name for name in loaded if name.startswith("harness")] == ["harness", "harness.contract"]


def test_importing_reports_loads_neither_torch_nor_gymnasium_nor_the_trainer_side():
    modules = ["reports"] + [f"reports.{m.name}" for m in pkgutil.iter_modules(reports.__path__)]
    assert {"reports.build", "reports.load", "reports.html", "reports.figures"} <= set(modules)
    loaded = set(_fresh_import(modules))
    assert {"torch", "gymnasium", "mujoco"} & loaded == set()
    assert {"harness.rundir", "harness.trainer", "agents"} & loaded == set()


def test_run_path_is_suite_task_agent_label_seed(tmp_path):
    assert run_path(tmp_path, "mbpo", "hopper", "sac", 3) == tmp_path / "mbpo" / "hopper" / "sac" / "seed_3"
    assert run_path("out", "classic", "t", "sac-svg", 0, "horizon=3") == Path("out/classic/t/sac-svg+horizon=3/seed_0")


def test_running_is_interrupted_once_nobody_holds_the_lock(tmp_path):
    running = {"status": RUNNING}
    assert run_state(tmp_path, running) == INTERRUPTED
    with run_lock(tmp_path):
        assert is_locked(tmp_path)
        assert run_state(tmp_path, running) == RUNNING
        with pytest.raises(RunBusyError):
            with run_lock(tmp_path):
                pass
    assert not is_locked(tmp_path)
    assert run_state(tmp_path, running) == INTERRUPTED
    assert run_state(tmp_path, {"status": DONE}) == DONE
    assert run_state(tmp_path, {"status": FAILED}) == FAILED
    assert run_state(tmp_path, {"status": INTERRUPTED}) == INTERRUPTED
    assert run_state(tmp_path, None) == run_state(tmp_path, {}) == UNREADABLE


def test_a_lock_held_by_another_process_counts_as_running(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom harness.contract import run_lock\n"
            f"with run_lock({str(tmp_path)!r}):\n    print('held', flush=True); time.sleep(60)\n",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run_state(tmp_path, {"status": RUNNING}) == RUNNING
    finally:
        holder.kill()
        holder.wait()
    assert run_state(tmp_path, {"status": RUNNING}) == INTERRUPTED  # the kernel dropped its lock


def test_summary_round_trip_and_problems(tmp_path):
    assert inspect_summary(tmp_path) == (None, "no summary.json (the run may not have started)")
    write_summary(tmp_path, {"status": RUNNING, "steps_done": 5})
    assert update_summary(tmp_path, status=DONE)["steps_done"] == 5
    summary = read_summary(tmp_path)
    assert summary["status"] == DONE and "updated_at" in summary
    (tmp_path / "summary.json").write_text("{not json")
    assert read_summary(tmp_path) is None
    assert inspect_summary(tmp_path)[1] == "summary.json unreadable (JSONDecodeError)"


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text("old")

    def no_space(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(contract.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(target, b"new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_truncation_keeps_rows_up_to_the_step_and_the_header(tmp_path):
    path = tmp_path / "eval.csv"
    log = CsvLog(path, contract.EVAL_COLUMNS)
    for step in (100, 200, 300):
        log.append({"step": step, "return_mean": float(step)})
    log.close()
    assert truncate_csv(path, 200) == 2
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["step"] for r in rows] == ["100", "200"] and list(rows[0]) == contract.EVAL_COLUMNS
    log = CsvLog(path, contract.EVAL_COLUMNS)  # a resumed run appends under the same header
    log.append({"step": 300, "return_mean": 3.5})
    log.close()
    assert path.read_bytes().count(b"step,") == 1 and path.read_bytes().endswith(b"300,3.5,,,\r\n")
