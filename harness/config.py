"""Typed run configuration: dataclass schema + Hydra composition + per-task resolution.

Precedence, lowest first: schema defaults (paper's Table 3) < agent variant (baselines/)
< preset (conf/preset/) < per-task values (suites, for fields left null) < CLI flags
< ``key=value`` overrides.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, cast

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from agents.config import COMPILE_MODES, MVE_HORIZON_COUNTINGS, AgentConfig
from baselines import AGENTS
from baselines.registry import get_agent, setting_problem
from harness.contract import OPERATIONAL_KEYS, is_operational  # noqa: F401  (re-exported)
from harness.names import unknown_name
from harness.suites import TaskSpec, get_task
from harness.video import check_video_size

CONF_DIR = Path(__file__).resolve().parent / "conf"


@dataclass
class TrainerConfig:
    total_steps: Optional[int] = None  # None: the task's budget
    eval_every: Optional[int] = None  # None: the task's evaluation interval
    eval_episodes: int = 10
    seed_steps: int = 1000  # uniformly random actions before learning starts
    progress: bool = True
    # None: OMP_NUM_THREADS if set, else SLURM_CPUS_PER_TASK, else one thread for small
    # networks and one per core of the run's share for large ones (harness.process.choose_threads)
    torch_threads: Optional[int] = None
    # record the first episode of every evaluation, off-screen, as videos/step_<n>.mp4
    # (harness.video); recording draws no random number, so the run's numbers are the same
    video: bool = False
    video_width: int = 320
    video_height: int = 240


@dataclass
class EnvConfig:
    terminal_alive_bonus: bool = False  # pay the alive bonus on terminal steps, as gym v2 did


@dataclass
class LauncherConfig:
    """Where runs execute. The submitit fields are what each SLURM job asks for; nothing more
    (no GPU unless ``gpus_per_node`` says so)."""

    name: str = "local"
    jobs: int = 1  # local: parallel processes; submitit: most array tasks running at once (0: no limit)
    # seeds of one (task, agent, config) trained by one process as one computation (harness.batched_trainer)
    batch_seeds: int = 1
    cluster: Optional[str] = None  # submitit: None = SLURM (sbatch must be on PATH), "local" or "debug"
    partition: Optional[str] = None  # None: the cluster's default partition
    account: Optional[str] = None
    qos: Optional[str] = None
    timeout_min: int = 4320  # wall-clock limit per job; a timed-out job checkpoints and requeues
    max_requeues: int = 20  # time-outs after which a job is not requeued again (submitit's max_num_timeout)
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    mem_gb: int = 4


@dataclass
class RunConfig:
    suite: str = "classic"
    task: str = "inverted-pendulum"
    seed: int = 0
    preset: str = "paper"
    # which per-task values fill null fields: "paper" (Table 4) or "authors-code"
    task_hyperparameters: str = "paper"
    out: str = "runs"
    wandb: str = "offline"  # offline | online | disabled
    agent: AgentConfig = field(default_factory=AgentConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)


class ConfigError(ValueError):
    """A bad preset, override or value; the message is one line for the user."""


class RunFailure(RuntimeError):
    """Something failed while running (not the user's input): one line for the user, exit 1."""


def _register_schema() -> None:
    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    for variant in AGENTS.values():
        store.store(group="agent", name=variant.name, node={"name": variant.name, **variant.settings})


_register_schema()


def presets() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "preset").glob("*.yaml"))


def launchers() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "launcher").glob("*.yaml"))


def _override_problem(override: str) -> str | None:
    """A one-line reason why ``key=value`` names no field of the schema, else None."""
    key = override.split("=", 1)[0].lstrip("+~")
    if "=" not in override:
        return f"override {override!r} is not of the form key=value"
    node: Any = RunConfig()
    path: list[str] = []
    for part in key.split("."):
        if not dataclasses.is_dataclass(node):
            return f"override {override!r}: {'.'.join(path)} has no sub-keys"
        names = [f.name for f in dataclasses.fields(node)]
        if part not in names:
            where = ".".join(path) or "the top level"
            return f"override {override!r}: no key {part!r} in {where}; valid keys: {', '.join(names)}"
        field_type = next(f.type for f in dataclasses.fields(node) if f.name == part)
        node = getattr(node, part)
        path.append(part)
    if dataclasses.is_dataclass(node):
        return f"override {override!r}: {key} is a group of settings; set one of its keys ({key}.<name>=...)"
    return _type_problem(override, key, override.split("=", 1)[1], str(field_type))


