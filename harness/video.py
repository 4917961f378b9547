"""Evaluation videos: which OpenGL back-end MuJoCo renders with off-screen, how a frame is
drawn, and the mp4 writer.

MuJoCo renders off-screen through EGL on a GPU machine and through OSMesa (software, Debian's
``libosmesa6``) on a CPU one; ``MUJOCO_GL`` picks which, and gymnasium reads it when an env
first renders. A user's own ``MUJOCO_GL`` is kept. Frames are piped to the ffmpeg that
imageio-ffmpeg ships (H.264, yuv420p: what browsers and wandb play) as they are rendered, so
an episode is never held in memory, and the mp4 appears under its name only once whole.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import gymnasium as gym

    from harness.suites import TaskSpec

GL_BACKENDS = ("egl", "osmesa", "glfw")
DEFAULT_FPS = 30  # for an env that declares no render_fps


class VideoError(RuntimeError):
    """Frames cannot be rendered or written (the message is one line saying what to install)."""


def nvidia_gpu_visible() -> bool:
    """Whether this process can see an NVIDIA GPU (its device files exist and
    CUDA_VISIBLE_DEVICES does not hide every device)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and hidden.strip() in ("", "-1"):
        return False
    return Path("/dev/nvidiactl").exists()


# what ``import mujoco`` accepts in MUJOCO_GL on Linux (anything else makes the import raise)
MUJOCO_GL_VALUES = (
    "",
    "enable",
    "enabled",
    "on",
    "true",
    "1",
    "glfw",
    "glx",
    "egl",
    "osmesa",
    "disable",
    "disabled",
    "off",
    "false",
    "0",
)


def mujoco_gl_problem() -> str | None:
    """Why ``import mujoco`` would fail on this process's MUJOCO_GL, or None. Checked at the
    command's start, before anything imports MuJoCo."""
    value = os.environ.get("MUJOCO_GL")
    if value is None or value.strip().lower() in MUJOCO_GL_VALUES:
        return None
    return (
        f"MUJOCO_GL={value!r} is not a value MuJoCo accepts: unset it, or set egl (GPU) or "
        f"osmesa (CPU, Debian's libosmesa6)"
    )


def choose_gl_backend() -> str:
    """The off-screen back-end: the user's ``MUJOCO_GL`` if set, else ``egl`` where an NVIDIA
    GPU is visible and ``osmesa`` elsewhere, written to ``MUJOCO_GL`` for gymnasium (which
    reads it when an env first renders)."""
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if not chosen:
        chosen = "egl" if nvidia_gpu_visible() else "osmesa"
        os.environ["MUJOCO_GL"] = chosen
    if chosen not in GL_BACKENDS:
        raise VideoError(f"MUJOCO_GL={chosen!r} cannot render off-screen; use egl (GPU) or osmesa (CPU)")
    return chosen


def _render_hint(backend: str) -> str:
    if backend == "osmesa":
        return "install Debian's libosmesa6 (apt-get install libosmesa6), or set MUJOCO_GL=egl on a GPU machine"
    if backend == "egl":
        return "EGL needs a GPU driver with libEGL; set MUJOCO_GL=osmesa to render on the CPU (Debian's libosmesa6)"
    return "glfw needs a display; set MUJOCO_GL=osmesa (CPU) or MUJOCO_GL=egl (GPU)"


def lighten_scene(env: gym.Env) -> None:
    """Turn off shadows and reflections of the env's off-screen scene: software rendering
    (OSMesa) draws a frame about 4x faster without them. Only the picture changes."""
    import mujoco  # noqa: PLC0415 - this module loads with the CLI, MuJoCo only to film

    viewer = getattr(getattr(env.unwrapped, "mujoco_renderer", None), "viewer", None)
    if viewer is not None and hasattr(viewer, "scn"):
        viewer.scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        viewer.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0


def render_frame(env: gym.Env) -> np.ndarray:
    """One RGB frame (height, width, 3) of ``env``'s current state, drawn off-screen, with the
    scene lightened (``lighten_scene``). Rendering reads the simulation; it draws no random
    number and changes no state. A failing back-end is a VideoError naming what to install."""
    first = getattr(getattr(env.unwrapped, "mujoco_renderer", None), "viewer", None) is None
    if first:  # the env makes its OpenGL context at its first frame, with the back-end chosen then
        choose_gl_backend()
    try:
        frame = env.render()
        if first:  # the scene exists once the first frame is drawn: draw it again, lightened
            lighten_scene(env)
            frame = env.render()
    except Exception as error:  # PyOpenGL, ctypes and MuJoCo raise many types
        backend = os.environ.get("MUJOCO_GL", "")
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise VideoError(
            f"MuJoCo could not render off-screen with MUJOCO_GL={backend} ({detail}); {_render_hint(backend)}"
        ) from error
    if frame is None:
        raise VideoError("the env was built without render_mode='rgb_array'; build it with a render size")
    return np.asarray(frame)


