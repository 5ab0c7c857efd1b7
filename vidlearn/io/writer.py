"""Encoding frames to H.264 MP4, atomically."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidlearn.errors import BadArgumentError
from vidlearn.files import atomic_path


def as_rate(fps: float | Fraction) -> Fraction:
    """Frame rate as an exact fraction (29.97 -> 30000/1001, 12.5 -> 25/2)."""
    if fps <= 0:
        raise BadArgumentError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def write_video(
    path: str | Path,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float | Fraction,
    crf: int = 23,
    preset: str = "veryfast",
    threads: int = 1,
) -> Path:
    """Encode uint8 RGB frames (``T x H x W x 3`` array or iterable of ``H x W x 3``) to an H.264 MP4.

    The file appears under its name only once complete (written to a temporary file in the same
    folder, then renamed), so an interrupted run never leaves a half-written video. Width and
    height must be even (yuv420p). ``threads=1`` keeps the bytes identical from run to run and
    machine to machine; raise it for large outputs where that does not matter.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".mp4") as temporary:
        if _encode(temporary, frames, as_rate(fps), crf, preset, threads) == 0:
            raise BadArgumentError(f"{path}: no frames to write")
    return path


def _encode(filename: str, frames, rate: Fraction, crf: int, preset: str, threads: int) -> int:
    count = 0
    with av.open(filename, mode="w", format="mp4") as container:
        stream = None
        for frame in frames:
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise BadArgumentError(f"frames must be uint8 H x W x 3 RGB, got {frame.dtype} {frame.shape}")
            if stream is None:
                stream = _add_stream(container, frame.shape[0], frame.shape[1], rate, crf, preset, threads)
            elif frame.shape[:2] != (stream.height, stream.width):
                raise BadArgumentError(
                    f"all frames must have one size: {frame.shape[:2]} after {(stream.height, stream.width)}"
                )
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            video_frame.pts = count
            container.mux(stream.encode(video_frame))
            count += 1
        if stream is not None:
            container.mux(stream.encode(None))
    return count


def _add_stream(container, height: int, width: int, rate: Fraction, crf: int, preset: str, threads: int):
    if height % 2 or width % 2:
        raise BadArgumentError(f"H.264 (yuv420p) needs even width and height, got {width}x{height}")
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    stream.time_base = 1 / rate
    stream.codec_context.thread_count = threads
    # No macroblock-tree rate control: with it, this libx264 (FFmpeg 8) gave different bytes for the same
    # frames from one call to the next, even with threads=1. Without it files are about a third larger
    # at the same CRF (and a little better).
    stream.options = {"crf": str(crf), "preset": preset, "x264-params": "mbtree=0"}
    return stream
