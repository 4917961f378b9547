"""Seeds of one (task, agent, config) trained by one process as one computation
(``agents.batched``): Algorithm 1's loop stepping S environments in step, one batched
update for all seeds per env step.

Each seed keeps its own environment and evaluation environment, replay buffer (its rows of
a stacked storage), normaliser, random streams (replay sampling, seed-step actions, policy
and model noise), run folder, logs, checkpoints and summary, written exactly as a lone run
(``harness.trainer.Trainer``) writes them: each seed is a ``SeedTrainer``, a ``Trainer``
whose state, checkpoint, evaluation and summary methods run unchanged on a lone agent
holding the seed's state, with torch's global generator standing in for the seed's noise
stream (``SeedTrainer.as_lone``). A seed's checkpoint resumes a lone run, and a lone run's
checkpoint resumes a seed of a batch.

A seed that diverges (or fails in its own part of the loop: its environment, evaluation or
files) is marked failed, as a lone run would be, and leaves the batch; the others go on.
Seeds resume together: the seeds whose checkpoints are at the step of the first are one
batch, the rest another, trained after it.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agents import SVGAgent
from agents.batched import BatchedSVGAgent
from agents.compile import CompileChoice
from agents.replay import ReplayBuffer
from agents.stacked_metrics import StackedMetricSums
from agents.stacked_replay import StackedReplay
from harness.config import RunConfig, to_yaml
from harness.contract import DONE, run_lock
from harness.lifecycle import ProgressBar, RunInterrupted, StepCost, StopSignals, say_to_stderr
from harness.process import prepare_training_process
from harness.rundir import CHECKPOINT_KEYS, CheckpointError, LoadedCheckpoint, RunDirectory
from harness.trainer import EvaluationCallback, Trainer, pass_on_stop


class SeedTrainer(Trainer):
    """One seed of a batch: its run folder, environments, counters and files, with the lone
    ``Trainer``'s methods. Its agent, replay buffer and metric sums are its slices of the
    batch's (``attach``); ``as_lone`` lends it a lone agent for what a lone run does with
    its agent between updates (restore, evaluate, checkpoint)."""

    _agent: SVGAgent | None
    _replay: ReplayBuffer | None

    def __init__(
        self,
        config: RunConfig,
        run_dir: RunDirectory,
        on_evaluation: EvaluationCallback | None = None,
        say: Callable[[str], None] = say_to_stderr,
    ) -> None:
        super().__init__(config, run_dir, on_evaluation, say)  # builds the seed's agent as a lone run does
        device = self.agent.device
        # where the lone run's global generator stands once its agent is built: the seed's noise stream
        self.noise_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
        self._replay = None  # the lone buffer: the seed's rows of the batch's storage replace it
        self._batch: BatchedSVGAgent | None = None
        self.index = -1
        self.logs: tuple = ()
        self.resumed = False
        self.row_clock, self.row_step = 0.0, 0

    def compiled_as(self) -> CompileChoice:
        """A batch's updates run eagerly, whatever ``agent.compile`` says."""
        return CompileChoice("off", "seeds trained as a batch run eagerly")

    @property
    def agent(self) -> SVGAgent:
        """The seed's lone agent: the one its run built until ``attach``, then within ``as_lone`` only."""
        if self._agent is None:
            raise RuntimeError(f"seed {self.config.seed} of a batch has a lone agent only within as_lone()")
        return self._agent

    @agent.setter
    def agent(self, agent: SVGAgent) -> None:
        self._agent = agent

    @property
    def replay(self) -> ReplayBuffer:
        """The seed's rows of the batch's replay storage, once attached."""
        if self._replay is None:
            raise RuntimeError(f"seed {self.config.seed} has no replay buffer before it joins a batch (attach)")
        return self._replay

    @replay.setter
    def replay(self, replay: ReplayBuffer) -> None:
        self._replay = replay

    @property
    def batch(self) -> BatchedSVGAgent:
        if self._batch is None:
            raise RuntimeError(f"seed {self.config.seed} is not in a batch yet (attach)")
        return self._batch

    def attach(self, batch: BatchedSVGAgent, replay: StackedReplay, metrics: StackedMetricSums, index: int) -> None:
        """Seed ``index`` of the batch from now on (after the batch was built or shrank)."""
        self._batch, self.index = batch, index
        self._agent = None  # see as_lone
        self.replay = replay.seed_buffer(index)
        self.metrics = metrics.of_seed(index)

    @contextlib.contextmanager
    def as_lone(self) -> Iterator[None]:
        """Within the block ``self.agent`` is a lone ``SVGAgent`` holding this seed's state and
        torch's global generator is this seed's noise stream (its draws advance the seed's
        generator), so the inherited methods run as in a lone run."""
        self.agent = self.batch.seed_agent(self.index)
        try:
            with self.batch.noise.as_global(self.index):
                yield
        finally:
            self._agent = None

    def current_obs(self) -> np.ndarray:
        """The state the seed's next env step starts from."""
        if self.obs is None:
            raise RuntimeError(f"seed {self.config.seed}'s loop runs after its env is reset or restored")
        return self.obs

    def start_fresh(self) -> None:
        self.run_dir.clear_logs()
        self.obs, _ = self.env.reset(seed=self.config.seed)
        self.batch.observe_seed(self.index, self.obs)

    def restore(self, state: dict) -> None:
        with self.as_lone():
            super().restore(state)
        self.batch.load_seed_state(self.index, state["agent"])

    def open_batch_session(self, resumed: bool, session_start: float) -> None:
        with self.as_lone():
            self.logs = self.open_session(resumed)
        self._session_start, self._wall_at_start = session_start, self.progress.wall_time
        self.row_clock, self.row_step = session_start, self.progress.step

    def elapse(self) -> None:
        self.progress.wall_time = self._wall_at_start + time.perf_counter() - self._session_start

    def end_episode(self, now: float) -> np.ndarray:
        """The episode's train.csv row (``Trainer._loop``'s), the seed's metrics read (a
        divergence raises here), the environment reset; returns its first state."""
        p = self.progress
        row = {
            "step": p.step,
            "episode": p.episode,
            "episode_return": p.episode_return,
            "episode_length": p.episode_length,
            "steps_per_second": (p.step - self.row_step) / max(now - self.row_clock, 1e-9),
        }
        row.update(self.metrics.read())
        row["target_entropy"] = self.batch.target_entropy(p.step)
        row["alpha"] = self.batch.alpha[self.index].item()
        self.logs[1].append(row)
        self.logs[2].log("train", row)
        self.row_clock, self.row_step = now, p.step
        p.episode += 1
        p.episode_return, p.episode_length = 0.0, 0
        obs, _ = self.env.reset()
        self.batch.observe_seed(self.index, obs)
        return obs

    def evaluate_and_checkpoint(self) -> None:
        self.elapse()
        with self.as_lone():
            self._evaluate_and_checkpoint(self.logs[0], self.logs[2])

    def close_logs(self) -> None:
        for log in self.logs[:2]:
            log.close()


