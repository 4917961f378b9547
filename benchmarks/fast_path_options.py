"""What each fast-path option buys: ms per env step of the updates with every option off
(the plain path), each option alone, and all of them (the default).

    python benchmarks/fast_path_options.py --agent sac --preset paper --task mbpo/hopper
    python benchmarks/fast_path_options.py --agent sac-svg --preset authors-code --task mbpo/hopper \\
        --rounds 4 --updates 3

One torch thread unless --threads. Every variant's agent is built and warmed up first,
then the variants take turns (--rounds rounds of --updates timed calls each, at env step
20,000), so a drift of the machine's speed falls on all of them alike; the median of all
their calls is reported. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys

from agents.config import FastPathConfig
from harness import bench
from harness.process import keep_freed_memory, set_torch_threads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default="sac-svg")
    parser.add_argument("--preset", default="authors-code")
    parser.add_argument("--task", default="mbpo/hopper", help="SUITE/TASK")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--updates", type=int, default=5, help="timed updates per variant and round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--allocator-default",
        action="store_true",
        help="leave glibc returning freed tensor memory (harness runs keep it: harness.process)",
    )
    args = parser.parse_args()
    set_torch_threads(args.threads)
    if not args.allocator_default:
        keep_freed_memory()
    options = [f.name for f in dataclasses.fields(FastPathConfig)]
    variants = {"plain (every option off)": {o: False for o in options}}
    variants.update({f"only {o}": {p: p == o for p in options} for o in options})
    variants["all (the default)"] = {o: True for o in options}
    print(
        f"{args.agent}, {args.preset}, {args.task}, {args.device}, {args.threads} thread(s), "
        f"{args.rounds} rounds of {args.updates} updates per variant"
        f"{', glibc default allocator settings' if args.allocator_default else ''}\n"
    )
    built = {}
    for name, flags in variants.items():
        # the eager update, whose computation the options choose (agent.compile=auto would
        # compile a long preset's update, inside which they do not apply)
        options = (f"agent.fast_path.{option}={str(on).lower()}" for option, on in flags.items())
        overrides = ("agent.compile=off", *options)
        _, spec, learner, replay = bench.build(args.agent, args.preset, args.task, args.device, overrides)
        bench.fill_random(learner, replay, spec.obs_dim, spec.act_dim)
        bench.time_updates(learner, replay, 1, warmup=3)
        built[name] = (learner, replay)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (learner, replay) in built.items():
            seconds[name] += bench.time_updates(learner, replay, args.updates, warmup=0)
    print("| fast path | ms/env step: median (min-max) | vs plain |\n|---|---|---|")
    plain = statistics.median(seconds[next(iter(variants))])
    for name, times in seconds.items():
        median = statistics.median(times)
        print(
            f"| {name} | {1000 * median:.1f} ({1000 * min(times):.1f}-{1000 * max(times):.1f}) | "
            f"{median / plain:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
