"""Paper Fig. 3 (section 5.1.1): how well the GRU dynamics model and an ensemble of one-step
MLPs generalise, trained supervised on the episodes of a finished run's replay buffer.

The buffer's complete episodes are split once into a fixed test set (a seeded random
``test_fraction`` of them). The rest are added in chronological order, stage by stage, every
``holdout_every``-th added episode to the holdout set and the others to the train set; at
each stage both models train on the train set (continuing from the previous stage, as the
agent's model does online, or from scratch) and their H-step error is measured on train,
holdout and test. A "no-change" predictor (x_{t+k} = x_t) gives the floor any model must beat.

Output, in ``<run>/model_generalisation/`` unless told otherwise: ``model_generalisation.csv``
(``CSV_COLUMNS``, one row per stage x model x split) and ``model_generalisation.json``
(source run, horizon, parameter counts, settings, split sizes). ``reports/`` reads these files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from agents.dynamics import GRUDynamics, MLPEnsembleDynamics
from agents.normalizer import RunningNormalizer
from agents.replay import ReplayBuffer, SequenceBatch
from harness.config import ConfigError, RunConfig, from_yaml
from harness.contract import atomic_write_bytes
from harness.rundir import CheckpointError, RunDirectory

FOLDER = "model_generalisation"
CSV_NAME = "model_generalisation.csv"
JSON_NAME = "model_generalisation.json"
CSV_COLUMNS = [
    "stage",
    "train_episodes",
    "holdout_episodes",
    "test_episodes",
    "train_transitions",
    "model",
    "split",
    "mse",
    "sequences",
]
MODELS = ("gru", "mlp-ensemble", "no-change")
SPLITS = ("train", "holdout", "test")
EVAL_CHUNK = 4096  # sequences per forward pass when measuring errors


@dataclass
class GeneralisationSettings:
    """Every knob of the study. Sizes are smaller than the paper's 512-unit model (section
    4.2) so the study runs on a CPU in minutes; ``--hidden-dim 512 --gru-hidden-dim 512``
    gives the paper's GRU."""

    horizon: int = 3  # H: transitions per training sequence (GRU) and per error rollout
    stages: int = 10
    updates_per_stage: int = 500  # gradient steps of each model per stage
    batch_size: int = 256  # GRU: sequences per update; ensemble: one-step transitions per member
    hidden_dim: int = 128  # GRU encoder/decoder MLP width
    hidden_depth: int = 2
    gru_hidden_dim: int = 128
    gru_layers: int = 2
    members: int = 5
    ensemble_hidden_dim: int | None = None  # None: the width whose parameter count is closest to the GRU's
    learning_rate: float = 1e-3
    grad_clip: float = 1.0  # the agent's default: the norm for the mean-reduced loss (T x D scaled); 0 disables
    test_fraction: float = 0.2  # of the complete episodes, drawn once with the seed
    holdout_every: int = 5  # every k-th added episode goes to holdout (the 1st, (k+1)th, ...)
    from_scratch: bool = False  # rebuild the models at every stage instead of continuing
    max_eval_sequences: int = 4096  # per split and stage; a seeded subsample beyond that
    seed: int = 0
    threads: int = 1

    def check(self) -> None:
        """One-line ConfigError for a value the study cannot use."""
        positive = (
            "horizon",
            "stages",
            "updates_per_stage",
            "batch_size",
            "hidden_dim",
            "gru_hidden_dim",
            "gru_layers",
            "members",
            "holdout_every",
            "max_eval_sequences",
            "threads",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test-fraction must be in (0, 1), got {self.test_fraction}")
        if self.ensemble_hidden_dim is not None and self.ensemble_hidden_dim < 1:
            raise ConfigError(f"ensemble-hidden-dim must be >= 1, got {self.ensemble_hidden_dim}")


@dataclass
class SourceRun:
    """The finished run the transitions come from."""

    path: Path
    config: RunConfig
    transitions: dict[str, np.ndarray]  # the ReplayBuffer arrays, oldest transition first
    wrapped: bool  # the ring overwrote transitions: its oldest episode lost its start
    steps_done: int | None

    @property
    def obs_dim(self) -> int:
        return self.transitions["obs"].shape[1]

    @property
    def act_dim(self) -> int:
        return self.transitions["action"].shape[1]

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "path": str(self.path),
            "suite": c.suite,
            "task": c.task,
            "agent": c.agent.name,
            "agent_folder": self.path.parent.name,
            "seed": c.seed,
            "preset": c.preset,
            "steps_done": self.steps_done,
            "transitions": len(self.transitions["obs"]),
        }


