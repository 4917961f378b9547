"""Seeds batched in one process against lone runs: the same as ``harness bench --batch-seeds``
(harness/batch_bench.py), as a script, with issue 19's measurement as its default.

    python benchmarks/batch_seeds.py                    # S = 1, 2, 4, 8 of sac-svg, quick and paper, mbpo/hopper
    python benchmarks/batch_seeds.py --batch-seeds 8 --preset quick --agent sac --loop-steps 200
    python benchmarks/batch_seeds.py --json seeds.json --markdown seeds.md trainer.torch_threads=2

Per (agent, preset, task, S): the aggregate env steps/s of S seeds trained as one batch in
one process, against S lone runs placed as ``harness run --jobs J`` places them (``--jobs``,
default one per core), the whole training loop with MuJoCo stepping. Take the timings on a
quiet machine; results in docs/performance.md ("Seeds batched in one process").
"""

from __future__ import annotations

import sys

from harness.cli import main

DEFAULT_SEEDS = ["--batch-seeds", "1", "--batch-seeds", "2", "--batch-seeds", "4", "--batch-seeds", "8"]

if __name__ == "__main__":
    arguments = sys.argv[1:]
    sys.exit(main(["bench", *([] if "--batch-seeds" in arguments else DEFAULT_SEEDS), *arguments]))
