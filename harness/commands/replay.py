"""``harness replay``: play a trained policy of a run deterministically, optionally on video."""

from __future__ import annotations

from pathlib import Path

import click

from harness.commands.common import check_device
from harness.config import ConfigError
from harness.video import VideoError, check_video_size


@click.command("replay")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--checkpoint",
    default="latest",
    show_default=True,
    type=click.Choice(["latest", "best"]),
    help="The latest checkpoint, or the agent of the evaluation with the best mean return.",
)
@click.option(
    "--episodes",
    type=click.IntRange(min=1),
    default=None,
    help="Episodes to play (default: the run's trainer.eval_episodes).",
)
@click.option("--seed", type=int, default=None, help="Seed of the first reset (default: that evaluation's seed).")
@click.option("--video", type=click.Path(dir_okay=False), default=None, help="Film every episode into this mp4.")
@click.option("--size", default=None, help="Video WIDTHxHEIGHT (default: the run's, 320x240).")
@click.option("--device", default=None, help="cpu, cuda (default: the run's device if this machine has it).")
def replay_command(run_dir, checkpoint, episodes, seed, video, size, device) -> None:
    """Play a trained policy of RUN_DIR (a seed_<n> folder) deterministically: each episode's
    return and length, and optionally a video. With the defaults, the episodes are those
    of the checkpoint's evaluation and give its returns."""
    from harness.playback import describe, load_policy, play, summary_line
    from harness.process import prepare_training_process
    from harness.rundir import CheckpointError

    frame_size = _video_size(size)
    if video is not None and Path(video).suffix.lower() != ".mp4":
        raise ConfigError(f"--video {video}: the file must end in .mp4")
    if device is not None:
        check_device(device)
    try:
        policy = load_policy(Path(run_dir), checkpoint, device)
    except CheckpointError as error:
        raise ConfigError(str(error)) from error
    prepare_training_process(policy.config.trainer.torch_threads, policy.config.agent)
    click.echo(describe(policy))
    for note in policy.notes:
        click.echo(f"harness: note: {note}", err=True)
    first_seed = policy.default_seed if seed is None else seed
    count = episodes or policy.config.trainer.eval_episodes
    click.echo(f"seed {first_seed}, {count} episode{'s' if count != 1 else ''}, deterministic policy")
    try:
        played, film = play(policy, count, first_seed, Path(video) if video else None, frame_size)
    except VideoError as error:
        raise ConfigError(f"--video: {error}") from error
    except KeyboardInterrupt:
        click.echo("harness: interrupted" + (f"; no video written to {video}" if video else ""), err=True)
        raise SystemExit(130) from None
    click.echo(f"{'episode':>7}  {'return':>12}  {'length':>6}")
    for number, episode in enumerate(played, start=1):
        click.echo(f"{number:>7}  {episode.total_return:>12.3f}  {episode.length:>6}")
    click.echo(summary_line(played, policy, first_seed))
    if film is not None and film.size is not None:  # its size is set by its first frame
        width, height = film.size
        click.echo(f"video: {video} ({film.frames} frames, {width}x{height}, {film.fps} fps)")


def _video_size(text: str | None) -> tuple[int, int] | None:
    """``--size WIDTHxHEIGHT`` as (width, height); None when not given."""
    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"--size {text!r}: write WIDTHxHEIGHT, e.g. 640x480")
    width, height = int(parts[0]), int(parts[1])
    problem = check_video_size(width, height)
    if problem:
        raise ConfigError(f"--size {text}: {problem}")
    return width, height