@dataclass
class Stage:
    """Episodes (indices into the chronological episode list) in each split at one stage."""

    number: int
    train: list[int]
    holdout: list[int]


# ---------------------------------------------------------------------------- data


def load_source(run_path: str | Path) -> SourceRun:
    """The run's config and replay transitions, oldest first; ConfigError if it has none."""
    run_dir = RunDirectory(run_path)
    if not run_dir.has_checkpoint():
        raise ConfigError(
            f"{run_dir.path} has no checkpoint ({run_dir.checkpoint_path.relative_to(run_dir.path)}): "
            "give a run folder <out>/<suite>/<task>/<agent>/seed_<n> that has evaluated once"
        )
    text = run_dir.stored_config_text()
    if text is None:
        raise ConfigError(f"{run_dir.path} has no config.yaml: not a run folder")
    try:
        config = from_yaml(text)
    except Exception as error:  # omegaconf raises many types; the user needs one line
        raise ConfigError(
            f"{run_dir.config_path} is not a run config this version reads ({type(error).__name__})"
        ) from error
    try:
        state = run_dir.load_checkpoint()
    except CheckpointError as error:
        raise ConfigError(str(error)) from error
    replay = state.get("replay")
    if not isinstance(replay, dict) or not {"size", "position", *ReplayBuffer.ARRAYS} <= set(replay):
        raise ConfigError(f"{run_dir.checkpoint_path} holds no replay buffer")
    size, position = int(replay["size"]), int(replay["position"])
    # A full ring's oldest slot is the write position; a ring not yet full has position == size.
    order = (position + np.arange(size)) % max(size, 1)
    transitions = {name: replay[name].numpy()[order] for name in ReplayBuffer.ARRAYS}
    steps = (state.get("progress") or {}).get("step")
    steps = None if steps is None else int(steps)
    # The ring overwrote its oldest transitions if the run stored more than it holds.
    wrapped = steps > size if steps is not None else position < size
    return SourceRun(run_dir.path.resolve(), config, transitions, wrapped, steps)


def complete_episodes(episode_end: np.ndarray, wrapped: bool) -> list[np.ndarray]:
    """Chronological transition indices of every complete episode: the trailing unfinished
    one is dropped, and so is the first when the ring wrapped (its start was overwritten)."""
    ends = np.flatnonzero(episode_end)
    starts = np.concatenate([[0], ends[:-1] + 1]) if ends.size else np.empty(0, dtype=np.int64)
    episodes = [np.arange(start, end + 1) for start, end in zip(starts, ends)]
    return episodes[1:] if wrapped else episodes


def choose_test_episodes(count: int, fraction: float, rng: np.random.Generator) -> list[int]:
    """A fixed, seeded random ``fraction`` of the episodes (at least one)."""
    size = max(1, round(fraction * count))
    return sorted(rng.choice(count, size=size, replace=False).tolist())


def plan_stages(remaining: list[int], stages: int, holdout_every: int) -> list[Stage]:
    """Stage k holds the first ceil(k n / stages) remaining episodes (chronological); of the
    added episodes, numbers 0, e, 2e, ... (e = ``holdout_every``) go to holdout, the others
    to train."""
    plan = []
    for number in range(1, stages + 1):
        added = remaining[: math.ceil(number * len(remaining) / stages)]
        plan.append(
            Stage(
                number,
                [e for i, e in enumerate(added) if i % holdout_every],
                [e for i, e in enumerate(added) if i % holdout_every == 0],
            )
        )
    return plan


