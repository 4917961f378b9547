"""Settings of one training process: its share of the CPU cores, its torch threads, and
how the C allocator treats the large tensors an update frees."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the launcher imports this module without torch, which agents imports
    from agents.config import AgentConfig

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit systems

# An update whose largest matmul does more multiply-accumulates than this takes one torch
# thread per core of its share; a smaller one takes one thread. 2**25 lies halfway, on a log
# scale, between the quick preset's 2**22 and the paper and authors-code presets' 2**28.
PARALLEL_MATMUL_MACS = 2**25


def available_cores() -> list[int]:
    """The CPU cores this process may run on (its affinity: all of them, or what a SLURM
    job or a parent process gave it)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def core_share(slot: int, runs_at_once: int, cores: list[int]) -> list[int]:
    """The cores of the ``slot``-th of ``runs_at_once`` runs sharing ``cores``: equal,
    disjoint blocks (at least one core each; runs share cores only when there are more
    runs than cores)."""
    share = max(1, len(cores) // max(1, runs_at_once))
    blocks = max(1, len(cores) // share)
    start = (slot % blocks) * share
    return cores[start : start + share]


def pin_to_cores(cores: list[int]) -> None:
    """Run this process (and the threads it starts) on ``cores`` only."""
    if hasattr(os, "sched_setaffinity") and cores:
        os.sched_setaffinity(0, cores)


@dataclass(frozen=True)
class ThreadChoice:
    """A training process's torch threads and why (summary.json's ``torch_threads`` and
    ``threads_reason``); ``by_user`` when the user set the count, not the harness."""

    count: int
    reason: str
    by_user: bool = False


def largest_update_matmul(agent: AgentConfig, seeds: int = 1) -> int:
    """Multiply-accumulates of the largest matmul one update runs: a hidden layer of the
    actor or critic on a step batch (step_batch_size x hidden_dim^2), or of the world model
    on a sequence batch (seq_batch_size x max(model_hidden_dim, gru_hidden_dim)^2; a
    model-free agent builds no model); ``seeds`` times that for seeds trained as one batch
    (one batched matmul holds every seed's product).

    Against ``PARALLEL_MATMUL_MACS`` it decides whether a second thread pays. The rule
    follows the measurements in docs/performance.md: the quick preset (hidden 128, model and
    GRU 64, batches 256/128) timed on one torch thread against two, and the paper preset
    (512-wide layers, batches 512/1024) on one against two."""
    largest = agent.step_batch_size * agent.hidden_dim**2
    if agent.actor_expansion or agent.critic_expansion:
        model_width = max(agent.model_hidden_dim, agent.gru_hidden_dim)
        largest = max(largest, agent.seq_batch_size * model_width**2)
    return seeds * largest


def _positive_integer(environ: Mapping[str, str], name: str) -> tuple[int | None, str]:
    """The environment variable ``name`` as a positive integer (None when unset or not one),
    and a note when it is set to something else ("" otherwise)."""
    text = environ.get(name, "").strip()
    if not text:
        return None, ""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value > 0:
        return value, ""
    return None, f"{name}={text!r} ignored: not a positive integer"


def choose_threads(
    configured: int | None,
    agent: AgentConfig | None,
    cores: list[int],
    environ: Mapping[str, str] = os.environ,
    seeds: int = 1,
) -> ThreadChoice:
    """The torch threads of a process that trains ``agent`` on ``cores`` (its share, after
    pinning), the first that applies of:

    1. ``configured`` (``trainer.torch_threads``);
    2. OMP_NUM_THREADS;
    3. SLURM_CPUS_PER_TASK, at most one per core of the share;
    4. the work's size: one thread when the largest matmul of an update is small
       (``largest_update_matmul`` <= ``PARALLEL_MATMUL_MACS``, for ``seeds`` seeds in one
       batch), else one per core of the share.

    The first two are the user's own and are taken as they are. An environment variable
    that is not a positive integer is passed over, and the reason says so."""
    if configured is not None:
        return ThreadChoice(max(1, configured), f"trainer.torch_threads={configured}", by_user=True)
    share = max(1, len(cores))
    omp, omp_note = _positive_integer(environ, "OMP_NUM_THREADS")
    slurm, slurm_note = _positive_integer(environ, "SLURM_CPUS_PER_TASK")
    if omp is not None:
        return ThreadChoice(omp, f"OMP_NUM_THREADS={omp}", by_user=True)
    if slurm is not None:
        count, reason = min(slurm, share), f"SLURM_CPUS_PER_TASK={slurm}"
        if slurm > share:
            reason += f", capped at this run's {share}-core share"
    elif agent is None:
        raise ValueError("choose_threads: without a thread count it needs the agent config to choose one")
    elif largest_update_matmul(agent, seeds) <= PARALLEL_MATMUL_MACS:
        count, reason = 1, "small networks: a second thread does not pay at these sizes"
    else:
        count, reason = share, f"large matmuls: one thread per core of this run's {share}-core share"
    passed_over = [note for note in (omp_note, slurm_note) if note]
    return ThreadChoice(count, "; ".join([reason, *passed_over]))


def set_torch_threads(threads: int) -> int:
    """Set torch's intra-op threads to ``threads`` (at least one); returns the count."""
    import torch  # noqa: PLC0415 - the launcher imports this module without torch

    count = max(1, threads)
    torch.set_num_threads(count)
    return count


def prepare_training_process(threads: int | None, agent: AgentConfig | None = None, seeds: int = 1) -> ThreadChoice:
    """What every process that trains or times an agent sets first: its torch threads and
    the allocator's reuse of freed memory (``keep_freed_memory``). ``threads`` is a count
    the caller fixed (``trainer.torch_threads``, ``harness bench --threads``) or None: then
    ``choose_threads`` decides for ``agent`` on the cores this process may run on."""
    if threads is None and agent is None:
        raise ValueError("prepare_training_process: without a thread count it needs the agent config to choose one")
    keep_freed_memory()
    choice = choose_threads(threads, agent, available_cores(), seeds=seeds)
    set_torch_threads(choice.count)
    return choice


def keep_freed_memory() -> bool:
    """Let glibc keep the memory of freed tensors up to 32 MiB for reuse, instead of
    returning each to the system and page-faulting it in again at the next update (the
    default for blocks over 128 KiB: activations of a 512-wide layer on a batch of 512
    are 1 MiB). Measured in docs/performance.md. False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False
