"""The run-directory contract's shared names (ARCHITECTURE.md, "Run directory contract").

Standard library only, so ``reports/`` can use it without Hydra or torch. A later issue
will move more of the contract here (layout, file names, columns, status values).
"""

from __future__ import annotations

# Keys that change where or how a run executes, not what it computes: they neither label a
# run folder nor make a stored config differ, and runs differing only in them are seeds of
# one experiment in a report.
OPERATIONAL_KEYS = ("out", "wandb", "launcher", "trainer.progress", "trainer.torch_threads", "agent.device")


def is_operational(key: str) -> bool:
    """Whether the dotted config ``key`` is, or lies under, an operational key."""
    return any(key == k or key.startswith(k + ".") for k in OPERATIONAL_KEYS)
