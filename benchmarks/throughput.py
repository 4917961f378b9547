"""Throughput benchmark: the same as ``harness bench`` (harness/bench.py), as a script.

    python benchmarks/throughput.py                       # every agent, paper and authors-code, hopper and humanoid
    python benchmarks/throughput.py --agent sac-svg --preset authors-code --task mbpo/hopper
    python benchmarks/throughput.py --parallel 2 --agent sac --preset quick --task mbpo/hopper
    python benchmarks/throughput.py --json bench.json --markdown bench.md agent.fast_path.batched_ensembles=false

Per (agent, preset, task): ms per env step of updates (median of 20 after 3 warm-up, with
min and max), its break-down, GFLOP per env step, the fraction of the measured matmul
peak, env steps/s of the whole training loop; ``--parallel N``: N loops at once as
``harness run --jobs N`` runs seeds. Results in docs/performance.md.
"""

from __future__ import annotations

import sys

from harness.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
