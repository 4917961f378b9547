"""What a user sees of a run's life in the terminal: stopping on Ctrl-C or SIGTERM at a step
boundary, the progress bar, and what one step costs when the paper preset runs on a CPU."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from tqdm import tqdm

# SIGUSR2: what SLURM sends (through submitit's --signal=USR2@90) before a time limit or a
# preemption; after the checkpoint, submitit's own handler requeues the job (``pass_on``).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class RunInterrupted(KeyboardInterrupt):
    """A run stopped on a signal after checkpointing: rerunning its command resumes it."""


class StopSignals:
    """Within ``with``, the first SIGINT, SIGTERM or SIGUSR2 only asks the loop to stop
    (``requested`` names the signal), so the run checkpoints at the next step boundary; a
    second one stops at once (KeyboardInterrupt), keeping the last checkpoint. Outside the
    main thread signals cannot be caught, and the default behaviour stays."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._number: int | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: object) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested, self._number = signal.Signals(number).name, number

    def pass_on(self) -> None:
        """Once the run has checkpointed: hand a SIGUSR2 to the handler that was there before
        (submitit's, which requeues the job and exits); other signals stop here."""
        previous = self._previous.get(self._number) if self._number == signal.SIGUSR2 else None
        if callable(previous) and self._number is not None:
            previous(self._number, None)

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


class ProgressBar:
    """tqdm over env steps whose rate is that of the last few seconds of learning steps: the
    random-action seed steps (fast, no updates) say so instead of inflating the rate."""

    WINDOW_SECONDS = 2.0

    def __init__(self, total: int, initial: int, seed_steps: int, enabled: bool, desc: str) -> None:
        self.total, self.seed_steps, self.shown = total, seed_steps, initial
        self.bar = tqdm(
            total=total,
            initial=initial,
            disable=None if enabled else True,
            desc=desc,
            unit="step",
            dynamic_ncols=True,
            leave=False,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
        )
        self.window_clock, self.window_step = time.perf_counter(), initial
        self.rate: float | None = None
        self.eval_return: float | None = None
        if initial < seed_steps:
            self.bar.set_postfix_str("random actions (seed steps)", refresh=False)

    def update(self, step: int) -> None:
        self.bar.update(step - self.shown)
        self.shown = step
        now = time.perf_counter()
        if step <= self.seed_steps:  # the window of learning steps starts when learning does
            self.window_clock, self.window_step = now, step
            return
        if now - self.window_clock >= self.WINDOW_SECONDS:
            self.rate = (step - self.window_step) / (now - self.window_clock)
            self.window_clock, self.window_step = now, step
            self._show()

    def evaluated(self, eval_return: float) -> None:
        self.eval_return = eval_return
        self._show()
        # evaluation time is not learning time: the next window starts now
        self.window_clock, self.window_step = time.perf_counter(), self.shown

    def _show(self) -> None:
        parts = []
        if self.rate is not None:
            left = (self.total - self.shown) / max(self.rate, 1e-9)
            parts.append(f"{self.rate:.1f} steps/s, {time_left(left)} left")
        elif self.shown < self.seed_steps:
            parts.append("random actions (seed steps)")
        if self.eval_return is not None:
            parts.append(f"eval return {self.eval_return:.1f}")
        self.bar.set_postfix_str(", ".join(parts))

    def close(self) -> None:
        self.bar.close()


def time_left(seconds: float) -> str:
    """A countdown: tqdm's ``[H:]MM:SS`` under a day, whole days and hours beyond
    (``410 d 7 h``, where ``H:MM:SS`` would read ``9847:35:30``)."""
    if seconds < 86400:
        return tqdm.format_interval(seconds)
    days, rest = divmod(int(seconds), 86400)
    return f"{days} d {rest // 3600} h"


class StepCost:
    """Times the first learning steps and says what a step costs and how long the run would
    take: for the paper preset on a CPU, where a run takes weeks and a GPU is expected. It
    speaks after the first learning step (provisional: that step also warms up), then once
    more on the median of ``MEASURED_STEPS``, since at the paper's sizes on a CPU five steps
    take minutes. Where the first steps compile the update (``provisional=False``), their
    time says nothing of a step's: only the median speaks."""

    MEASURED_STEPS = 5

    def __init__(self, total_steps: int, enabled: bool, provisional: bool = True) -> None:
        self.total_steps, self.enabled, self.provisional = total_steps, enabled, provisional
        self.times: list[float] = []
        self.clock = 0.0

    def start(self) -> None:
        if self.enabled:
            self.clock = time.perf_counter()

    def stop(self, step: int, say: Callable[[str], None]) -> None:
        if not self.enabled:
            return
        self.times.append(time.perf_counter() - self.clock)
        if len(self.times) == 1 and self.provisional:
            first = self.times[0]
            say(
                self._line(
                    step,
                    first,
                    f"the first learning step's updates took {first:.2f} s here (provisional: "
                    f"it includes warm-up; measured again over {self.MEASURED_STEPS} steps)",
                )
            )
        if len(self.times) < self.MEASURED_STEPS:
            return
        self.enabled = False
        per_step = sorted(self.times)[len(self.times) // 2]
        say(self._line(step, per_step, f"one env step's updates take {per_step:.2f} s here"))

    def _line(self, step: int, per_step: float, cost: str) -> str:
        left = (self.total_steps - step) * per_step
        return (
            f"the paper preset on a CPU: {cost}, so the {self.total_steps - step:,} steps left would take "
            f"about {_duration(left)}; the paper's sizes expect a GPU (agent.device=cuda), or try --preset quick"
        )


def _duration(seconds: float) -> str:
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


def say_to_stderr(line: str) -> None:
    """A status line that does not tear the progress bar."""
    tqdm.write(line, file=sys.stderr)