@dataclass
class SeedOutcome:
    """How one seed's run ended: ``summary`` when done (or already done), ``error`` when it
    failed or was refused (``trace``: its traceback, for the run's error.log)."""

    path: Path
    summary: dict | None = None
    error: BaseException | None = None
    trace: str = ""


class BatchedTrainer:
    """Trains seeds of one (task, agent, config) as one batch until done; seeds that fail
    leave it. ``run`` returns the seeds left for a later batch (checkpoints at another step)."""

    def __init__(
        self,
        runs: list[tuple[RunConfig, RunDirectory, EvaluationCallback | None]],
        outcomes: dict[Path, SeedOutcome],
        say: Callable[[str], None] = say_to_stderr,
    ) -> None:
        self.runs, self.outcomes, self.say = runs, outcomes, say
        self.seeds: list[SeedTrainer] = []

    # ------------------------------------------------------------------ seeds

    def _fail(self, seed: SeedTrainer, error: BaseException, trace: str = "") -> None:
        """Mark one seed failed as a lone run is (``Trainer.end_failed``) and close its files."""
        try:
            if seed.logs:
                seed.end_failed(error, seed.logs[2])
            else:
                seed.mark_failed(error, steps_done=seed.progress.step)
        finally:
            seed.close_logs()
            seed.close_envs()
            self.outcomes[seed.run_dir.path] = SeedOutcome(
                seed.run_dir.path, error=error, trace=trace or "".join(traceback.format_exception(error))
            )

    def _leave(self, failed: dict[SeedTrainer, BaseException]) -> None:
        """The failed seeds, and any other seed whose metrics diverged meanwhile, leave the
        batch; the others go on in a batch of their own states."""
        for index, diverged in self.metrics.diverged().items():
            failed.setdefault(self.seeds[index], diverged)
        for seed, error in failed.items():
            self._fail(seed, error)
        keep = [i for i, seed in enumerate(self.seeds) if seed not in failed]
        self.seeds = [self.seeds[i] for i in keep]
        if self.seeds:
            self._attach(self.batch.drop_seeds(keep), self.replay.select(keep), self.metrics.select(keep))

    def _attach(self, batch: BatchedSVGAgent, replay: StackedReplay, metrics: StackedMetricSums) -> None:
        self.batch, self.replay, self.metrics = batch, replay, metrics
        for index, seed in enumerate(self.seeds):
            seed.attach(batch, replay, metrics, index)

    def _start(self) -> list[tuple[RunConfig, RunDirectory, EvaluationCallback | None]]:
        """Build every seed, read its checkpoint, keep the seeds at the first one's step,
        build the batch from them and restore or start each. Returns the runs left over."""
        checkpoints: dict[SeedTrainer, LoadedCheckpoint] = {}
        seeds = []
        for config, run_dir, on_evaluation in self.runs:
            seed = SeedTrainer(config, run_dir, on_evaluation, self.say)
            try:
                if run_dir.has_checkpoint():  # unreadable or of another version: the folder stays untouched
                    checkpoints[seed] = run_dir.read_checkpoint(required=CHECKPOINT_KEYS)
            except CheckpointError as error:
                seed.close_envs()
                self.outcomes[run_dir.path] = SeedOutcome(run_dir.path, error=error, trace=traceback.format_exc())
                continue
            seeds.append(seed)
        step = lambda seed: checkpoints[seed].state["progress"]["step"] if seed in checkpoints else 0  # noqa: E731
        self.seeds = [seed for seed in seeds if seeds and step(seed) == step(seeds[0])]
        later = [(seed.config, seed.run_dir, seed.on_evaluation) for seed in seeds if seed not in self.seeds]
        for seed in seeds:
            if seed not in self.seeds:
                seed.close_envs()
        if not self.seeds:
            return later
        first = self.seeds[0]
        batch = BatchedSVGAgent.from_agents(
            [seed.agent for seed in self.seeds],
            [seed.noise_state for seed in self.seeds],
            warn=lambda line: self.say(f"warning: {line}"),
        )
        agent_config = first.config.agent
        replay_device = batch.device if agent_config.fast_path.replay_on_device else None
        self._attach(
            batch,
            StackedReplay(
                len(self.seeds), first.spec.obs_dim, first.spec.act_dim, agent_config.replay_capacity, replay_device
            ),
            StackedMetricSums(len(self.seeds)),
        )
        threads = prepare_training_process(first.config.trainer.torch_threads, agent_config, seeds=len(self.seeds))
        failed: dict[SeedTrainer, BaseException] = {}
        for seed in self.seeds:
            seed.threads = threads  # summary.json records the batch's choice
            try:
                if seed in checkpoints:
                    message = checkpoints[seed].message
                    if message:  # state.pt unreadable: resumed from state.prev.pt
                        self.say(message)
                    seed.restore(checkpoints.pop(seed).state)
                    seed.resumed = True
                else:
                    seed.start_fresh()
            except Exception as error:  # noqa: BLE001 - a checkpoint that does not fit this agent: keep it, say so
                failed[seed] = error
        if failed:
            self._leave(failed)
        return later

    # ------------------------------------------------------------------ loop

    def run(self) -> list[tuple[RunConfig, RunDirectory, EvaluationCallback | None]]:
        later = self._start()
        if not self.seeds:
            return later
        session_start = time.perf_counter()
        for seed in list(self.seeds):
            try:
                seed.open_batch_session(seed.resumed, session_start)
            except Exception as error:  # noqa: BLE001 - this seed's files: it fails alone
                self._leave({seed: error})
        try:
            with StopSignals() as stop:
                self._loop(stop)
        except (KeyboardInterrupt, SystemExit) as error:  # Ctrl-C, SIGTERM, or submitit's requeue exit
            for seed in self.seeds:
                seed.end_interrupted(error, seed.logs[2])
            raise
        except BaseException as error:  # the batch's own computation: every seed in it fails
            trace = traceback.format_exc()
            for seed in list(self.seeds):
                seed.end_failed(error, seed.logs[2])
                self.outcomes[seed.run_dir.path] = SeedOutcome(seed.run_dir.path, error=error, trace=trace)
            if not isinstance(error, Exception):
                raise
        else:
            for seed in self.seeds:
                self.outcomes[seed.run_dir.path] = SeedOutcome(seed.run_dir.path, summary=seed.end_done(seed.logs[2]))
        finally:
            for seed in self.seeds:
                seed.close_logs()
                seed.close_envs()
        return later

    def _loop(self, stop: StopSignals) -> None:
        first = self.seeds[0]
        c, total = first.config, first.total_steps
        step = first.progress.step
        numbers = ", ".join(str(seed.config.seed) for seed in self.seeds)
        bar = ProgressBar(
            total,
            step,
            c.trainer.seed_steps,
            enabled=c.trainer.progress,
            desc=f"{c.task}/{c.agent.name}/seeds {numbers}",
        )
        cost = StepCost(total, enabled=c.preset == "paper" and self.batch.device.type == "cpu")
        while step < total and self.seeds:
            seeds = self.seeds
            obs = np.stack([seed.current_obs() for seed in seeds])
            if step < c.trainer.seed_steps:
                actions = np.stack(
                    [seed.action_rng.uniform(-1.0, 1.0, seed.spec.act_dim).astype(np.float32) for seed in seeds]
                )
            else:
                actions = self.batch.act(obs, deterministic=False)
            failed: dict[SeedTrainer, BaseException] = {}
            transitions = []
            for seed, action in zip(seeds, actions):
                try:
                    transitions.append(seed.env.step(action))
                except Exception as error:  # noqa: BLE001 - this seed's environment: it fails alone
                    failed[seed] = error
                    transitions.append((seed.obs, 0.0, True, False, {}))
            next_obs = np.stack([t[0] for t in transitions])
            rewards = np.array([float(t[1]) for t in transitions])
            terminated, truncated = np.array([t[2] for t in transitions]), np.array([t[3] for t in transitions])
            self.replay.add(obs, actions, rewards, next_obs, terminated, truncated)
            self.batch.observe(next_obs)
            step += 1
            for seed, reward in zip(seeds, rewards):
                seed.progress.step = step
                seed.progress.episode_return += float(reward)
                seed.progress.episode_length += 1
            if step >= c.trainer.seed_steps:
                cost.start()
                self.metrics.add(self.batch.update(self.replay, step), step)
                cost.stop(step, self.say)
            now = time.perf_counter()
            for i, seed in enumerate(seeds):
                seed.obs = next_obs[i]
                if (terminated[i] or truncated[i]) and seed not in failed:
                    try:
                        seed.obs = seed.end_episode(now)  # the log interval: the seed's divergence check
                    except Exception as error:  # noqa: BLE001 - divergence, or this seed's files
                        failed[seed] = error
            bar.update(step)
            if step % first.eval_every == 0 or step == total:
                returns = []
                for seed in seeds:
                    if seed in failed:
                        continue
                    try:
                        seed.evaluate_and_checkpoint()
                        returns.append(seed.progress.final_eval_return)
                    except Exception as error:  # noqa: BLE001 - divergence, this seed's files or its search trial
                        failed[seed] = error
                if returns:
                    bar.evaluated(float(np.mean(returns)))
            if failed:
                self._leave(failed)
            if stop.requested and step < total and self.seeds:
                bar.close()
                self._interrupt(stop)
        bar.close()

    def _interrupt(self, stop: StopSignals) -> None:
        """Every seed checkpoints here and is marked interrupted (``Trainer._interrupt``);
        a SLURM job's SIGUSR2 then goes on to submitit, which requeues the job."""
        diverged = self.metrics.diverged()
        if diverged:
            self._leave({self.seeds[i]: error for i, error in diverged.items()})
        for seed in self.seeds:
            with seed.as_lone():
                seed.checkpoint_for_stop(stop)
        pass_on_stop(stop, self.say)
        step = self.seeds[0].progress.step if self.seeds else 0
        raise RunInterrupted(f"a batch of {len(self.seeds)} seeds interrupted by {stop.requested} at step {step}")


