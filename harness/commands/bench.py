"""``harness bench``: time the agents' updates and training loop on this machine."""

from __future__ import annotations

from pathlib import Path

import click

from baselines import AGENTS
from harness.commands.common import HarnessFailure, check_device
from harness.config import ConfigError, build_run_config, presets
from harness.names import unknown_name
from harness.suites import SUITES


@click.command("bench")
@click.option(
    "--agent", "agents", multiple=True, help="An agent (repeatable); default: sac, sac-svg, mve, sac-svg-ensemble."
)
@click.option("--preset", "preset_names", multiple=True, help="A preset (repeatable); default: paper, authors-code.")
@click.option("--task", "tasks", multiple=True, help="SUITE/TASK (repeatable); default: mbpo/hopper, mbpo/humanoid.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1), help="torch threads.")
@click.option(
    "--updates",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Timed updates per row (after 3 warm-up updates).",
)
@click.option(
    "--loop-steps",
    default=20,
    show_default=True,
    type=click.IntRange(min=0),
    help="Learning steps of the whole-loop measurement (0: skip it).",
)
@click.option(
    "--parallel",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Also N whole loops at once, as --jobs N runs seeds, against one alone.",
)
@click.option(
    "--batch-seeds",
    "batch_seeds",
    multiple=True,
    type=click.IntRange(min=1),
    help="S (repeatable): instead of the tables above, the aggregate env steps/s of S seeds trained as "
    "one batch against S lone runs --jobs at a time (benchmarks/batch_seeds.py); default agent "
    "sac-svg, presets quick and paper, task mbpo/hopper.",
)
@click.option(
    "--jobs",
    default=None,
    type=click.IntRange(min=1),
    help="With --batch-seeds: the lone runs at once, as harness run --jobs (default: one per core).",
)
@click.option(
    "--batches",
    default=None,
    type=click.IntRange(min=1),
    help="With --batch-seeds S: the batched side as N batches of ceil(S/N) seeds trained at once, each on "
    "its share of the cores, as harness run --batch-seeds ceil(S/N) --jobs N (default 1: one batch).",
)
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="Write the results here.")
@click.option(
    "--markdown", "markdown_path", default=None, type=click.Path(dir_okay=False), help="Write the Markdown table here."
)
@click.argument("overrides", nargs=-1)
def bench_command(
    agents,
    preset_names,
    tasks,
    device,
    threads,
    updates,
    loop_steps,
    parallel,
    batch_seeds,
    jobs,
    batches,
    json_path,
    markdown_path,
    overrides,
) -> None:
    """Time the agents' updates and training loop on this machine (benchmarks/throughput.py).

    Prints one Markdown row per (agent, preset, task) as it finishes. OVERRIDES are run
    config settings, e.g. agent.fast_path.batched_ensembles=false or agent.compile=update.
    """
    from harness import bench

    if batch_seeds:
        return bench_seed_batching(
            agents,
            preset_names,
            tasks,
            device,
            loop_steps,
            batch_seeds,
            jobs,
            batches or 1,
            json_path,
            markdown_path,
            overrides,
        )
    if jobs is not None:
        raise ConfigError(
            "--jobs applies to --batch-seeds (the lone runs' placement); --parallel N times N loops at once"
        )
    if batches is not None:
        raise ConfigError("--batches applies to --batch-seeds (how the batched side is split)")
    settings = bench.BenchSettings(
        agents=tuple(agents) or bench.DEFAULT_AGENTS,
        presets=tuple(preset_names) or bench.DEFAULT_PRESETS,
        tasks=tuple(tasks) or bench.DEFAULT_TASKS,
        device=device,
        threads=threads,
        updates=updates,
        loop_steps=loop_steps,
        parallel=parallel,
        overrides=tuple(overrides),
    )
    check_bench_arguments(
        settings.agents, settings.presets, settings.tasks, device, overrides, json_path, markdown_path
    )
    click.echo(bench.MARKDOWN_HEADER)
    try:
        result = bench.run_benchmark(settings, say=click.echo)
    except RuntimeError as error:  # e.g. CUDA out of memory, a parallel process that died
        click.echo(f"harness: bench failed: {str(error).strip().splitlines()[0]}", err=True)
        raise HarnessFailure() from None
    except KeyboardInterrupt:  # the rows printed so far stand; nothing was written
        click.echo("harness: bench interrupted; no --json or --markdown file written", err=True)
        raise SystemExit(130) from None
    bench.write_outputs(result, json_path, markdown_path)
    parallel = [bench.BenchRow(**row) for row in result["rows"] if row["parallel"]]
    if parallel:
        click.echo("\n" + bench.PARALLEL_HEADER)
        for row in parallel:
            click.echo(bench.parallel_row(row))


def check_bench_arguments(agents, preset_names, tasks, device, overrides, json_path, markdown_path) -> None:
    """Every name, override and output folder checked before minutes of timing."""

    if any(o.lstrip("+~").startswith("agent.device=") for o in overrides):
        raise ConfigError("harness bench takes the device from --device, not agent.device")
    for agent in agents:
        if agent not in AGENTS:
            raise ConfigError(unknown_name("agent", agent, AGENTS))
    for preset in preset_names:
        if preset not in presets():
            raise ConfigError(unknown_name("preset", preset, presets()))
    for task in tasks:
        suite, _, name = task.partition("/")
        if suite not in SUITES:
            raise ConfigError(unknown_name("suite", suite, SUITES) + " (--task is SUITE/TASK)")
        for agent in agents:
            for preset in preset_names:
                build_run_config(suite, name, agent, 0, preset=preset, overrides=[f"agent.device={device}", *overrides])
    check_device(device)
    for path in (json_path, markdown_path):
        if path and not Path(path).resolve().parent.is_dir():
            raise ConfigError(f"{path}: the folder {Path(path).parent} does not exist")


def bench_seed_batching(
    agents, preset_names, tasks, device, loop_steps, batch_seeds, jobs, batches, json_path, markdown_path, overrides
) -> None:
    """``harness bench --batch-seeds S ...``: S seeds batched against S lone runs (harness.batch_bench)."""
    import json

    from harness import batch_bench
    from harness.process import available_cores

    settings = batch_bench.BatchBenchSettings(
        agents=tuple(agents) or batch_bench.DEFAULT_AGENTS,
        presets=tuple(preset_names) or batch_bench.DEFAULT_PRESETS,
        tasks=tuple(tasks) or batch_bench.DEFAULT_TASKS,
        seeds=tuple(batch_seeds),
        jobs=jobs or len(available_cores()),
        batches=batches,
        device=device,
        loop_steps=max(1, loop_steps),
        overrides=tuple(overrides),
    )
    check_bench_arguments(
        settings.agents, settings.presets, settings.tasks, device, overrides, json_path, markdown_path
    )
    click.echo(batch_bench.MARKDOWN_HEADER)
    try:
        result = batch_bench.run_batch_benchmark(settings, say=click.echo)
    except RuntimeError as error:  # e.g. CUDA out of memory, a lone run's process that died
        click.echo(f"harness: bench failed: {str(error).strip().splitlines()[0]}", err=True)
        raise HarnessFailure() from None
    except KeyboardInterrupt:
        click.echo("harness: bench interrupted; no --json or --markdown file written", err=True)
        raise SystemExit(130) from None
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    if markdown_path:
        Path(markdown_path).write_text(batch_bench.markdown(result))
