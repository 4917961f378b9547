"""Rendering benchmark: what an evaluation video costs, per task.

    python benchmarks/render.py                      # every task, 320x240 (trainer.video's default)
    python benchmarks/render.py --size 640x480 --task mbpo/humanoid --frames 200

Per task: ms to draw one frame off-screen with the scene the trainer films (shadows and
reflections off, ``harness.video.lighten_scene``) and with MuJoCo's full scene, and ms to
hand one frame to ffmpeg (which encodes in a process of its own); the back-end is MUJOCO_GL's
(``harness.video``). Frames are drawn along one episode of random actions (seeded), after a
warm-up frame. Results in docs/performance.md ("Evaluation videos").
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.suites import SUITES, get_task
from harness.video import Mp4Writer, choose_gl_backend, lighten_scene, render_fps


def time_task(suite: str, task: str, size: tuple[int, int], frames: int) -> dict[str, float]:
    spec = get_task(suite, task)
    env = spec.make_env(render_size=size)
    rng = np.random.default_rng(0)
    timings: dict[str, list[float]] = {"full": [], "lightened": [], "encode": []}
    try:
        env.reset(seed=0)
        env.render()  # warm-up: builds the OpenGL context and the scene
        with tempfile.TemporaryDirectory() as folder, Mp4Writer(Path(folder) / "v.mp4", render_fps(env)) as film:
            for scene in ("full", "lightened"):
                if scene == "lightened":
                    lighten_scene(env)
                for _ in range(frames):
                    _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, spec.act_dim))
                    if terminated or truncated:
                        env.reset()
                    start = time.perf_counter()
                    frame = env.render()
                    timings[scene].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    film.add(frame)
                    timings["encode"].append(time.perf_counter() - start)
    finally:
        env.close()
    return {name: 1e3 * statistics.median(values) for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the frames")
    parser.add_argument("--task", action="append", help="suite/task (repeatable); default: all")
    parser.add_argument("--frames", type=int, default=100, help="frames timed per scene")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    tasks = [t.split("/") for t in args.task] if args.task else [(s, t) for s in SUITES for t in SUITES[s]]
    print(f"MUJOCO_GL={choose_gl_backend()}, {width}x{height}, median of {args.frames} frames per scene")
    print("| task | ms/frame, full scene | ms/frame, filmed scene | ms/frame, piped to ffmpeg |")
    print("|---|---:|---:|---:|")
    for suite, task in tasks:
        row = time_task(suite, task, (width, height), args.frames)
        print(f"| {suite}/{task} | {row['full']:.1f} | {row['lightened']:.1f} | {row['encode']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