def train_batch(
    configs: list[RunConfig],
    paths: list[str | Path],
    on_evaluation: list[EvaluationCallback | None] | None = None,
    say: Callable[[str], None] = say_to_stderr,
) -> list[SeedOutcome]:
    """Train (or resume, or skip if done) the runs at ``paths``, seeds of one task, agent
    and config, as one batch (or a few, where their checkpoints stand at different steps).
    A run another process holds is refused (``RunBusyError`` as its outcome's error),
    touching nothing. Returns each run's outcome, in order."""
    callbacks = on_evaluation or [None] * len(configs)
    outcomes: dict[Path, SeedOutcome] = {}
    with contextlib.ExitStack() as locks:
        runs = []
        for config, path, callback in zip(configs, paths, callbacks):
            run_dir = RunDirectory(path)
            try:
                locks.enter_context(run_lock(run_dir.path))
            except Exception as error:  # noqa: BLE001 - RunBusyError: another process trains it
                outcomes[run_dir.path] = SeedOutcome(run_dir.path, error=error)
                continue
            summary = run_dir.read_summary()
            if summary and summary.get("status") == DONE:
                outcomes[run_dir.path] = SeedOutcome(run_dir.path, summary=summary)
                continue
            if run_dir.stored_config_text() is None:
                run_dir.write_config(to_yaml(config))
            runs.append((config, run_dir, callback))
        while runs:
            runs = BatchedTrainer(runs, outcomes, say).run()
    return [outcomes[RunDirectory(path).path] for path in paths]
