"""Settings of one training process: its share of the CPU cores, its torch threads, and
how the C allocator treats the large tensors an update frees."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit systems


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
    return cores[start:start + share]


def pin_to_cores(cores: list[int]) -> None:
    """Run this process (and the threads it starts) on ``cores`` only."""
    if hasattr(os, "sched_setaffinity") and cores:
        os.sched_setaffinity(0, cores)


def set_torch_threads(threads: int | None) -> int:
    """torch's intra-op threads: ``threads``, or (None) one per core this process may run on."""
    import torch  # noqa: PLC0415 - the launcher imports this module without torch

    count = max(1, threads if threads else len(available_cores()))
    torch.set_num_threads(count)
    return count


def prepare_training_process(threads: int | None) -> int:
    """What every process that trains or times an agent sets first: its torch threads
    (``set_torch_threads``) and the allocator's reuse of freed memory. Returns the threads."""
    keep_freed_memory()
    return set_torch_threads(threads)


def keep_freed_memory() -> bool:
    """Let glibc keep the memory of freed tensors up to 32 MiB for reuse, instead of
    returning each to the system and page-faulting it in again at the next update (the
    default for blocks over 128 KiB: activations of a 512-wide layer on a batch of 512
    are 1 MiB). Measured in docs/performance.md. False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
                    and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):
        return False
