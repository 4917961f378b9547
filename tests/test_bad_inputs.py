"""Twenty bad inputs (issue 8), each as a user would type it: one line on stderr, exit 2
for bad usage or 1 for a failure, and nothing already written lost or changed.

The checkpoint cases at the file level (a truncated checkpoint, another code version, a full
disk mid-write) are in tests/test_checkpoints.py; here they are driven through the command.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.cli import main
from tests.conftest import TINY_SAC
from tests.test_cli import error_lines, run_folder, tiny_run


def digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (its content hash): what "nothing changed" means."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_line(err: str) -> str:
    lines = error_lines(err)  # a run that fails once started follows the line on its torch threads
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def refused(argv: list[str], capsys, code: int = 2) -> str:
    """Run the command in-process; assert the exit code and one line; return that line."""
    assert main(argv) == code, argv
    return one_line(capsys.readouterr().err)


@pytest.fixture(scope="module")
def finished_sac(tmp_path_factory) -> Path:
    """One tiny finished SAC run (200 steps, checkpoints at 100 and 200); tests copy it."""
    out = tmp_path_factory.mktemp("finished")
    code, _, err = sac_run(out, 200)
    assert code == 0, err
    return out


def sac_run(out: Path, steps: int, *more: str):
    """``harness run`` of the tiny SAC run (flags or overrides in ``more``), in a subprocess."""
    return tiny_run(out, "sac", steps, more)


def copy_of(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    out = tmp_path / "runs"
    shutil.copytree(finished, out)
    return out, run_folder(out, "sac")


def start_sac(out: Path, steps: int, evaluations: int, *more: str) -> subprocess.Popen:
    """Start the tiny SAC run in the background (overrides in ``more``); return once
    ``evaluations`` rows are in its eval.csv (a row is written just before its checkpoint)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            *RUN,
            "--steps",
            str(steps),
            "--out",
            str(out),
            "--wandb",
            "disabled",
            *TINY_SAC,
            *more,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    eval_csv, deadline = run_folder(out, "sac") / "eval.csv", time.time() + 120
    while (
        time.time() < deadline
        and (len(eval_csv.read_text().splitlines()) - 1 if eval_csv.exists() else 0) < evaluations
    ):
        time.sleep(0.05)
    return process


def killed_after(out: Path, steps: int, evaluations: int) -> Path:
    """SIGKILL the tiny SAC run once ``evaluations`` rows are written; its run folder.

    The run is paused (SIGSTOP) before the kill, and let go on for a moment while it is
    between a save's two renames (no state.pt): a kill there is a crash the loader handles
    (tests/test_checkpoints.py), but these tests need the latest checkpoint under its name.
    """
    process = start_sac(out, steps, evaluations)
    latest = run_folder(out, "sac") / "checkpoint" / "state.pt"
    process.send_signal(signal.SIGSTOP)
    for _ in range(200):
        if latest.exists():
            break
        process.send_signal(signal.SIGCONT)
        time.sleep(0.01)
        process.send_signal(signal.SIGSTOP)
    process.kill()
    process.communicate()
    return run_folder(out, "sac")


RUN = ["run", "--suite", "classic", "--task", "inverted-pendulum", "--agent", "sac", "--preset", "quick"]


# 1-5: unknown names, with the valid ones and a near miss
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "--suite", "mbp", "--agent", "sac"], "unknown suite 'mbp' (did you mean 'mbpo'?); valid suites:"),
        (["run", "--suite", "mbpo", "--agent", "sac-sgv"], "unknown agent 'sac-sgv' (did you mean 'sac-svg'?)"),
        (
            ["run", "--suite", "mbpo", "--agent", "sac", "--task", "hoper"],
            "unknown task 'hoper' (did you mean 'hopper'?)",
        ),
        (
            ["run", "--suite", "mbpo", "--agent", "sac", "--preset", "quik"],
            "unknown preset 'quik' (did you mean 'quick'?)",
        ),
        (
            ["run", "--suite", "mbpo", "--agent", "sac", "--launcher", "submitit2"],
            "unknown launcher 'submitit2' (did you mean 'submitit'?)",
        ),
    ],
)
def test_unknown_names_say_what_was_meant(finished_sac, tmp_path, capsys, argv, expected):
    out, _ = copy_of(finished_sac, tmp_path)
    before = digest(out)
    line = refused(argv + ["--out", str(out)], capsys)
    assert expected in line
    assert digest(out) == before  # the runs already there: nothing lost or changed