def check_enough_data(episodes: list[np.ndarray], test: list[int], plan: list[Stage], horizon: int) -> None:
    """ConfigError naming the first split with no H-transition sequence inside one episode."""

    def sequences(ids: list[int]) -> int:
        return sum(max(len(episodes[i]) - horizon + 1, 0) for i in ids)

    advice = (
        f"the buffer's {len(episodes)} complete episodes are too few; use fewer --stages, a smaller "
        f"--horizon or a longer run"
    )
    if sequences(test) == 0:
        raise ConfigError(f"the test split has no sequence of {horizon} transitions: {advice}")
    for stage in plan:
        for split, ids in (("train", stage.train), ("holdout", stage.holdout)):
            if sequences(ids) == 0:
                raise ConfigError(
                    f"stage {stage.number}'s {split} split has no sequence of {horizon} transitions: {advice}"
                )


def episode_buffer(source: SourceRun, episodes: list[np.ndarray], ids: list[int]) -> ReplayBuffer:
    """A replay buffer holding exactly the episodes ``ids``, in order, full and unwrapped."""
    index = np.concatenate([episodes[i] for i in ids])
    buffer = ReplayBuffer(source.obs_dim, source.act_dim, len(index))
    state = {name: torch.from_numpy(source.transitions[name][index]) for name in ReplayBuffer.ARRAYS}
    buffer.load_state_dict({**state, "size": len(index), "position": 0})
    return buffer


def fit_normalizer(buffer: ReplayBuffer, config: RunConfig) -> RunningNormalizer:
    """Fitted on every state of the train episodes once (each x_t, plus each episode's last x_{t+1})."""
    normalizer = RunningNormalizer(buffer.obs.shape[1], config.agent.obs_std_min, config.agent.obs_std_max)
    normalizer.update(np.concatenate([buffer.obs, buffer.next_obs[buffer.episode_end]]))
    return normalizer


def evaluation_sequences(buffer: ReplayBuffer, horizon: int, limit: int, rng: np.random.Generator) -> SequenceBatch:
    """Every valid H-transition sequence of ``buffer``, or a seeded subsample of ``limit``."""
    starts = buffer.valid_sequence_starts(horizon)
    if starts.size > limit:
        starts = np.sort(rng.choice(starts, size=limit, replace=False))
    return buffer.sequences_at(starts, horizon)


# ---------------------------------------------------------------------------- models


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_gru(obs_dim: int, act_dim: int, settings: GeneralisationSettings) -> GRUDynamics:
    return GRUDynamics(
        obs_dim, act_dim, settings.hidden_dim, settings.hidden_depth, settings.gru_hidden_dim, settings.gru_layers
    )


def build_ensemble(obs_dim: int, act_dim: int, settings: GeneralisationSettings, width: int) -> MLPEnsembleDynamics:
    return MLPEnsembleDynamics(obs_dim, act_dim, width, settings.hidden_depth, settings.members)


def matched_ensemble_width(obs_dim: int, act_dim: int, settings: GeneralisationSettings, target: int) -> int:
    """The ensemble width whose parameter count is closest to ``target`` (built on the meta
    device, so no memory is spent; the count grows with the width)."""

    def count(width: int) -> int:
        with torch.device("meta"):
            return parameter_count(build_ensemble(obs_dim, act_dim, settings, width))

    low, high = 1, 2
    while count(high) < target:
        low, high = high, 2 * high
    while high - low > 1:  # count(low) < target <= count(high)
        middle = (low + high) // 2
        low, high = (middle, high) if count(middle) < target else (low, middle)
    return min((low, high), key=lambda width: abs(count(width) - target))


def build_models(
    obs_dim: int, act_dim: int, settings: GeneralisationSettings, ensemble_width: int, seed: int
) -> dict[str, GRUDynamics | MLPEnsembleDynamics]:
    torch.manual_seed(seed)
    return {
        "gru": build_gru(obs_dim, act_dim, settings),
        "mlp-ensemble": build_ensemble(obs_dim, act_dim, settings, ensemble_width),
    }


