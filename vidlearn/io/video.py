"""Probing and decoding videos: the one interface the rest of vidlearn uses.

Frames come out as uint8 ``T x H x W x 3`` RGB arrays, turned upright according to the file's
display rotation, optionally resized while converting from YUV (so a 1080p file never has to
exist at full resolution in memory when a 128-pixel clip is wanted).

A frame index ``k`` is the k-th presented frame of the first video stream, i.e. the k-th frame
of a sequential decode, also for variable-frame-rate files. A frame's time is its presentation
timestamp in seconds as the container states it (0 for the first frame of almost every file).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vidlearn.errors import BadArgumentError, VideoReadError
from vidlearn.io._pyav import FrameDecoder, OutputGeometry, display_rotation

Size = int | tuple[int, int] | None


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` tells about a video file (first video stream).

    ``width`` and ``height`` are display sizes (after rotation); ``frames`` is the number of frames
    a sequential decode outputs (container headers that lie or say nothing are not trusted);
    ``fps`` is the average rate (frames / duration for variable-frame-rate files).
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    sar: str
    fps: float
    frames: int
    duration: float
    rotation: int
    has_audio: bool

    def to_dict(self) -> dict:
        return asdict(self)


class VideoReader:
    """Frame-exact random access to one video.

    >>> with open_video("clip.mp4", size=128) as video:   # doctest: +SKIP
    ...     clip = video.get([0, 2, 4, 6])                  # 4 x 128 x W x 3 uint8

    ``size``: ``None`` (display size), an int (short side, aspect kept) or ``(height, width)``.
    ``threads``: decoder and swscale (resize/convert) threads (0 = FFmpeg's choice). Use 1 inside
    DataLoader workers, which already run one per core. The pixels do not depend on it.
    ``frame_count``: the count from an earlier ``probe`` (e.g. a scanned dataset index). AVI files
    are counted by decoding them whole; passing the known count avoids that on every open.
    """

    def __init__(self, path: str | Path, size: Size = None, threads: int = 0, frame_count: int | None = None):
        self.path = str(path)
        self._decoder = FrameDecoder(path, threads=threads)
        try:
            self.info = self._probe(frame_count)
        except BaseException:
            self._decoder.close()
            raise
        if self.info.frames == 0:
            self._decoder.close()
            raise VideoReadError(self.path, "the video stream has no decodable frames")
        self._geometry = OutputGeometry.plan(
            self._decoder.stream.codec_context.width,
            self._decoder.stream.codec_context.height,
            self.info.rotation,
            _check_size(size),
            threads=threads,
        )
        self._times: np.ndarray | None = None

    # -- context manager ---------------------------------------------------
    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._decoder.close()

    def __len__(self) -> int:
        return self.info.frames

    # -- facts ---------------------------------------------------------------
    def _probe(self, frame_count: int | None) -> VideoInfo:
        decoder = self._decoder
        stream = decoder.stream
        container = stream.container
        first = decoder.first_frame()
        rotation = display_rotation(first) if first is not None else 0
        if first is None:
            frames = 0
        elif frame_count is not None and decoder.index.mode == "sequential":
            frames = frame_count
        else:
            frames = decoder.count_frames()
        width, height = stream.codec_context.width, stream.codec_context.height
        if rotation in (90, 270):
            width, height = height, width
        duration = _duration(container, stream, decoder, frames)
        rate = stream.average_rate
        fps = float(rate) if rate else (frames / duration if duration > 0 else 0.0)
        sar = (
            stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
        )  # the latter: learnt decoding the first frame
        return VideoInfo(
            path=self.path,
            container=container.format.name.split(",")[0],
            codec=stream.codec_context.name,
            width=width,
            height=height,
            sar=f"{sar.numerator}:{sar.denominator}" if sar else "1:1",
            fps=fps,
            frames=frames,
            duration=duration,
            rotation=rotation,
            has_audio=bool(container.streams.audio),
        )

    def frame_times(self) -> np.ndarray:
        """Presentation time in seconds of every frame (float64, length ``frames``)."""
        if self._times is None:
            index = self._decoder.index
            if index.mode == "pts":
                self._times = np.asarray(index.pts, dtype=np.float64) * float(self._decoder.stream.time_base)
            else:
                start = self._decoder.stream.start_time or 0
                t0 = float(start * self._decoder.stream.time_base) if start else 0.0
                self._times = t0 + np.arange(self.info.frames, dtype=np.float64) / self.info.fps
        return self._times

    # -- frames ----------------------------------------------------------------
    def get(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 ``N x H x W x 3``."""
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        if wanted.size == 0:
            return np.zeros((0, *self.frame_shape), dtype=np.uint8)
        check_frame_indices(self.path, wanted, self.info.frames)
        unique = sorted(set(wanted.tolist()))
        arrays = self._decoder.frames_at(unique, self._geometry.to_array)
        missing = [k for k in unique if k not in arrays]
        if missing:
            raise VideoReadError(
                self.path, f"frame {missing[0]} could not be decoded (corrupt or truncated data)"
            )
        return np.stack([arrays[k] for k in wanted.tolist()])

    def get_at_times(self, seconds: Sequence[float] | np.ndarray) -> np.ndarray:
        """The frames on screen at the given times: for each t, the last frame whose time is <= t."""
        return self.get(self.indices_at_times(seconds))

    def indices_at_times(self, seconds: Sequence[float] | np.ndarray) -> np.ndarray:
        times = self.frame_times()
        query = np.asarray(seconds, dtype=np.float64).reshape(-1)
        end = max(self.info.duration, times[-1])
        outside = query[(query < min(0.0, times[0])) | (query > end + 1e-6)]
        if outside.size:
            raise BadArgumentError(
                f"{self.path}: time {outside[0]:.3f}s is outside the video (0..{end:.3f}s)"
            )
        return np.clip(np.searchsorted(times, query + 1e-9, side="right") - 1, 0, len(times) - 1)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        g = self._geometry
        if g.rotation in (90, 270):
            return g.decode_width, g.decode_height, 3
        return g.decode_height, g.decode_width, 3

    def iter_chunks(self, chunk: int = 64) -> Iterator[tuple[int, np.ndarray]]:
        """Every frame in order, as ``(start_index, frames)`` blocks of at most ``chunk`` frames.

        Memory stays bounded by one block, whatever the video's length.
        """
        if chunk < 1:
            raise BadArgumentError(f"chunk must be at least 1, got {chunk}")
        block: list[np.ndarray] = []
        start = 0
        for frame in self._decoder.iter_frames():
            block.append(self._geometry.to_array(frame))
            if len(block) == chunk:
                yield start, np.stack(block)
                start += chunk
                block = []
        if block:
            yield start, np.stack(block)


def check_frame_indices(path: str, indices: np.ndarray, frames: int) -> None:
    """``BadArgumentError`` naming the first index outside ``0 .. frames - 1``."""
    bad = indices[(indices < 0) | (indices >= frames)]
    if bad.size:
        raise BadArgumentError(
            f"{path}: frame index {int(bad[0])} out of range (the video has {frames} frames, 0..{frames - 1})"
        )


def _check_size(size: Size) -> Size:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size < 1:
            raise BadArgumentError(f"size must be a positive short side or (height, width), got {size}")
        return int(size)
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(int(s) >= 1 for s in size):
        return int(size[0]), int(size[1])
    raise BadArgumentError(f"size must be a positive short side or (height, width), got {size!r}")


def _duration(container, stream, decoder: FrameDecoder, frames: int) -> float:
    """The video stream's duration, else the container's, else the span of the frame timestamps plus one frame."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    pts = decoder.index.pts
    if len(pts) >= 2:
        step = (pts[-1] - pts[0]) / (len(pts) - 1)
        return float((pts[-1] - pts[0] + step) * stream.time_base)
    rate = stream.average_rate or stream.guessed_rate
    return frames / float(rate) if rate else 0.0


def open_video(
    path: str | Path, size: Size = None, threads: int = 0, frame_count: int | None = None
) -> VideoReader:
    """Open a video for frame-exact reading (see ``VideoReader``)."""
    return VideoReader(path, size=size, threads=threads, frame_count=frame_count)


def probe(path: str | Path) -> VideoInfo:
    """Facts about a video file; raises ``VideoReadError`` naming the file and the reason."""
    with VideoReader(path) as video:
        return video.info


def read_frames(path: str | Path, indices: Sequence[int] | np.ndarray, size: Size = None) -> np.ndarray:
    """Frames at ``indices`` of the video at ``path`` as uint8 ``N x H x W x 3``."""
    with VideoReader(path, size=size) as video:
        return video.get(indices)


def iter_chunks(path: str | Path, chunk: int = 64, size: Size = None) -> Iterator[tuple[int, np.ndarray]]:
    """Every frame of a (possibly hours-long) video as ``(start_index, frames)`` blocks; bounded memory."""
    with VideoReader(path, size=size) as video:
        yield from video.iter_chunks(chunk)
