"""The interaction loop of Algorithm 1: seed steps, updates, evaluation, checkpoint/resume."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
import torch

from agents import SVGAgent
from agents.agent import DivergenceError
from agents.compile import CompileChoice
from agents.metrics import MetricSums
from agents.replay import ReplayBuffer
from harness.config import RunConfig, to_dict, to_yaml
from harness.contract import (
    DONE,
    EVAL_COLUMNS,
    FAILED,
    INTERRUPTED,
    RUNNING,
    git_commit,
    package_versions,
    run_lock,
    video_path,
)
from harness.lifecycle import ProgressBar, RunInterrupted, StepCost, StopSignals, say_to_stderr
from harness.mirror import WandbMirror
from harness.process import prepare_training_process
from harness.rundir import CHECKPOINT_KEYS, CheckpointError, CsvLog, RunDirectory
from harness.suites import TaskSpec, get_task
from harness.suites.wrappers import get_env_state, set_env_state
from harness.video import Mp4Writer, render_fps, render_frame

if TYPE_CHECKING:
    from agents.stacked_metrics import SeedMetricSums


@dataclass
class Progress:
    """Counters of the loop; all of it goes into the checkpoint."""

    step: int = 0
    episode: int = 0
    episode_return: float = 0.0
    episode_length: int = 0
    evaluations: int = 0
    wall_time: float = 0.0  # seconds of training so far, over all sessions
    best_eval_return: float = -math.inf
    best_eval_step: int = -1
    final_eval_return: float = math.nan


@dataclass(frozen=True)
class Episode:
    """One evaluation episode: its undiscounted return and its length in env steps."""

    total_return: float
    length: int


def evaluation_seed(run_seed: int, evaluation: int) -> int:
    """The reset seed of the first episode of a run's evaluation number ``evaluation`` (from 0):
    fixed by the run's seed, another for every evaluation, apart from the training env's."""
    return 1_000_003 * (run_seed + 1) + evaluation


def evaluate(
    agent: SVGAgent,
    env: gym.Env,
    episodes: int,
    seed: int,
    record: ReplayBuffer | None = None,
    film: Mp4Writer | None = None,
    filmed_episodes: int = 1,
) -> list[Episode]:
    """``episodes`` episodes with the mean action tanh(mu(x)), the first reset seeded.
    ``record`` receives the transitions (held out: never trained on); ``film`` the frames of
    the first ``filmed_episodes`` episodes (``env`` built with a render size). Drawing a
    frame reads the simulation only: the episodes are the same with and without ``film``."""
    results = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed if episode == 0 else None)
        filming = film if episode < filmed_episodes else None
        if filming is not None:
            filming.add(render_frame(env))
        total, length, done = 0.0, 0, False
        while not done:
            action = agent.act(obs, deterministic=True)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            if record is not None:
                record.add(obs, action, float(reward), next_obs, terminated, truncated)
            if filming is not None:
                filming.add(render_frame(env))
            obs = next_obs
            total += float(reward)
            length += 1
            done = terminated or truncated
        results.append(Episode(total, length))
    return results


MODEL_ERROR_COLUMNS = ["model_error_holdout", "model_error_replay"]
MODEL_ERROR_SEQUENCES = 1024


def model_errors(agent: SVGAgent, replay: ReplayBuffer, holdout: ReplayBuffer, rng: np.random.Generator) -> dict:
    """Fig. 7 diagnostics: the model's H-step prediction error on the evaluation episodes'
    transitions (held out) and on sequences sampled from the replay buffer (trained on)."""
    errors: dict[str, float | None] = {}
    for column, buffer in zip(MODEL_ERROR_COLUMNS, (holdout, replay)):
        starts = buffer.valid_sequence_starts(agent.horizon)
        if starts.size == 0:
            errors[column] = None
            continue
        chosen = rng.choice(starts, size=min(MODEL_ERROR_SEQUENCES, starts.size), replace=False)
        sequences = buffer.sequences_at(chosen, agent.horizon)
        errors[column] = agent.model_error(sequences.states, sequences.actions)
    return errors


EvaluationCallback = Callable[[int, float], None]


class Trainer:
    """Trains one (task, agent, seed) run into one run directory.

    ``on_evaluation(step, return_mean)`` is called after every evaluation, once its row and
    the checkpoint are written (a search reports intermediate values through it); an
    exception it raises stops the run as a failure, with nothing lost.
    """

    def __init__(
        self,
        config: RunConfig,
        run_dir: RunDirectory,
        on_evaluation: EvaluationCallback | None = None,
        say: Callable[[str], None] = say_to_stderr,
    ) -> None:
        self.config = config
        self.say = say
        self.run_dir = run_dir
        self.on_evaluation = on_evaluation
        self.spec: TaskSpec = get_task(config.suite, config.task)
        trainer = config.trainer
        if trainer.total_steps is None or trainer.eval_every is None:
            raise ValueError("the run config's task values are not filled in (harness.config.resolve_task_values)")
        self.total_steps = int(trainer.total_steps)
        self.eval_every = int(trainer.eval_every)
        self.threads = prepare_training_process(trainer.torch_threads, config.agent)  # summary.json records it
        torch.manual_seed(config.seed)
        alive_bonus = config.env.terminal_alive_bonus
        self.env = self.spec.make_env(terminal_alive_bonus=alive_bonus)
        video_size = (trainer.video_width, trainer.video_height) if trainer.video else None
        self.eval_env = self.spec.make_env(render_size=video_size, terminal_alive_bonus=alive_bonus)
        if video_size is not None:  # a machine that cannot render fails now, not at the first evaluation
            self.eval_env.reset(seed=0)  # harmless: every evaluation starts with a seeded reset
            render_frame(self.eval_env)
        # independent streams for the agent's replay sampling and the seed steps' actions
        agent_seed, action_seed = np.random.SeedSequence(config.seed).spawn(2)
        self.agent = SVGAgent(
            self.spec.obs_dim,
            self.spec.act_dim,
            config.agent,
            self.total_steps,
            agent_seed,
            warn=lambda line: say(f"warning: {line}"),
        )
        replay_device = self.agent.device if config.agent.fast_path.replay_on_device else None
        self.replay = ReplayBuffer(self.spec.obs_dim, self.spec.act_dim, config.agent.replay_capacity, replay_device)
        self.action_rng = np.random.default_rng(action_seed)
        self.progress = Progress()
        self.obs: np.ndarray | None = None
        # update metrics since the last train.csv row (a seed of a batch: its share of the batch's)
        self.metrics: MetricSums | SeedMetricSums = MetricSums()

    # ------------------------------------------------------------------ state

    def start_fresh(self) -> None:
        self.run_dir.clear_logs()
        self.obs, _ = self.env.reset(seed=self.config.seed)
        self.agent.observe(self.obs)

    def checkpoint_state(self) -> dict:
        return {
            "agent": self.agent.state_dict(),
            "replay": self.replay.state_dict(),
            "env": get_env_state(self.env),
            "obs": torch.from_numpy(np.asarray(self.obs, dtype=np.float64)),
            "progress": vars(self.progress).copy(),
            "action_rng": self.action_rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            **self.metrics.state_dict(),
        }

    def restore(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.replay.load_state_dict(state["replay"])
        self.env.reset(seed=self.config.seed)  # builds the episode machinery; state overwritten next
        set_env_state(self.env, state["env"])
        self.obs = state["obs"].numpy()
        self.progress = Progress(**state["progress"])
        self.action_rng.bit_generator.state = state["action_rng"]
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.metrics.load_state_dict(state)
        self.run_dir.truncate_logs(self.progress.step)
        self._reconcile_best()

    def best_state(self, evaluation: int, return_mean: float) -> dict:
        """best.pt's content: the agent as it is now, at evaluation number ``evaluation``."""
        return {
            "agent": self.agent.state_dict(),
            "step": self.progress.step,
            "evaluation": evaluation,
            "eval_seed": evaluation_seed(self.config.seed, evaluation),
            "return_mean": return_mean,
        }

    def _reconcile_best(self) -> None:
        """After a resume: a best.pt from beyond the checkpoint (state.pt was unreadable and the
        run resumed from state.prev.pt) is dropped; one the checkpoint's own evaluation should
        have written (a crash between the two files) is written from the restored agent."""
        p = self.progress
        try:
            best_step = int(self.run_dir.read_best()["step"])
        except CheckpointError:
            best_step = None
        if best_step is not None and best_step > p.step:
            self.run_dir.best_checkpoint_path.unlink(missing_ok=True)
            best_step = None
        if p.evaluations > 0 and p.best_eval_step == p.step and best_step != p.step:
            self.run_dir.save_best(self.best_state(p.evaluations - 1, p.best_eval_return))

    # ------------------------------------------------------------------ loop

    def run(self) -> dict:
        """Train to ``total_steps`` (resuming from the checkpoint if there is one)."""
        resumed = self.run_dir.has_checkpoint()
        try:
            if resumed:
                checkpoint = self.run_dir.read_checkpoint(required=CHECKPOINT_KEYS)
                if checkpoint.message:  # state.pt unreadable: resumed from state.prev.pt
                    self.say(checkpoint.message)
                self.restore(checkpoint.state)
            else:
                self.start_fresh()
        except CheckpointError:  # unreadable or of another version: the run folder stays untouched
            raise
        except Exception as error:  # a checkpoint that does not fit this agent: keep it, say so
            self.mark_failed(error)
            raise
        eval_log, train_log, mirror = self.open_session(resumed)
        try:
            with StopSignals() as stop:
                self._loop(eval_log, train_log, mirror, stop)
        except (KeyboardInterrupt, SystemExit) as error:  # Ctrl-C, SIGTERM, or submitit's requeue exit
            self.end_interrupted(error, mirror)
            raise
        except BaseException as error:
            self.end_failed(error, mirror)
            raise
        finally:
            eval_log.close()
            train_log.close()
            self.close_envs()
        return self.end_done(mirror)

    def open_session(self, resumed: bool) -> tuple[CsvLog, CsvLog, WandbMirror]:
        """Once resumed or started: summary.json says the run is running (with its identity,
        versions and threads), the wandb mirror starts, the CSV logs open for appending."""
        if resumed:
            self.say(f"resuming {self.run_dir.path} from step {self.progress.step}")
        summary = self.run_dir.read_summary() or {}
        summary.update(
            self._identity(),
            status=RUNNING,
            error=None,
            total_steps=self.total_steps,
            versions=package_versions(),
            git_commit=git_commit(),
            resumed=resumed,
            torch_threads=self.threads.count,
            threads_reason=self.threads.reason,
            **self._compile_fields(),
        )
        summary.setdefault("started_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        self.run_dir.write_summary(summary)
        mirror = WandbMirror(
            self.config.wandb,
            self.run_dir.path,
            to_dict(self.config),
            name=str(self.run_dir.path),
            run_id=summary.get("wandb_run_id"),
        )
        if mirror.run_id:
            summary = self.run_dir.update_summary(wandb_run_id=mirror.run_id)
        eval_columns = EVAL_COLUMNS + (MODEL_ERROR_COLUMNS if self.agent.model is not None else [])
        eval_log, train_log = self.run_dir.open_logs(eval_columns)
        self._checkpointed_stop = False
        return eval_log, train_log, mirror

    def end_interrupted(self, error: BaseException, mirror: WandbMirror) -> None:
        """Stopped by Ctrl-C, SIGTERM or submitit's requeue exit: at once (the summary keeps
        the last checkpoint's step) or after checkpointing (``_interrupt`` said so)."""
        if not self._checkpointed_stop:
            self.run_dir.update_summary(status=INTERRUPTED, error=None, interrupted_by=type(error).__name__)
        mirror.finish({"status": INTERRUPTED})

    def end_failed(self, error: BaseException, mirror: WandbMirror) -> None:
        try:  # a failure caused by a divergence not yet read (deferred metrics): report that
            self.metrics.check_finite()
        except DivergenceError as diverged:
            error = diverged
        self.mark_failed(error, steps_done=self.progress.step)
        mirror.finish({"status": FAILED})

    def end_done(self, mirror: WandbMirror) -> dict:
        summary = self.run_dir.update_summary(**self._results(), status=DONE)
        mirror.finish(summary)
        return summary

    def close_envs(self) -> None:
        """Release the envs (an off-screen renderer's OpenGL context with them)."""
        self.env.close()
        self.eval_env.close()

    def mark_failed(self, error: BaseException, **fields) -> None:
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        if isinstance(error, DivergenceError):  # which loss, at which step: summary.json says
            fields.update(diverged={"loss": error.loss, "value": str(error.value), "step": error.step})
        try:
            self.run_dir.update_summary(**self._identity(), status=FAILED, error=message, **fields)
        except OSError:  # a full disk: the error itself still reaches the user
            pass

    def _interrupt(self, stop: StopSignals) -> None:
        """Checkpoint here (a step boundary: the state is whole), mark the run interrupted;
        a SLURM job's SIGUSR2 then goes on to submitit, which requeues the job."""
        self.checkpoint_for_stop(stop)
        pass_on_stop(stop, self.say, f"{self.run_dir.path}: ")
        raise RunInterrupted(f"{self.run_dir.path} interrupted by {stop.requested} at step {self.progress.step}")

    def checkpoint_for_stop(self, stop: StopSignals) -> None:
        """``_interrupt``'s checkpoint and summary (status interrupted), and its line."""
        self.progress.wall_time = self._wall_at_start + time.perf_counter() - self._session_start
        self.run_dir.save_checkpoint(self.checkpoint_state())
        self.run_dir.update_summary(status=INTERRUPTED, error=None, **self._results(), interrupted_by=stop.requested)
        self._checkpointed_stop = True
        self.say(f"{self.run_dir.path}: {stop.requested} at step {self.progress.step}; checkpointed")

    def _identity(self) -> dict:
        c = self.config
        return {
            "suite": c.suite,
            "task": c.task,
            "agent": c.agent.name,
            "seed": c.seed,
            "preset": c.preset,
            "horizon": c.agent.horizon,
        }

    def compiled_as(self) -> CompileChoice:
        """How this run's updates are computed (``agent.compile``, "auto" resolved): the
        agent's choice, or "off" once its compiled update fell back to eager."""
        choice = self.agent.compile_choice
        if self.agent.whole_update is not None and self.agent.whole_update.failed:
            return CompileChoice("off", f"{choice.reason}; compiling the update failed, so it runs eagerly")
        return choice

    def _compile_fields(self) -> dict:
        choice = self.compiled_as()
        return {"compile_mode": choice.mode, "compile_reason": choice.reason}

    def _results(self) -> dict:
        p = self.progress

        def finite(x: float) -> float | None:  # JSON has no inf/nan
            return x if math.isfinite(x) else None

        return {
            "steps_done": p.step,
            "final_eval_return": finite(p.final_eval_return),
            "best_eval_return": finite(p.best_eval_return),
            "best_eval_step": p.best_eval_step,
            "evaluations": p.evaluations,
            "wall_time": p.wall_time,
            "steps_per_second": p.step / p.wall_time if p.wall_time > 0 else None,
            **self._compile_fields(),
        }

    def _loop(self, eval_log, train_log, mirror: WandbMirror, stop: StopSignals) -> None:
        p, c = self.progress, self.config
        if self.obs is None:
            raise RuntimeError("the trainer's loop runs after its env is reset or restored")
        metrics = self.metrics
        if not isinstance(metrics, MetricSums):
            raise TypeError("the trainer's loop sums a lone run's metrics (a batch's seeds: harness.batched_trainer)")
        self._session_start, self._wall_at_start = time.perf_counter(), p.wall_time
        row_clock, row_step = time.perf_counter(), p.step
        bar = ProgressBar(
            self.total_steps,
            p.step,
            c.trainer.seed_steps,
            enabled=c.trainer.progress,
            desc=f"{c.task}/{c.agent.name}/seed {c.seed}",
        )
        cost = StepCost(
            self.total_steps,
            enabled=c.preset == "paper" and self.agent.device.type == "cpu",
            provisional=self.agent.whole_update is None,  # a compiled update's first steps compile it
        )
        while p.step < self.total_steps:
            if p.step < c.trainer.seed_steps:
                action = self.action_rng.uniform(-1.0, 1.0, self.spec.act_dim).astype(np.float32)
            else:
                action = self.agent.act(self.obs, deterministic=False)
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            self.replay.add(self.obs, action, float(reward), next_obs, terminated, truncated)
            self.agent.observe(next_obs)
            p.step += 1
            p.episode_return += float(reward)
            p.episode_length += 1
            if p.step >= c.trainer.seed_steps:
                cost.start()
                metrics.add(self.agent.update(self.replay, p.step), p.step)
                cost.stop(p.step, self.say)
            if terminated or truncated:
                now = time.perf_counter()
                row = {
                    "step": p.step,
                    "episode": p.episode,
                    "episode_return": p.episode_return,
                    "episode_length": p.episode_length,
                    "steps_per_second": (p.step - row_step) / max(now - row_clock, 1e-9),
                }
                row.update(metrics.read())  # the log interval: one host read, the divergence check
                row["target_entropy"] = self.agent.target_entropy(p.step)
                row["alpha"] = self.agent.alpha.item()
                train_log.append(row)
                mirror.log("train", row)
                row_clock, row_step = now, p.step
                p.episode += 1
                p.episode_return, p.episode_length = 0.0, 0
                next_obs, _ = self.env.reset()
                self.agent.observe(next_obs)
            self.obs = next_obs
            bar.update(p.step)
            if p.step % self.eval_every == 0 or p.step == self.total_steps:
                p.wall_time = self._wall_at_start + time.perf_counter() - self._session_start
                self._evaluate_and_checkpoint(eval_log, mirror)
                bar.evaluated(p.final_eval_return)
            if stop.requested and p.step < self.total_steps:
                bar.close()
                self._interrupt(stop)
        bar.close()

    def _evaluate_and_checkpoint(self, eval_log, mirror: WandbMirror) -> None:
        p, c = self.progress, self.config
        self.metrics.check_finite()  # a diverged run is neither evaluated nor checkpointed
        eval_seed = evaluation_seed(c.seed, p.evaluations)
        holdout = None
        if self.agent.model is not None:
            limit = self.eval_env.spec.max_episode_steps if self.eval_env.spec is not None else None
            holdout = ReplayBuffer(self.spec.obs_dim, self.spec.act_dim, c.trainer.eval_episodes * (limit or 1000))
        film = Mp4Writer(video_path(self.run_dir.path, p.step), render_fps(self.eval_env)) if c.trainer.video else None
        with film or nullcontext():  # the video gets its name once whole; an exception leaves none
            episodes = evaluate(
                self.agent, self.eval_env, c.trainer.eval_episodes, seed=eval_seed, record=holdout, film=film
            )
        video = film.path if film is not None else None
        returns = [episode.total_return for episode in episodes]
        evaluation = p.evaluations
        p.evaluations += 1
        row = {
            "step": p.step,
            "return_mean": float(np.mean(returns)),
            "return_std": float(np.std(returns)),
            "episodes": len(returns),
            "wall_time": p.wall_time,
        }
        if holdout is not None:
            row.update(model_errors(self.agent, self.replay, holdout, np.random.default_rng(eval_seed)))
        eval_log.append(row)
        mirror.log("eval", row)
        if video is not None:
            mirror.log_video("eval/video", video, p.step)
        p.final_eval_return = row["return_mean"]
        improved = row["return_mean"] > p.best_eval_return
        if improved:
            p.best_eval_return, p.best_eval_step = row["return_mean"], p.step
        self.run_dir.save_checkpoint(self.checkpoint_state())
        if improved:  # after the checkpoint: a resume rewrites it if a crash came between (_reconcile_best)
            self.run_dir.save_best(self.best_state(evaluation, row["return_mean"]))
        self.run_dir.update_summary(status=RUNNING, **self._results())
        if self.on_evaluation is not None:
            self.on_evaluation(p.step, row["return_mean"])


def pass_on_stop(stop: StopSignals, say: Callable[[str], None], where: str = "") -> None:
    """Once checkpointed: hand the stop on (a SLURM job's SIGUSR2 to submitit, which requeues
    the job); a requeue that fails is one line, and a rerun resumes."""
    try:
        stop.pass_on()
    except Exception as error:  # noqa: BLE001 - e.g. submitit's "timed-out too many times"
        say(
            f"{where}not requeued ({str(error).splitlines()[0] if str(error) else error!r}); "
            f"rerun the same command to resume"
        )


def train_run(config: RunConfig, path: str | Path, on_evaluation: EvaluationCallback | None = None) -> dict:
    """Train (or resume, or skip if done) the run at ``path``; returns its summary."""
    run_dir = RunDirectory(path)
    with run_lock(run_dir.path):  # a run another process holds is refused before anything is written
        summary = run_dir.read_summary()
        if summary and summary.get("status") == DONE:
            return summary
        if run_dir.stored_config_text() is None:
            run_dir.write_config(to_yaml(config))
        return Trainer(config, run_dir, on_evaluation).run()
