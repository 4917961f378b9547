"""Whether the worker holding a trial is still alive: who it is, and a heartbeat it beats.

A worker is named ``host:pid:start-time``; on its own machine a dead process (or a pid now
naming another process) is seen at once, elsewhere only through a heartbeat that stops moving.
The trial's ``heartbeat`` user attribute is the wall-clock time (seconds since the epoch) of
its worker's last beat, set when the worker takes the trial and every ``period`` seconds
after (versions before counted the beats: such a heartbeat has no age). Workers judge
stillness by their own clock (``Worker.fail_dead_workers``); a reader that looks once judges
by the beat's age (``gone_worker``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import optuna

HEARTBEAT_ATTR = "heartbeat"
WORKER_ATTR = "worker"
STALE_AFTER_SECONDS = 120.0  # a heartbeat that has not moved for this long means its worker is gone


def process_identity(pid: int | None = None) -> str:
    """host:pid:start-time of a process (start time from /proc, so a reused pid differs)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


def _start_ticks(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def is_gone_here(identity: str) -> bool:
    """Whether ``identity`` names a process of this machine that no longer runs."""
    host, _, rest = identity.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if start == "?":  # no /proc where it ran: only whether the pid exists
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # it exists, under another user
            return False
        return False
    return _start_ticks(int(pid_text)) != start  # gone, or its pid now names another process


def gone_worker(
    attrs: Mapping[str, Any], now: float | None = None, stale_after: float = STALE_AFTER_SECONDS
) -> str | None:
    """Why the worker of a RUNNING trial (its user attributes ``attrs``) is gone, as one look
    can tell: a process of this machine that no longer runs, or a heartbeat older than
    ``stale_after`` seconds (by this machine's clock, ``now``); None when it may be alive."""
    worker = str(attrs.get(WORKER_ATTR, ""))
    if worker and is_gone_here(worker):
        return f"its worker {worker} is gone"
    beat = attrs.get(HEARTBEAT_ATTR)
    if isinstance(beat, float):  # a time; a count (int) from an older version has no age
        age = (time.time() if now is None else now) - beat
        if age > stale_after:
            return f"no heartbeat from its worker {worker or '(unknown)'} for {age:.0f} s"
    return None


class Heartbeat:
    """Beats the trial's ``heartbeat`` user attribute (the time of the beat) from a thread
    while the trial runs."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, period: float) -> None:
        self.storage, self.trial_id, self.period = storage, trial_id, period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.period):
            try:
                self.storage.set_trial_user_attr(self.trial_id, HEARTBEAT_ATTR, time.time())
            except Exception:  # noqa: BLE001 - the trial was taken over, or the storage is away for a while
                pass

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