_KINDS = {"int": ("an integer", int), "float": ("a number", float)}
_BOOLEANS = ("true", "false", "yes", "no", "on", "off")


def _type_problem(override: str, key: str, text: str, annotation: str) -> str | None:
    """Whether ``text`` fits the field's annotation (``int``, ``Optional[float]``, ...); the
    message names only what the user typed and what the key takes."""
    optional = annotation.startswith("Optional[")
    kind = annotation.removeprefix("Optional[").removesuffix("]")
    if optional and text.strip().lower() in ("null", "none", "~"):
        return None
    if kind in _KINDS:
        name, convert = _KINDS[kind]
        try:
            convert(text)
        except ValueError:
            return f"override {override!r}: {text!r} is not {name} ({key} takes {name}{' or null' if optional else ''})"
    if kind == "bool" and text.strip().lower() not in _BOOLEANS:
        return f"override {override!r}: {text!r} is not true or false"
    return None


def compose_run(agent: str, preset: str, launcher: str, settings: list[str], overrides: list[str]) -> RunConfig:
    """Compose one run's config. ``settings`` come from CLI flags, ``overrides`` from the user."""
    if preset not in presets():
        raise ConfigError(unknown_name("preset", preset, presets()))
    if launcher not in launchers():
        raise ConfigError(unknown_name("launcher", launcher, launchers()))
    for override in overrides:
        problem = _override_problem(override)
        if problem:
            raise ConfigError(problem)
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(
                "config",
                overrides=[f"agent={agent}", f"preset={preset}", f"launcher={launcher}", *settings, *overrides],
            )
        return cast(RunConfig, OmegaConf.to_object(cfg))  # the structured schema's dataclass
    except Exception as error:  # hydra and omegaconf raise many types; the user needs one line
        raise ConfigError(f"bad override in {' '.join(overrides) or '(none)'}: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    """The first line of the innermost cause that says something (hydra wraps omegaconf)."""
    messages = []
    cause: BaseException | None = error
    while cause is not None:
        if str(cause).strip():
            messages.append(str(cause).strip().splitlines()[0])
        cause = cause.__cause__
    return messages[-1] if messages else "invalid configuration"


def agent_override_warnings(agent: str, overrides: list[str]) -> list[str]:
    """Check ``agent.*`` overrides against what the agent is: one that contradicts a setting
    the agent fixes (``agent.horizon=3`` for ``sac``) is refused; one that configures a part
    the agent lacks (a model size for ``sac``) comes back as a warning line."""
    variant, warnings = get_agent(agent), []
    for override in overrides:
        key, equals, text = override.lstrip("+~").partition("=")
        if not equals or not key.startswith("agent.") or key.count(".") != 1:
            continue  # a malformed override is refused by compose_run, naming it
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        problem = setting_problem(variant, key.split(".", 1)[1], value)
        if problem and problem[0] == "refuse":
            raise ConfigError(
                f"override {override!r}: {problem[1]}; choose the agent that has it "
                f"(harness list shows each agent's settings)"
            )
        if problem:
            warnings.append(f"override {override!r}: {problem[1]}")
    return warnings


def random_only_problem(trainer: TrainerConfig) -> str | None:
    """Why a run of this budget learns nothing: every one of its steps falls in the uniformly
    random seed steps (``total_steps <= seed_steps``); None when it learns. ``harness run``
    warns with it; a search refuses it (every trial would score the random policy)."""
    if trainer.total_steps is None or trainer.total_steps > trainer.seed_steps:
        return None
    return (
        f"{trainer.total_steps} steps <= trainer.seed_steps={trainer.seed_steps}: every step acts at random "
        f"and nothing is learned"
    )


def resolve_task_values(config: RunConfig, spec: TaskSpec) -> RunConfig:
    """Fill every field left null with the task's value from the chosen source."""
    source = spec.hyperparameters(config.task_hyperparameters)
    agent, trainer = config.agent, config.trainer
    if agent.horizon is None:
        agent.horizon = source.horizon
    schedule = agent.target_entropy
    if schedule.init is None and schedule.final is None and schedule.decay is None:
        entropy = source.entropy
        schedule.init, schedule.final = float(entropy.init), float(entropy.final)
        schedule.decay = None if entropy.decay is None else float(entropy.decay)
    elif schedule.init is None or schedule.final is None:
        raise ConfigError("agent.target_entropy: set init and final together (decay null = constant)")
    if trainer.total_steps is None:
        trainer.total_steps = spec.budget
    if trainer.eval_every is None:
        trainer.eval_every = spec.eval_every
    if agent.dynamics_decoder not in ("mlp", "linear"):
        raise ConfigError(f"unknown agent.dynamics_decoder {agent.dynamics_decoder!r}; valid: mlp, linear")
    if agent.dynamics not in ("gru", "mlp-ensemble"):
        raise ConfigError(f"unknown agent.dynamics {agent.dynamics!r}; valid: gru, mlp-ensemble")
    if agent.compile not in COMPILE_MODES:
        raise ConfigError(unknown_name("agent.compile mode", agent.compile, COMPILE_MODES))
    if agent.mve_horizon_counting not in MVE_HORIZON_COUNTINGS:
        raise ConfigError(
            unknown_name("agent.mve_horizon_counting value", agent.mve_horizon_counting, MVE_HORIZON_COUNTINGS)
        )
    if agent.horizon < 0:
        raise ConfigError(f"agent.horizon must be >= 0, got {agent.horizon}")
    if trainer.total_steps <= 0 or trainer.eval_every <= 0:
        raise ConfigError("trainer.total_steps and trainer.eval_every must be positive")
    if config.launcher.batch_seeds < 1:
        raise ConfigError(
            f"launcher.batch_seeds must be at least 1 (1: each seed alone), got {config.launcher.batch_seeds}"
        )
    if trainer.torch_threads is not None and trainer.torch_threads < 1:
        raise ConfigError(
            f"trainer.torch_threads must be at least 1, or null to let the harness choose; got {trainer.torch_threads}"
        )
    size_problem = check_video_size(trainer.video_width, trainer.video_height)
    if size_problem:
        raise ConfigError(f"trainer.video_width, trainer.video_height: {size_problem}")
    agent.replay_capacity = min(agent.replay_capacity, trainer.total_steps)
    return config


def build_run_config(
    suite: str,
    task: str,
    agent: str,
    seed: int,
    preset: str = "paper",
    launcher: str = "local",
    steps: int | None = None,
    out: str = "runs",
    wandb: str = "offline",
    overrides: list[str] | None = None,
) -> RunConfig:
    """The fully resolved config of one (suite, task, agent, seed) run."""
    spec = get_task(suite, task)
    settings = [f"suite={suite}", f"task={task}", f"seed={seed}", f"out={out}", f"wandb={wandb}"]
    if steps is not None:
        settings.append(f"trainer.total_steps={steps}")
    config = compose_run(agent, preset, launcher, settings, list(overrides or []))
    if config.wandb not in ("offline", "online", "disabled"):
        raise ConfigError(f"unknown wandb mode {config.wandb!r}; valid modes: offline, online, disabled")
    return resolve_task_values(config, spec)


def override_label(overrides: list[str]) -> str:
    """A short, filesystem-safe label of the scientific overrides, e.g. ``horizon=3``."""
    pairs = []
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if is_operational(key):
            continue
        pairs.append((key, value))
    last_parts = [k.split(".")[-1] for k, _ in pairs]
    parts = []
    for (key, value), short in zip(pairs, last_parts):
        name = short if last_parts.count(short) == 1 else key
        parts.append(f"{name}={value}")
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", ",".join(parts))


def to_dict(config: RunConfig) -> dict[str, Any]:
    return cast(dict[str, Any], OmegaConf.to_container(OmegaConf.structured(config), resolve=True))


def to_yaml(config: RunConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def from_yaml(text: str) -> RunConfig:
    merged = OmegaConf.merge(OmegaConf.structured(RunConfig), OmegaConf.create(text))
    return cast(RunConfig, OmegaConf.to_object(merged))


def scientific_differences(stored: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Keys (dotted) whose values differ, ignoring operational keys."""
    differences = []
    for key in sorted(set(stored) | set(current)):
        path = f"{prefix}{key}"
        if is_operational(path):
            continue
        a, b = stored.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            differences += scientific_differences(a, b, path + ".")
        elif a != b:
            differences.append(f"{path}: {a!r} -> {b!r}")
    return differences


def flatten_config_file(path: str | Path) -> list[str]:
    """A YAML config file (e.g. from ``harness search best``) as ``key=value`` overrides, in the
    file's order; ``harness run --config FILE`` puts them before the command line's own."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"cannot read config file {path}: {first}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} is not a mapping of keys to values")
    overrides = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
                overrides.append(f"{prefix}{key}={text}")

    walk(data, "")
    return overrides