def check_rendering(spec: TaskSpec, size: tuple[int, int]) -> None:
    """Draw one frame of the task at ``size`` (width, height): VideoError, naming what to
    install, where this machine cannot render off-screen."""
    env = spec.make_env(render_size=size)
    try:
        env.reset(seed=0)
        frame = render_frame(env)
    finally:
        env.close()
    if frame.shape[:2] != (size[1], size[0]):
        raise VideoError(
            f"{spec.suite}/{spec.name} rendered {frame.shape[1]}x{frame.shape[0]} frames, not {size[0]}x{size[1]}"
        )


PROBE_EXIT = 3  # the probe's exit status for a VideoError (its message on stderr's last line)
PROBE_SCRIPT = """
import sys
from harness.suites import get_task
from harness.video import VideoError, check_rendering
try:
    check_rendering(get_task(sys.argv[1], sys.argv[2]), (int(sys.argv[3]), int(sys.argv[4])))
except VideoError as error:
    print(error, file=sys.stderr)
    sys.exit(3)
"""


def probe_rendering(suite: str, task: str, size: tuple[int, int]) -> str | None:
    """Why this machine cannot film ``suite/task`` at ``size``, or None: ``check_rendering`` in
    a child process, since an OpenGL back-end without its display or driver may abort the
    process (GLFW's C assertion) rather than raise. The back-end is chosen here and
    inherited."""
    backend = choose_gl_backend()
    done = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT, suite, task, str(size[0]), str(size[1])],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode == 0:
        return None
    if done.returncode == PROBE_EXIT and done.stderr.strip():
        return done.stderr.strip().splitlines()[-1]
    last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return f"MuJoCo's off-screen rendering with MUJOCO_GL={backend} failed ({last}); {_render_hint(backend)}"


def render_fps(env: gym.Env) -> int:
    """Frames per second that play the episode in real time: the env's ``render_fps`` (1/dt)."""
    fps = env.metadata.get("render_fps") or env.unwrapped.metadata.get("render_fps")
    return int(round(fps)) if fps else DEFAULT_FPS


def check_video_size(width: int, height: int) -> str | None:
    """Why (width, height) cannot be a video's size (H.264 in yuv420p needs even sides), or None."""
    if width <= 0 or height <= 0:
        return f"video size must be positive, got {width}x{height}"
    if width % 2 or height % 2:
        return f"video width and height must be even (H.264), got {width}x{height}"
    return None


class Mp4Writer:
    """Writes RGB frames into ``path`` as H.264 mp4, streamed through ffmpeg.

    The frames go to a hidden file beside ``path``, renamed to ``path`` by ``close``; ``abort``
    (or leaving the ``with`` block by an exception) removes it, so ``path`` is either absent or
    a whole video. The frame size is the first frame's.
    """

    def __init__(self, path: str | Path, fps: int) -> None:
        self.path = Path(path)
        self.fps = int(fps)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self._writer: Any = None

    def add(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        height, width = frame.shape[:2]
        if self._writer is None:
            import imageio_ffmpeg  # noqa: PLC0415 - ffmpeg's binary only when a video is written

            problem = check_video_size(width, height)
            if problem:
                raise VideoError(problem)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.size = (width, height)
            self._writer = imageio_ffmpeg.write_frames(
                str(self.tmp),
                (width, height),
                fps=self.fps,
                codec="libx264",
                pix_fmt_out="yuv420p",
                macro_block_size=2,
                ffmpeg_log_level="error",
                output_params=["-f", "mp4", "-movflags", "+faststart"],
            )
            self._writer.send(None)  # start ffmpeg
        elif self.size is not None and (width, height) != self.size:
            raise VideoError(f"frame {self.frames} is {width}x{height}, the video {self.size[0]}x{self.size[1]}")
        self._writer.send(frame)
        self.frames += 1

    def close(self) -> Path:
        """Finish the file and give it its name; returns the path."""
        if self._writer is None:
            raise VideoError(f"no frame was written to {self.path}")
        try:
            self._writer.close()
        except Exception as error:  # ffmpeg's failure, as imageio-ffmpeg reports it
            self.abort()
            raise VideoError(f"ffmpeg could not write {self.path}: {str(error).splitlines()[0]}") from error
        self._writer = None
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - being discarded anyway
                pass
            self._writer = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
