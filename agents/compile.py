"""``agent.compile``: the agent's loss functions run eagerly, through torch.compile, or (on
CUDA) through torch.compile with CUDA graphs; or each whole update runs as one compiled
program ("update", ``agents.whole_update``); "auto" chooses between "update" and "off". A
mode that cannot run says so in one line and the run goes on with "off": the same math,
eagerly."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from agents.config import COMPILE_MODES

# "auto" compiles the whole update of a run of at least this many env steps on a CPU. At the
# quick preset the compiled update made the loop 1.2-1.6x faster (sac, sac-svg; mbpo/hopper,
# pets-cheetah) after 10-40 s of compiling with an empty inductor cache (docs/performance.md):
# about even at the quick preset's 15,000 steps, a few percent of a run from here on.
AUTO_UPDATE_MIN_STEPS = 50_000


@dataclass(frozen=True)
class CompileChoice:
    """The compile mode a run uses and why (``agent.compile``, "auto" resolved)."""

    mode: str
    reason: str


def cpp_compiler_name() -> str:
    """The C++ compiler inductor uses: ``CXX``, else clang++ on macOS and g++ elsewhere."""
    return os.environ.get("CXX") or ("clang++" if sys.platform == "darwin" else "g++")


def cpp_compiler() -> str | None:
    """``cpp_compiler_name()`` if it is found on this machine."""
    name = cpp_compiler_name()
    return name if shutil.which(name) else None


def choose_compile_mode(mode: str, device: torch.device, total_steps: int) -> CompileChoice:
    """``agent.compile`` as a run of ``total_steps`` env steps on ``device`` applies it: a
    named mode as it is; "auto" as "update" on a CPU for a run of at least
    ``AUTO_UPDATE_MIN_STEPS`` steps with a C++ compiler at hand (where the compiled update was
    measured to pay for its compiling), "off" otherwise (on CUDA the update was not measured
    to pay: docs/performance.md, "A GPU")."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"agent.compile must be one of {', '.join(COMPILE_MODES)}, not {mode!r}")
    if mode != "auto":
        return CompileChoice(mode, "agent.compile")
    if device.type != "cpu":
        return CompileChoice("off", f"agent.compile=auto on {device.type}: compiling pays only on a CPU")
    if total_steps < AUTO_UPDATE_MIN_STEPS:
        too_few = f"{total_steps} env steps, too few to pay for compiling (from {AUTO_UPDATE_MIN_STEPS})"
        return CompileChoice("off", f"agent.compile=auto: {too_few}")
    if cpp_compiler() is None:
        return CompileChoice("off", f"agent.compile=auto: no C++ compiler ({cpp_compiler_name()}) found")
    return CompileChoice("update", f"agent.compile=auto: {total_steps} env steps on a CPU")


def say_warning(line: str) -> None:
    sys.stderr.write(f"warning: {line}\n")


def fallback_line(mode: str, error: Exception) -> str:
    """The one line that says compile mode ``mode`` failed with ``error`` and the run goes
    on with "off": the error's type and the first line of its message."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"agent.compile={mode} failed ({type(error).__name__}: {reason[:160]}); running with agent.compile=off"


class OneWarning:
    """Passes on the first line only: one warning per agent however many losses fall back."""

    def __init__(self, warn: Callable[[str], None] | None) -> None:
        self.warn = warn or say_warning
        self.given = False

    def __call__(self, line: str) -> None:
        if not self.given:
            self.given = True
            self.warn(line)


class CompiledLoss:
    """A compiled loss function that falls back to the eager one, for good, when
    compilation or CUDA-graph capture fails (one warning line, via ``warn``)."""

    def __init__(self, eager: Callable, compiled: Callable, mode: str, warn: Callable[[str], None]) -> None:
        self.eager, self.compiled, self.mode, self.warn = eager, compiled, mode, warn
        self.failed = False

    def __call__(self, *args: Any) -> Any:
        if self.failed:
            return self.eager(*args)
        try:
            if self.mode == "cudagraphs":
                torch.compiler.cudagraph_mark_step_begin()
                # a graph's outputs live in memory its next replay overwrites: keep copies
                # (a clone keeps the autograd history, so backward still runs through it)
                return torch.utils._pytree.tree_map(  # noqa: SLF001 - torch has no public pytree module
                    lambda x: x.clone() if isinstance(x, torch.Tensor) else x, self.compiled(*args)
                )
            return self.compiled(*args)
        except Exception as error:  # noqa: BLE001 - any compiler or capture failure: fall back
            self.failed = True
            self.warn(fallback_line(self.mode, error))
            return self.eager(*args)


def compile_loss(fn: Callable, mode: str, device: torch.device, warn: Callable[[str], None]) -> Callable:
    """``fn`` as ``agent.compile`` asks: itself ("off"), torch.compile'd ("compile"), or
    torch.compile'd with CUDA graphs ("cudagraphs", CUDA only; elsewhere: one warning, "off")."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"agent.compile must be one of {', '.join(COMPILE_MODES)}, not {mode!r}")
    if mode == "off":
        return fn
    if mode == "cudagraphs" and device.type != "cuda":
        warn(
            f"agent.compile=cudagraphs needs a CUDA device, this agent is on {device.type}; "
            "running with agent.compile=off"
        )
        return fn
    compiled = torch.compile(fn, mode="reduce-overhead" if mode == "cudagraphs" else None, dynamic=False)
    return CompiledLoss(fn, compiled, mode, warn)