# 6-8: overrides: malformed, unknown key, wrong type (the message names only what was typed)
@pytest.mark.parametrize(
    "override, expected",
    [
        ("agent.horizon", "override 'agent.horizon' is not of the form key=value"),
        ("agent.hiden_dim=3", "no key 'hiden_dim' in agent"),
        ("trainer.eval_episodes=ten", "override 'trainer.eval_episodes=ten': 'ten' is not an integer"),
    ],
)
def test_bad_overrides(finished_sac, tmp_path, capsys, override, expected):
    out, _ = copy_of(finished_sac, tmp_path)
    before = digest(out)
    line = refused(RUN + ["--out", str(out), "--steps", "200", *TINY_SAC, override], capsys)
    assert expected in line
    assert "launcher.jobs" not in line and "trainer.total_steps" not in line  # nothing the user did not type
    assert digest(out) == before


# 9: zero or negative counts
@pytest.mark.parametrize(
    "argv",
    [
        RUN + ["--steps", "0"],
        RUN + ["--seeds", "0"],
        RUN + ["--jobs", "-1"],
        ["search", "entropy", "--suite", "classic", "--task", "inverted-pendulum", "--trials", "0"],
        ["search", "entropy", "--suite", "classic", "--task", "inverted-pendulum", "--trials", "2", "--workers", "0"],
    ],
)
def test_zero_or_negative_counts(finished_sac, tmp_path, capsys, argv):
    out, _ = copy_of(finished_sac, tmp_path)
    before = digest(out)
    line = refused(argv + ["--out", str(out)], capsys)
    assert "is not in the range x>=1" in line
    assert digest(out) == before


