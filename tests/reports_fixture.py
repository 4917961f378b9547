"""A small hand-written tree of run directories with known numbers, for the report tests.

Final returns (return_mean of the last evaluation, step 300):
- classic/inverted-pendulum: sac 10, 20, 30 (mean 20, std 10); sac-svg 40, 50, 90 (mean 60,
  std sqrt(700) = 26.46) plus seed 3 still running (5 at step 100); mve seed 0 failed (1 at
  step 100); sac-svg-mve 45; the run named ``<script>alert(1)</script>`` 7.
- classic/inverted-double-pendulum: sac 100, 300 (mean 200, std 141.42); sac-svg 200, 200.
- poplin/hopper: sac-svg (H=2) 3000, 3100 (mean 3050, std 70.71), above every published row.

``write_study`` writes a target-entropy study folder by hand (studies/contract.py), see there;
``write_video`` an evaluation video as the trainer records it (harness.contract.video_path).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from agents.objectives import target_entropy_schedule
from harness.contract import video_path
from harness.video import Mp4Writer
from studies.contract import TRIAL_COLUMNS

SCRIPT_NAME = "<script>alert(1)</script>"


def write_run(
    root: Path,
    suite: str,
    task: str,
    agent: str,
    seed: int,
    returns: list[float],
    status: str = "done",
    horizon: int = 0,
    model_errors: bool = False,
    entropy: tuple[float, float, float | None] = (-1.0, -1.0, None),
    total_steps: int = 300,
    extra_config: str = "",
    eval_every: int = 100,
) -> Path:
    """One run folder as the trainer writes it; ``returns`` are the evaluations at
    ``eval_every``, twice that, ... (100, 200, ...). ``extra_config``: further top-level YAML
    of config.yaml (e.g. operational keys)."""
    path = root / suite / task / agent / f"seed_{seed}"
    path.mkdir(parents=True)
    init, final, decay = entropy
    decay_text = "null" if decay is None else decay
    (path / "config.yaml").write_text(
        f"suite: {suite}\ntask: {task}\nseed: {seed}\npreset: quick\nagent:\n  name: {agent.split('+')[0]}\n"
        f"  horizon: {horizon}\n  target_entropy:\n    init: {init}\n    final: {final}\n    decay: {decay_text}\n"
        f"trainer:\n  total_steps: {total_steps}\n  eval_every: {eval_every}\n{extra_config}"
    )
    columns = ["step", "return_mean", "return_std", "episodes", "wall_time"]
    if model_errors:
        columns += ["model_error_holdout", "model_error_replay"]
    with open(path / "eval.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for i, value in enumerate(returns):
            row = [eval_every * (i + 1), value, 1.0, 5, 0.5 * (i + 1)]
            if model_errors:
                row += [0.5 / (i + 1), 0.1 / (i + 1)]
            writer.writerow(row)
    with open(path / "train.csv", "w", newline="") as handle:  # one row per 10-step episode, as logged
        writer = csv.writer(handle)
        writer.writerow(["step", "episode", "episode_return", "target_entropy"])
        for episode, step in enumerate(range(10, total_steps + 1, 10)):
            writer.writerow([step, episode, 1.0, target_entropy_schedule(step, total_steps, init, final, decay)])
    steps = eval_every * len(returns)
    summary = {
        "status": status,
        "steps_done": steps,
        "total_steps": total_steps,
        "final_eval_return": returns[-1] if returns else None,
        "best_eval_return": max(returns, default=None),
        "wall_time": 1.5,
        "steps_per_second": 200.0,
        "versions": {"torch": "2.13.0+cpu", "python": "3.11.7"},
        "git_commit": "abc123",
        "error": "loss diverged" if status == "failed" else None,
        "suite": suite,
        "task": task,
        "agent": agent.split("+")[0],
        "seed": seed,
        "preset": "quick",
        "horizon": horizon,
    }
    (path / "summary.json").write_text(json.dumps(summary))
    return path


VIDEO_WIDTH, VIDEO_HEIGHT, VIDEO_FRAMES = 64, 48, 10


def video_frame(index: int, width: int = VIDEO_WIDTH, height: int = VIDEO_HEIGHT) -> np.ndarray:
    """Frame ``index`` of a test video: flat grey of level 25 * index, modulo 250 (so a decoded
    frame tells which it is, H.264 losses aside), red in its top-left quarter. (height, width, 3) uint8."""
    frame = np.full((height, width, 3), 25 * index % 250, dtype=np.uint8)
    frame[: height // 2, : width // 2] = (255, 0, 0)
    return frame


def write_video(
    run: Path,
    step: int,
    width: int = VIDEO_WIDTH,
    height: int = VIDEO_HEIGHT,
    frames: int = VIDEO_FRAMES,
    fps: int = 25,
) -> Path:
    """The run's evaluation video of env step ``step`` (``videos/step_<step>.mp4``), H.264 as
    the trainer writes it: ``frames`` frames of ``video_frame``. Returns its path."""
    with Mp4Writer(video_path(run, step), fps=fps) as writer:
        for index in range(frames):
            writer.add(video_frame(index, width, height))
    return video_path(run, step)


def write_fixture(root: Path) -> Path:
    """The whole tree described in the module docstring; returns ``root``."""
    pendulum = ("classic", "inverted-pendulum")
    for seed, final in enumerate((10, 20, 30)):
        write_run(root, *pendulum, "sac", seed, [0, final / 2, final])
    for seed, final in enumerate((40, 50, 90)):
        write_run(
            root,
            *pendulum,
            "sac-svg",
            seed,
            [0, final / 2, final],
            horizon=2,
            model_errors=True,
            entropy=(1.0, -4.0, 0.5),
        )
    write_run(
        root, *pendulum, "sac-svg", 3, [5], status="running", horizon=2, model_errors=True, entropy=(1.0, -4.0, 0.5)
    )  # a fourth seed of the same experiment
    write_run(root, *pendulum, "mve", 0, [1], status="failed", horizon=2)
    write_run(root, *pendulum, "sac-svg-mve", 0, [0, 20, 45], horizon=2)
    write_run(root, *pendulum, SCRIPT_NAME, 0, [0, 3, 7])
    double = ("classic", "inverted-double-pendulum")
    for seed, final in enumerate((100, 300)):
        write_run(root, *double, "sac", seed, [0, final / 2, final])
    for seed in (0, 1):
        write_run(root, *double, "sac-svg", seed, [0, 100, 200], horizon=2)
    for seed, final in enumerate((3000, 3100)):
        write_run(root, "poplin", "hopper", "sac-svg", seed, [0, 1500, final], horizon=2)
    return root


STUDY_NAME = "entropy-classic-inverted-pendulum-sac-svg"
PAPER_SCHEDULE = [-1.0, -1.0, None]  # Table 4, inverted-pendulum: constant -1
# (number, state, (H_init, H_final, beta), final returns of seeds 0 and 1 (None: no run), objective, outcome)
STUDY_TRIALS = [
    (0, "COMPLETE", (1.0, -1.0, 0.5), (30, 50), 40.0, "complete"),
    (1, "COMPLETE", (2.0, -4.0, 0.125), (70, 80), 75.0, "complete"),  # the best
    (2, "PRUNED", (0.0, -2.0, 1.0), (10, None), None, "pruned"),
    (3, "FAIL", (1.0, -2.0, 0.25), (1, None), None, "run failed"),
    (4, "COMPLETE", (0.0, -1.0, 0.0625), (55, 65), 60.0, "complete"),
]


def write_study(root: Path, trials: list[tuple] = STUDY_TRIALS, agent: str = "sac-svg", name: str = STUDY_NAME) -> Path:
    """A target-entropy study folder as ``harness search entropy`` writes it (study.json,
    trials.csv, one slot folder of runs per trial), numbers in ``trials`` (``STUDY_TRIALS``'s
    form); returns it. A pruned trial's run stopped after two evaluations (running, lock gone:
    interrupted); a failed trial's run failed after one."""
    study = root / name
    study.mkdir(parents=True)
    settings = {
        "study": name,
        "suite": "classic",
        "task": "inverted-pendulum",
        "agent": agent,
        "preset": "quick",
        "steps": 300,
        "seeds": 2,
        "trials": len(trials),
        "sampler": "random",
        "pruner": "median",
        "study_seed": 0,
        "overrides": [],
        "storage": "study.journal",
        "paper_schedule": PAPER_SCHEDULE,
        "paper_schedule_curve": {
            "steps": [0, 150, 300],
            "values": [
                target_entropy_schedule(t, 300, PAPER_SCHEDULE[0], PAPER_SCHEDULE[1], PAPER_SCHEDULE[2])
                for t in (0, 150, 300)
            ],
        },
    }
    (study / "study.json").write_text(json.dumps(settings, indent=2))
    with open(study / "trials.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TRIAL_COLUMNS)
        for number, state, (init, final, beta), finals, objective, outcome in trials:
            slot = f"trials/slot_{number:03d}"
            writer.writerow(
                [number, number, state, init, final, beta, "" if objective is None else objective, outcome, slot]
            )
            folder = f"{agent}+init={init:g},final={final:g},decay={beta:g}"
            for seed, final_return in enumerate(finals):
                if final_return is None:
                    continue
                returns, status = {
                    "COMPLETE": ([0, final_return / 2, final_return], "done"),
                    "PRUNED": ([0, final_return], "running"),
                    "FAIL": ([final_return], "failed"),
                }[state]
                write_run(
                    study / slot,
                    "classic",
                    "inverted-pendulum",
                    folder,
                    seed,
                    returns,
                    status=status,
                    horizon=2 if agent != "sac" else 0,
                    entropy=(init, final, beta),
                )
    return study


SEARCH_TRIALS = 22
SEARCH_NAME = "entropy-classic-inverted-pendulum-sac"


def search_trials(count: int = SEARCH_TRIALS) -> list[tuple]:
    """``count`` trials of one seed in ``STUDY_TRIALS``' form, each its own schedule: trial k
    complete with final return 10 + 7k (the last one the best), but trial 5 failed and trial 6
    pruned."""
    trials = []
    for number in range(count):
        schedule = (1.0 - number % 4, -1.0 - number % 3, float(2 ** (number % 7)))  # distinct up to 84 trials
        state, outcome = {5: ("FAIL", "run failed"), 6: ("PRUNED", "pruned")}.get(number, ("COMPLETE", "complete"))
        final = 10.0 + 7 * number
        trials.append((number, state, schedule, (final,), final if state == "COMPLETE" else None, outcome))
    return trials


def write_search_beside_runs(root: Path, count: int = SEARCH_TRIALS) -> Path:
    """A folder as a newcomer's ``runs/`` looks after ``harness run`` and ``harness search``:
    sac seeds 0-2 (final 10, 20, 30), a sac-svg seed 0 interrupted at step 200 of 300, and
    under ``search/`` a study of ``count`` sac trials (``search_trials``); returns ``root``."""
    for seed, final in enumerate((10, 20, 30)):
        write_run(root, "classic", "inverted-pendulum", "sac", seed, [0, final / 2, final])
    write_run(root, "classic", "inverted-pendulum", "sac-svg", 0, [0, 40], status="running", horizon=2)
    write_study(root / "search", search_trials(count), agent="sac", name=SEARCH_NAME)
    return root