def train_dynamics(
    model: GRUDynamics | MLPEnsembleDynamics,
    optimizer: torch.optim.Optimizer,
    buffer: ReplayBuffer,
    normalizer: RunningNormalizer,
    settings: GeneralisationSettings,
    rng: np.random.Generator,
) -> float:
    """``updates_per_stage`` steps of eq. (10) on the model's own batch shape (H-step
    sequences for the GRU, one-step transitions per member for the ensemble), as the agent
    trains it. Returns the last loss."""
    length, count = model.training_batch(settings.horizon, settings.batch_size)
    loss = torch.zeros(())
    for _ in range(settings.updates_per_stage):
        batch = buffer.sample_sequences(count, length, rng)
        states = normalizer.normalize(torch.from_numpy(batch.states))
        loss = model.training_loss(states, torch.from_numpy(batch.actions))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        model.clip_gradient(settings.grad_clip, length)  # as the agent clips (the authors' code's rule)
        optimizer.step()
    return float(loss.detach())


def _chunks(sequences: SequenceBatch, normalizer: RunningNormalizer) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(sequences.states), EVAL_CHUNK):
        states = normalizer.normalize(torch.from_numpy(sequences.states[start : start + EVAL_CHUNK]))
        yield states, torch.from_numpy(sequences.actions[start : start + EVAL_CHUNK])


@torch.no_grad()
def h_step_mse(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    sequences: SequenceBatch,
    normalizer: RunningNormalizer,
) -> float:
    """Open-loop H-step squared error in normalised space, averaged over sequences, steps and
    state dimensions (as ``SVGAgent.model_error``). ``predict(x_1, u_{1:H}) -> x_{2:H+1}``:
    (B, D), (B, H, A) -> (B, H, D), e.g. a model's ``unroll``."""
    total, count = 0.0, 0
    for states, actions in _chunks(sequences, normalizer):
        error = (predict(states[:, 0], actions) - states[:, 1:]) ** 2
        total, count = total + float(error.sum()), count + error.numel()
    return total / count