# 10: an override the agent ignores
def test_an_override_the_agent_cannot_honour_is_refused_or_warned(tmp_path, capsys):
    line = refused(RUN + ["--out", str(tmp_path / "runs"), "agent.horizon=3"], capsys)
    assert "agent sac fixes agent.horizon=0" in line
    assert not (tmp_path / "runs").exists()
    # a model size for a model-free agent changes nothing: said once, the run goes on
    assert (
        main(
            RUN
            + [
                "--out",
                str(tmp_path / "runs"),
                "--steps",
                "50",
                "--wandb",
                "disabled",
                "agent.model_hidden_dim=16",
                "trainer.seed_steps=50",
                "trainer.eval_every=50",
                "trainer.eval_episodes=1",
                "agent.hidden_dim=16",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "warning: override 'agent.model_hidden_dim=16': agent sac is model-free" in err


# 11: an output folder that cannot be written
def test_an_unwritable_out_folder(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = refused(RUN + ["--out", str(blocker / "runs")], capsys)
    assert f"cannot write to --out {blocker / 'runs'}" in line
    assert blocker.read_text() == "not a folder"


# 12: a run folder holding another config: refused; --force says what it deletes
@pytest.mark.slow
def test_another_config_is_refused_and_force_starts_over(finished_sac, tmp_path):
    out, folder = copy_of(finished_sac, tmp_path)
    before = digest(out)
    code, _, err = sac_run(out, 300)
    assert code == 2 and "holds a run with another config" in one_line(err) and "--force" in err
    assert digest(out) == before
    code, _, err = sac_run(out, 300, "--force")
    assert code == 0, err
    assert f"--force: deleting {folder}" in err and "total_steps: 200 -> 300" in err and "eval.csv" in err
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "done" and summary["steps_done"] == 300 and summary["resumed"] is False


# 13: a truncated checkpoint: the previous one is used, and the command says so
@pytest.mark.slow
def test_a_truncated_checkpoint_falls_back_to_the_previous(tmp_path):
    out = tmp_path / "runs"
    folder = killed_after(out, 1000, 3)
    latest = folder / "checkpoint" / "state.pt"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])
    code, _, err = sac_run(out, 1000)
    assert code == 0, err
    assert "resuming from the previous checkpoint" in err, err
    steps = [int(line.split(",")[0]) for line in (folder / "eval.csv").read_text().splitlines()[1:]]
    assert steps == list(range(100, 1001, 100))  # no evaluation lost or repeated


# 14: a checkpoint from another version of the code: refused, the run's files unchanged
@pytest.mark.slow
def test_a_checkpoint_of_another_format_is_refused(tmp_path):
    out = tmp_path / "runs"
    folder = killed_after(out, 1000, 3)
    for path in (folder / "checkpoint").glob("state*.pt"):  # as a future svgbench with format 99 would write them
        payload = torch.load(path, weights_only=True)
        payload["format"] = 99
        torch.save(payload, path)
    before = {k: v for k, v in digest(out).items() if not k.endswith(".lock")}
    code, _, err = sac_run(out, 1000)
    assert code == 1
    line = one_line(err)
    assert "checkpoint format 99" in line and "nothing was changed" in line
    assert {k: v for k, v in digest(out).items() if not k.endswith(".lock")} == before


# 15: a diverging loss: failed, and summary.json names the loss and the step
@pytest.mark.slow
def test_a_diverging_loss_names_the_loss_and_step(tmp_path):
    code, _, err = sac_run(tmp_path, 300, "agent.critic_lr=1e30", "agent.actor_lr=1e30")
    assert code == 1 and "DivergenceError" in one_line(err)
    folder = next((tmp_path / "classic" / "inverted-pendulum").iterdir()) / "seed_0"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["diverged"]["loss"] in summary["error"] and 100 <= summary["diverged"]["step"] <= 300


# 16: a report on a folder with no runs
def test_a_report_on_a_folder_with_no_runs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "r.html").write_text("an earlier report")
    line = refused(["report", str(tmp_path / "empty"), "-o", str(tmp_path / "r.html")], capsys)
    assert "no runs (summary.json files) or studies" in line
    assert (tmp_path / "r.html").read_text() == "an earlier report"  # not overwritten


# 17: a study name that exists with another search space
@pytest.mark.slow
def test_a_study_name_with_other_settings_is_refused(tmp_path, capsys):
    search = [
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
        "--steps",
        "100",
        "--trials",
        "1",
        "--study",
        "s",
        "--out",
        str(tmp_path),
        *TINY_SAC,
        "trainer.eval_every=50",
        "trainer.seed_steps=50",
    ]
    assert main(search) == 0
    capsys.readouterr()
    before = digest(tmp_path)
    line = refused([*search[:-2], "trainer.eval_every=50", "trainer.seed_steps=60"], capsys)
    assert "study 's'" in line and "another" in line
    assert digest(tmp_path) == before


# 18: a storage URL that cannot be reached
def test_an_unreachable_storage_url(tmp_path, capsys):
    line = refused(
        [
            "search",
            "entropy",
            "--suite",
            "classic",
            "--task",
            "inverted-pendulum",
            "--trials",
            "2",
            "--storage",
            "postgresql://nobody@127.0.0.1:9/none",
            "--out",
            str(tmp_path / "s"),
        ],
        capsys,
    )
    assert "cannot open storage postgresql://nobody@127.0.0.1:9/none" in line and "Connection refused" in line
    assert not any((tmp_path / "s").rglob("*.csv"))


# 20: a run another process is training: refused, its folder untouched
@pytest.mark.slow
def test_a_run_held_by_another_process_is_left_untouched(tmp_path):
    out = tmp_path / "runs"
    # a long run, so that it is still training; agent.compile=auto would compile its update
    first = start_sac(out, 100000, 1, "agent.compile=off")
    folder = run_folder(out, "sac")
    try:
        (folder / "summary.json").stat()
        lock_before = (folder / ".lock").stat().st_mtime_ns
        code, _, err = sac_run(out, 100000, "agent.compile=off")
        assert code == 1
        assert "is being trained by another process" in one_line(err) or "left it untouched" in err
        assert not (folder / "error.log").exists()
        assert (folder / ".lock").stat().st_mtime_ns == lock_before
    finally:
        first.kill()
        first.communicate()
