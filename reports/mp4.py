"""Reading an evaluation video back: its frame size and its middle frame, decoded by the
ffmpeg that imageio-ffmpeg ships (the one ``harness.video`` writes with).

A file that ffmpeg cannot read (truncated, not an mp4) is an ``UnreadableVideo`` naming why,
never some other exception: the report turns it into a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


class UnreadableVideo(ValueError):
    """The file is not a video ffmpeg can decode (the message says why, on one line)."""


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame of a video and the video's facts."""

    width: int  # pixels
    height: int
    duration: float | None  # seconds, as the container states it
    pixels: np.ndarray  # (height, width, 3) uint8 RGB


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _decode_one_frame(path: Path, start: float | None) -> tuple[dict, bytes | None]:
    """(ffmpeg's description of the video, the raw RGB bytes of the first frame at or after
    ``start`` seconds, None when there is none)."""
    try:
        import imageio_ffmpeg  # noqa: PLC0415 - ffmpeg only when a report has videos
    except ImportError as error:
        raise UnreadableVideo("imageio-ffmpeg is not installed (pip install imageio-ffmpeg)") from error
    reader = imageio_ffmpeg.read_frames(
        str(path), input_params=["-ss", f"{start:.3f}"] if start else None, output_params=["-frames:v", "1"]
    )
    try:
        meta = next(reader)
        raw = next(reader, None)
    except (OSError, RuntimeError, StopIteration, ValueError) as error:
        raise UnreadableVideo(_first_line(error)) from error
    finally:
        reader.close()
    return meta, raw


def middle_frame(path: str | Path) -> VideoFrame:
    """The frame halfway through the video at ``path`` (its first frame when seeking finds
    none), with the video's size. Raises UnreadableVideo."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableVideo("no such file")
    meta, raw = _decode_one_frame(path, None)
    duration = meta.get("duration")
    duration = float(duration) if isinstance(duration, (int, float)) and duration > 0 else None
    if duration:
        _, middle = _decode_one_frame(path, duration / 2)
        raw = middle if middle is not None else raw
    size = meta.get("size")
    if raw is None or not size:
        raise UnreadableVideo("ffmpeg decoded no frame")
    width, height = (int(side) for side in size)
    if len(raw) != width * height * 3:
        raise UnreadableVideo(f"a frame of {len(raw)} bytes is not {width}x{height} RGB")
    return VideoFrame(width, height, duration, np.frombuffer(raw, np.uint8).reshape(height, width, 3))