def no_change(first_state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """The baseline x_{t+k} = x_t: (B, D), (B, H, A) -> (B, H, D)."""
    return first_state[:, None].expand(-1, actions.shape[1], -1)


# ---------------------------------------------------------------------------- study


@dataclass
class StudyResult:
    rows: list[dict[str, Any]]
    metadata: dict[str, Any]
    csv_path: Path
    json_path: Path


def run_study(
    run_path: str | Path, settings: GeneralisationSettings, out_dir: str | Path | None = None, progress: bool = True
) -> StudyResult:
    """Run the study on the run folder ``run_path`` and write its CSV and JSON (atomically)."""
    settings.check()
    torch.set_num_threads(settings.threads)
    source = load_source(run_path)
    episodes = complete_episodes(source.transitions["episode_end"], source.wrapped)
    if len(episodes) < 3:
        raise ConfigError(
            f"{source.path}'s replay buffer holds {len(episodes)} complete episodes; the study "
            "needs at least 3 (test, train, holdout): use a longer run"
        )
    split_rng, train_rng, eval_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(settings.seed).spawn(3))
    test = choose_test_episodes(len(episodes), settings.test_fraction, split_rng)
    remaining = sorted(set(range(len(episodes))) - set(test))
    if len(remaining) < settings.stages:
        raise ConfigError(
            f"{len(remaining)} episodes outside the test split cannot fill {settings.stages} "
            f"stages (each adds at least one): use --stages {len(remaining)} or fewer, or a longer run"
        )
    plan = plan_stages(remaining, settings.stages, settings.holdout_every)
    check_enough_data(episodes, test, plan, settings.horizon)

    obs_dim, act_dim = source.obs_dim, source.act_dim
    with torch.device("meta"):  # counted without allocating
        gru_parameters = parameter_count(build_gru(obs_dim, act_dim, settings))
    width = settings.ensemble_hidden_dim or matched_ensemble_width(obs_dim, act_dim, settings, gru_parameters)
    models = build_models(obs_dim, act_dim, settings, width, settings.seed)
    counts = {name: parameter_count(model) for name, model in models.items()}
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=settings.learning_rate) for name, m in models.items()}
    test_buffer = episode_buffer(source, episodes, test)
    test_sequences = evaluation_sequences(test_buffer, settings.horizon, settings.max_eval_sequences, eval_rng)

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    bar = tqdm(plan, desc="model generalisation", unit="stage", disable=None if progress else True, leave=False)
    for stage in bar:
        if settings.from_scratch and stage.number > 1:
            models = build_models(obs_dim, act_dim, settings, width, settings.seed)
            optimizers = {n: torch.optim.Adam(m.parameters(), lr=settings.learning_rate) for n, m in models.items()}
        train_buffer = episode_buffer(source, episodes, stage.train)
        normalizer = fit_normalizer(train_buffer, source.config)
        losses = {
            name: train_dynamics(model, optimizers[name], train_buffer, normalizer, settings, train_rng)
            for name, model in models.items()
        }
        evaluated = {
            "train": evaluation_sequences(train_buffer, settings.horizon, settings.max_eval_sequences, eval_rng),
            "holdout": evaluation_sequences(
                episode_buffer(source, episodes, stage.holdout), settings.horizon, settings.max_eval_sequences, eval_rng
            ),
            "test": test_sequences,
        }
        predictors = {**{name: model.unroll for name, model in models.items()}, "no-change": no_change}
        facts = {
            "stage": stage.number,
            "train_episodes": len(stage.train),
            "holdout_episodes": len(stage.holdout),
            "test_episodes": len(test),
            "train_transitions": len(train_buffer),
        }
        for name, predict in predictors.items():
            for split, sequences in evaluated.items():
                rows.append(
                    {
                        **facts,
                        "model": name,
                        "split": split,
                        "mse": h_step_mse(predict, sequences, normalizer),
                        "sequences": len(sequences.states),
                    }
                )
        bar.set_postfix({f"{name} loss": f"{loss:.3g}" for name, loss in losses.items()})
    bar.close()

    metadata = {
        "study": "model generalisation (paper Fig. 3, section 5.1.1)",
        "source_run": source.describe(),
        "horizon": settings.horizon,
        "parameter_counts": counts,
        "ensemble_hidden_dim": width,
        "episodes": {
            "complete": len(episodes),
            "test": len(test),
            "train_and_holdout": len(episodes) - len(test),
            "test_episode_numbers": test,
            "dropped_first_fragment": source.wrapped,
        },
        "settings": asdict(settings),
        "wall_time": time.perf_counter() - started,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = Path(out_dir) if out_dir is not None else source.path / FOLDER
    return StudyResult(rows, metadata, *write_outputs(out, rows, metadata))


def write_outputs(out: Path, rows: list[dict[str, Any]], metadata: dict[str, Any]) -> tuple[Path, Path]:
    """The CSV and JSON, each replaced atomically (a rerun overwrites both)."""
    out.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows)
    csv_path, json_path = out / CSV_NAME, out / JSON_NAME
    atomic_write_bytes(csv_path, text.getvalue().encode())
    atomic_write_bytes(json_path, (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode())
    return csv_path, json_path


def summary_text(result: StudyResult) -> str:
    """What the command prints: the source, the parameter counts and the last stage's errors."""
    meta = result.metadata
    source, counts = meta["source_run"], meta["parameter_counts"]
    last = max(row["stage"] for row in result.rows)
    final = {(row["model"], row["split"]): row["mse"] for row in result.rows if row["stage"] == last}
    lines = [
        f"source run: {source['path']} ({source['agent']} on {source['suite']}/{source['task']}, seed "
        f"{source['seed']}, {source['transitions']} transitions, "
        f"{meta['episodes']['complete']} complete episodes)",
        f"parameters: gru {counts['gru']:,}; mlp-ensemble {counts['mlp-ensemble']:,} "
        f"({meta['settings']['members']} x width {meta['ensemble_hidden_dim']}); "
        f"ratio {counts['mlp-ensemble'] / counts['gru']:.3f}",
        f"settings: {meta['settings']}",
        f"{meta['horizon']}-step MSE (normalised states) at stage {last}:",
        f"  {'model':<14}" + "".join(f"{split:>12}" for split in SPLITS),
    ]
    lines += [f"  {model:<14}" + "".join(f"{final[(model, split)]:>12.4g}" for split in SPLITS) for model in MODELS]
    lines.append(f"wrote {result.csv_path} and {result.json_path}")
    return "\n".join(lines)
