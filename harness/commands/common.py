"""What the commands share: the console, the failure that exits 1, the wandb modes, the
SLURM flags and their launcher settings, and the checks made before any run starts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
from rich.console import Console

from harness.config import ConfigError, launchers
from harness.names import unknown_name

WANDB_MODES = ["offline", "online", "disabled"]


def console() -> Console:
    """A console as wide as the terminal, or wide enough that piped tables keep whole paths."""
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console()
    return Console(width=240)


class HarnessFailure(Exception):
    """A run failed: exit 1."""


def slurm_options(command):
    """What each SLURM job asks for (``--launcher submitit``); each flag sets a launcher.* key."""
    options = [
        click.option("--wait", is_flag=True, help="submitit: block until every job ends (exit 1 naming failed runs)."),
        click.option("--gpus", type=click.IntRange(min=0), default=None, help="submitit: GPUs per job (default 0)."),
        click.option("--partition", default=None, help="submitit: SLURM partition (default: the cluster's)."),
        click.option(
            "--time",
            "time_min",
            type=click.IntRange(min=1),
            default=None,
            help="submitit: minutes per job before it checkpoints and requeues (default 4320).",
        ),
        click.option("--cpus", type=click.IntRange(min=1), default=None, help="submitit: CPUs per job (default 1)."),
        click.option(
            "--mem",
            "mem_gb",
            type=click.IntRange(min=1),
            default=None,
            help="submitit: memory per job in GB (default 4).",
        ),
        click.option("--account", default=None, help="submitit: SLURM account."),
        click.option("--qos", default=None, help="submitit: SLURM quality of service."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


SLURM_FLAGS = {
    "gpus": "gpus_per_node",
    "partition": "partition",
    "time_min": "timeout_min",
    "cpus": "cpus_per_task",
    "mem_gb": "mem_gb",
    "account": "account",
    "qos": "qos",
}


def launcher_settings(launcher: str, jobs: int | None, slurm_flags: dict, wait: bool) -> list[str]:
    """The launcher.* settings of the command's flags; SLURM flags and ``--wait`` need
    ``--launcher submitit``."""
    if launcher not in launchers():
        raise ConfigError(unknown_name("launcher", launcher, launchers()))
    if wait and launcher != "submitit":
        raise ConfigError("--wait only applies to --launcher submitit (a local command always waits)")
    given = {name: value for name, value in slurm_flags.items() if value not in (None, False)}
    if launcher != "submitit" and given:
        flags = ", ".join("--" + name.replace("_min", "").replace("_gb", "") for name in given)
        raise ConfigError(f"{flags} only apply to --launcher submitit")
    settings = [] if jobs is None else [f"launcher.jobs={jobs}"]
    return settings + [f"launcher.{SLURM_FLAGS[name]}={value}" for name, value in given.items() if name in SLURM_FLAGS]


def check_out_folder(out: str) -> None:
    """Refuse an output folder that cannot be created or written, before any run starts."""
    import tempfile

    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise ConfigError(f"cannot write to --out {out}: {error.strerror or error}") from error


def check_device(device: str) -> None:
    """Refuse a device svgbench does not run on, or one this machine lacks."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r} is not a device svgbench runs on (cpu, cuda, cuda:N)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: this machine has no CUDA device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
