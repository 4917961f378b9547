"""Watching a trained policy (``harness replay``): a run's checkpoint, latest or best, played
with the deterministic policy from an evaluation's seed, and optionally filmed.

Played from the seed of the evaluation the checkpoint was taken at, on the device and
thread count the run used, the episodes are that evaluation's: the same returns as its
eval.csv row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agents import SVGAgent
from harness.config import ConfigError, RunConfig, from_yaml
from harness.contract import CONFIG_FILE, EVAL_FILE, SUMMARY_FILE, read_csv_rows
from harness.rundir import CHECKPOINT_KEYS, CheckpointError, RunDirectory
from harness.suites import get_task
from harness.trainer import Episode, evaluate, evaluation_seed
from harness.video import Mp4Writer, render_fps

CHECKPOINTS = ("latest", "best")


@dataclass
class Policy:
    """A run's agent as one of its checkpoints holds it, and which evaluation that was."""

    run: Path
    config: RunConfig
    agent: SVGAgent
    checkpoint: str  # latest | best
    step: int  # env steps the agent had trained for
    evaluation: int | None  # index (from 0) of the evaluation made at ``step``; None if none was
    eval_return: float | None  # that evaluation's mean return (eval.csv)
    evaluations_before: int  # evaluations made up to ``step``
    notes: list[str]

    @property
    def default_seed(self) -> int:
        """The evaluation's seed; after the last evaluation (an interrupted run's checkpoint),
        the last evaluation's."""
        index = self.evaluation if self.evaluation is not None else max(self.evaluations_before - 1, 0)
        return evaluation_seed(self.config.seed, index)


def _run_config(run: Path) -> RunConfig:
    text = RunDirectory(run).stored_config_text()
    if text is None:
        below = sorted(str(p.parent) for p in run.glob(f"**/{CONFIG_FILE}"))[:3]
        hint = f"; run folders below it: {', '.join(below)}" if below else ""
        raise ConfigError(f"{run} is not a run folder (no {CONFIG_FILE}){hint}")
    try:
        return from_yaml(text)
    except Exception as error:  # omegaconf raises many types; one line for the user
        raise ConfigError(
            f"{run / CONFIG_FILE} is not a run config this svgbench reads: {str(error).splitlines()[0]}"
        ) from error


def _eval_row(run: Path, step: int) -> float | None:
    """The mean return eval.csv records at ``step`` (None if no evaluation was made there)."""
    path = run / EVAL_FILE
    if not path.exists():
        return None
    header, rows = read_csv_rows(path)
    if "step" not in header or "return_mean" not in header:
        return None
    for row in rows:
        if int(float(row[header.index("step")])) == step:
            return float(row[header.index("return_mean")])
    return None


def choose_device(config: RunConfig, device: str | None) -> tuple[str, str | None]:
    """The device to play on: ``device`` if given, else the run's own if this machine has it,
    else the CPU (with a note: returns may then differ in the last digits)."""
    if device is not None:
        return device, None
    wanted = config.agent.device
    if wanted in ("auto", "cpu") or (wanted.startswith("cuda") and torch.cuda.is_available()):
        return wanted, None
    return "cpu", f"the run trained on {wanted}, which this machine lacks: playing on the CPU"


def load_policy(run: str | Path, checkpoint: str = "latest", device: str | None = None) -> Policy:
    """The agent of the run folder ``run`` as its ``latest`` or ``best`` checkpoint holds it.
    Bad folders and missing or unreadable checkpoints are one-line errors (ConfigError,
    CheckpointError); nothing is written."""
    run = Path(run)
    if checkpoint not in CHECKPOINTS:
        raise ConfigError(f"unknown --checkpoint {checkpoint!r}; valid: {', '.join(CHECKPOINTS)}")
    config = _run_config(run)
    config.agent.device, note = choose_device(config, device)
    config.agent.compile = "off"  # a few hundred forward passes: not worth compiling
    notes = [note] if note else []
    evaluation: int | None
    eval_return: float | None
    run_dir = RunDirectory(run)
    if not run_dir.has_checkpoint():
        raise CheckpointError(f"{run} has no checkpoint yet: one is written at every evaluation")
    if checkpoint == "best":
        state = run_dir.read_best()
        step, evaluation = int(state["step"]), int(state["evaluation"])
        agent_state, evaluations_before, eval_return = state["agent"], evaluation + 1, float(state["return_mean"])
    else:
        loaded = run_dir.read_checkpoint(required=CHECKPOINT_KEYS)
        if loaded.message:
            notes.append(loaded.message.replace("resuming from", "playing"))
        progress = loaded.state["progress"]
        step, evaluations_before = int(progress["step"]), int(progress["evaluations"])
        agent_state = loaded.state["agent"]
        eval_return = _eval_row(run, step)
        evaluation = evaluations_before - 1 if eval_return is not None else None
        if evaluation is None:
            notes.append(
                f"the checkpoint at step {step} was not taken at an evaluation (an interrupted run): "
                f"the episodes are not an evaluation's"
            )

    spec = get_task(config.suite, config.task)
    agent = SVGAgent(
        spec.obs_dim,
        spec.act_dim,
        config.agent,
        int(config.trainer.total_steps or spec.budget),
        np.random.SeedSequence(config.seed),
        warn=lambda line: None,
    )
    agent.load_state_dict(agent_state)
    return Policy(run, config, agent, checkpoint, step, evaluation, eval_return, evaluations_before, notes)


def play(
    policy: Policy, episodes: int, seed: int, video: Path | None = None, size: tuple[int, int] | None = None
) -> tuple[list[Episode], Mp4Writer | None]:
    """``episodes`` episodes of the deterministic policy, the first reset with ``seed``; with
    ``video``, every episode filmed into that mp4 at ``size`` (default: the run's video size)."""
    config = policy.config
    size = size or (config.trainer.video_width, config.trainer.video_height)
    spec = get_task(config.suite, config.task)
    env = spec.make_env(
        render_size=size if video is not None else None, terminal_alive_bonus=config.env.terminal_alive_bonus
    )
    try:
        if video is None:
            return evaluate(policy.agent, env, episodes, seed), None
        with Mp4Writer(video, render_fps(env)) as film:
            played = evaluate(policy.agent, env, episodes, seed, film=film, filmed_episodes=episodes)
        return played, film
    finally:
        env.close()


def describe(policy: Policy) -> str:
    """One line: which run, which checkpoint, which evaluation."""
    where = f"{policy.run}: {policy.checkpoint} checkpoint, step {policy.step:,}"
    if policy.evaluation is not None and policy.eval_return is not None:
        where += f" (evaluation {policy.evaluation + 1}, mean return {policy.eval_return:.3f} in {EVAL_FILE})"
    return where


def summary_line(played: list[Episode], policy: Policy, seed: int) -> str:
    """The mean and spread of the returns, and whether they are the evaluation's."""
    returns = [e.total_return for e in played]
    line = f"mean {np.mean(returns):.3f}, std {np.std(returns):.3f} over {len(returns)} episodes"
    same_episodes = (
        policy.evaluation is not None
        and seed == policy.default_seed
        and len(played) == policy.config.trainer.eval_episodes
    )
    if same_episodes and policy.eval_return is not None:
        equal = math.isclose(float(np.mean(returns)), policy.eval_return, rel_tol=1e-9, abs_tol=1e-9)
        line += f"; the evaluation at step {policy.step:,} recorded {policy.eval_return:.3f}" + (
            "" if equal else f" (differs: another device or thread count? see {SUMMARY_FILE}'s versions)"
        )
    return line
