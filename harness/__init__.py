"""svgbench's harness: configuration, task suites, the trainer, run directories and the CLI."""

import os

# OpenMP's idle threads sleep instead of spinning: a spinning thread takes a core from
# another run on a shared machine (harness.process.choose_threads). libgomp reads this once,
# when torch loads it, so it is set here, before any harness module imports torch; spawned
# run and worker processes inherit it. A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
