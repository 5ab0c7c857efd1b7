"""Clip samplers: which frames of a video make a clip. They return frame indices, never frames.

A sampler is a small pure function of the video's frame count (and, for ``target_fps``, its
frame rate). Randomness comes only from an explicit ``numpy.random.Generator``. Every sampler
returns :class:`Clip` records; timestamps follow from the video's frame times
(``clip.times(reader.frame_times())``).

Vocabulary (``L`` = frames in the video, ``T`` = ``spec.num_frames``):

* step: frames between consecutive clip frames, ``spec.stride`` or ``video_fps / spec.target_fps``
  (may be fractional).
* offsets: ``floor(i * step)`` for ``i = 0 .. T-1``; a clip starting at integer frame ``s`` holds
  ``s + offsets``, i.e. ``floor(s + i * step)``.
* span: frames a clip covers, ``offsets[-1] + 1``.
* valid starts: ``0 .. L - span``, the ``L - span + 1`` starts whose clip fits in the video.

A video shorter than the span gets a single start, 0, and ``spec.short_policy`` decides what
the indices past the end become (see :func:`apply_short_policy`).

See docs/sampling.md for the formulas with worked numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vidlearn.errors import BadArgumentError

SHORT_POLICIES = ("loop", "repeat_last", "pad", "error")

# A step meant to be whole (30000/1001 fps sampled at 30000/1001 fps) can be stored as
# 0.9999999999; without this tolerance floor() would land one frame early.
_FLOOR_TOLERANCE = 1e-6


SAMPLINGS = ("clip", "segments")


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _require_int(name: str, value: object, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise BadArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _require_positive(name: str, value: object) -> float:
    is_number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not is_number or not math.isfinite(value) or value <= 0:
        raise BadArgumentError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ClipSpec:
    """How clips are taken from a video and how they are cropped.

    Attributes:
        num_frames: T, frames per clip.
        stride: whole-frame step between clip frames. With neither ``stride`` nor ``target_fps``
            the step is 1 (consecutive frames).
        target_fps: sample at this rate instead; the step is ``video_fps / target_fps`` and the
            samplers then need ``video_fps``. Mutually exclusive with ``stride``.
        short_policy: what to do when the video has fewer frames than a clip spans:
            "loop", "repeat_last", "pad" or "error" (see :func:`apply_short_policy`).
        num_clips: clips per video at test time (:func:`uniform_clips`).
        num_crops: spatial crops per clip at test time, 1 (centre) or 3 (three_crop).
        size: side of the square crop fed to the model.
        short_side: frames are resized so that their short side has this length before cropping.
        hflip: training views are mirrored left-right with probability 1/2. Turn it off when
            the classes depend on direction (SynthActions' MoveLeft/MoveRight, Something-Something's
            "from left to right"): a mirrored clip would carry the wrong label.
        crop_scale: below 1, training crops are random-resized crops covering ``crop_scale`` to
            all of the resized frame's area (aspect 3/4-4/3), resized to ``size``; 1: plain crops.
        colour_jitter: training views get brightness, contrast and saturation factors drawn from
            [1 - colour_jitter, 1 + colour_jitter] (0: none).
        sampling: "clip" (a window of ``num_frames`` frames, :func:`random_clip` /
            :func:`uniform_clips`) or "segments" (TSN: one frame from each of ``num_frames``
            equal segments spanning the whole video, :func:`tsn_segments`; one test clip, the
            segment centres; ``stride`` and ``target_fps`` do not apply).
    """

    num_frames: int = 16
    stride: int | None = None
    target_fps: float | None = None
    short_policy: str = "loop"
    num_clips: int = 1
    num_crops: int = 1
    size: int = 112
    short_side: int = 128
    hflip: bool = True
    crop_scale: float = 1.0
    colour_jitter: float = 0.0
    sampling: str = "clip"

    def __post_init__(self) -> None:
        _require_int("num_frames", self.num_frames, 1)
        if self.sampling not in SAMPLINGS:
            raise BadArgumentError(f"sampling must be one of {', '.join(SAMPLINGS)}; got {self.sampling!r}")
        if self.stride is not None and self.target_fps is not None:
            raise BadArgumentError(
                f"give either stride ({self.stride}) or target_fps ({self.target_fps}), not both"
            )
        if self.stride is not None:
            _require_int("stride", self.stride, 1)
        if self.target_fps is not None:
            _require_positive("target_fps", self.target_fps)
        if self.short_policy not in SHORT_POLICIES:
            raise BadArgumentError(
                f"short_policy must be one of {', '.join(SHORT_POLICIES)}; got {self.short_policy!r}"
            )
        _require_int("num_clips", self.num_clips, 1)
        if not _is_int(self.num_crops) or self.num_crops not in (1, 3):
            raise BadArgumentError(f"num_crops must be 1 (centre) or 3 (three_crop), got {self.num_crops!r}")
        _require_int("size", self.size, 1)
        _require_int("short_side", self.short_side, 1)
        if not 0 < self.crop_scale <= 1:
            raise BadArgumentError(f"crop_scale must be in (0, 1], got {self.crop_scale!r}")
        if not 0 <= self.colour_jitter < 1:
            raise BadArgumentError(f"colour_jitter must be in [0, 1), got {self.colour_jitter!r}")
        if self.size > self.short_side:
            raise BadArgumentError(
                f"crop size {self.size} is larger than the resized short side {self.short_side}"
            )

    def step(self, video_fps: float | None = None) -> float:
        """Frames between consecutive clip frames: ``stride``, or ``video_fps / target_fps``."""
        if self.target_fps is None:
            return float(self.stride if self.stride is not None else 1)
        if video_fps is None:
            raise BadArgumentError(
                f"target_fps={self.target_fps} needs the video's fps to compute the frame step"
            )
        return _require_positive("video_fps", video_fps) / self.target_fps

    def offsets(self, video_fps: float | None = None) -> np.ndarray:
        """Clip frame offsets from the clip start: ``floor(i * step)``, int64, length T."""
        raw = np.arange(self.num_frames, dtype=np.float64) * self.step(video_fps)
        return np.floor(raw + _FLOOR_TOLERANCE).astype(np.int64)

    def span(self, video_fps: float | None = None) -> int:
        """Frames one clip covers, from its first to its last frame inclusive."""
        return int(self.offsets(video_fps)[-1]) + 1


@dataclass(frozen=True, eq=False)
class Clip:
    """Frame indices of one clip (read-only arrays).

    Attributes:
        indices: int64, shape (n,), frame indices into the video in clip order; may repeat.
        pad_mask: bool, shape (n,), True where the frame is padding (only the "pad" short
            policy sets it); the caller zeroes those frames after decoding. None means no padding.
    """

    indices: np.ndarray
    pad_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        indices = np.array(self.indices, dtype=np.int64)
        pad_mask = (
            np.zeros(indices.shape, dtype=bool)
            if self.pad_mask is None
            else np.array(self.pad_mask, dtype=bool)
        )
        if pad_mask.shape != indices.shape:
            raise BadArgumentError(
                f"pad_mask shape {pad_mask.shape} differs from indices shape {indices.shape}"
            )
        indices.setflags(write=False)
        pad_mask.setflags(write=False)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "pad_mask", pad_mask)

    @property
    def start(self) -> int:
        """First video frame the clip covers."""
        return int(self.indices.min())

    @property
    def end(self) -> int:
        """Last video frame the clip covers (inclusive)."""
        return int(self.indices.max())

    def times(self, frame_times: np.ndarray) -> np.ndarray:
        """Timestamps in seconds of the clip's frames, given the video's per-frame times."""
        return np.asarray(frame_times)[self.indices]

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def _check_frame_count(num_video_frames: object) -> int:
    if not _is_int(num_video_frames):
        raise BadArgumentError(f"the frame count must be an integer, got {num_video_frames!r}")
    if num_video_frames < 1:
        raise BadArgumentError(f"cannot sample a clip from a video with {num_video_frames} frames")
    return int(num_video_frames)


def apply_short_policy(raw_indices: np.ndarray, num_video_frames: int, policy: str) -> Clip:
    """Make a clip from indices that may run past the end of a short video.

    * loop: wrap, ``i mod L`` (the video plays again from its start).
    * repeat_last: clamp to the last frame, ``min(i, L - 1)``.
    * pad: clamp like repeat_last and mark the clamped positions in ``pad_mask``.
    * error: raise BadArgumentError naming both lengths.

    Indices already inside the video are untouched by every policy.
    """
    if policy not in SHORT_POLICIES:
        raise BadArgumentError(f"short_policy must be one of {', '.join(SHORT_POLICIES)}; got {policy!r}")
    raw_indices = np.asarray(raw_indices, dtype=np.int64)
    past_end = raw_indices >= num_video_frames
    if not past_end.any():
        return Clip(raw_indices)
    if policy == "error":
        raise BadArgumentError(
            f"the clip spans {int(raw_indices.max()) + 1} frames but the video has only "
            f"{num_video_frames} (short_policy='error')"
        )
    if policy == "loop":
        return Clip(raw_indices % num_video_frames)
    clamped = np.minimum(raw_indices, num_video_frames - 1)
    if policy == "repeat_last":
        return Clip(clamped)
    return Clip(clamped, pad_mask=past_end)


def _num_valid_starts(num_video_frames: int, offsets: np.ndarray) -> int:
    """``L - span + 1``: how many starts give a clip inside the video (<= 0 for a short video)."""
    return num_video_frames - int(offsets[-1])


def _clip_at(start: int, offsets: np.ndarray, num_video_frames: int, policy: str) -> Clip:
    return apply_short_policy(start + offsets, num_video_frames, policy)


def _part_centres(num_positions: int, num_parts: int) -> np.ndarray:
    """``floor((k + 1/2) * M / N)`` for k = 0 .. N-1, in exact integer arithmetic.

    Positions 0 .. M-1 are read as the unit cells of [0, M); that interval is cut into N equal
    parts and the cell holding each part's centre is returned (MMAction2's test-mode formula).
    """
    k = np.arange(num_parts, dtype=np.int64)
    return ((2 * k + 1) * num_positions) // (2 * num_parts)


def random_clip(
    num_video_frames: int,
    spec: ClipSpec,
    rng: np.random.Generator,
    video_fps: float | None = None,
) -> Clip:
    """One training clip: start drawn uniformly from the valid starts ``0 .. L - span``.

    A video shorter than the span starts at 0 and follows ``spec.short_policy``.
    """
    length = _check_frame_count(num_video_frames)
    offsets = spec.offsets(video_fps)
    num_starts = _num_valid_starts(length, offsets)
    start = int(rng.integers(0, num_starts)) if num_starts > 0 else 0
    return _clip_at(start, offsets, length, spec.short_policy)


def uniform_clips(num_video_frames: int, spec: ClipSpec, video_fps: float | None = None) -> list[Clip]:
    """``spec.num_clips`` test clips spread evenly over the video.

    With ``M = L - span + 1`` valid starts and ``N`` clips, clip ``k`` starts at
    ``floor((k + 1/2) * M / N)``: the valid-start range is split into N equal parts and each clip
    sits at the centre of its part (N = 1 gives the centre clip). A video shorter than the span
    gives N clips that all start at 0 (so every video yields the same number of views).
    """
    length = _check_frame_count(num_video_frames)
    offsets = spec.offsets(video_fps)
    num_starts = max(_num_valid_starts(length, offsets), 1)
    starts = _part_centres(num_starts, spec.num_clips)
    return [_clip_at(int(start), offsets, length, spec.short_policy) for start in starts]


def sliding_windows(
    num_video_frames: int,
    spec: ClipSpec,
    step: int,
    video_fps: float | None = None,
) -> list[Clip]:
    """Dense windows over a long video, ``step`` frames apart, covering it to its last frame.

    Windows start at ``0, step, 2*step, ...`` while they fit (``start <= L - span``). If the last
    of these does not end at frame ``L - 1``, one more window starting at ``L - span`` is added,
    so the final window always ends exactly at the last frame (it overlaps its predecessor by
    more than usual). A video shorter than the span gives one window at 0 under
    ``spec.short_policy``. Each clip's ``start`` and ``end`` give the frames it covers.
    """
    length = _check_frame_count(num_video_frames)
    step = _require_int("step", step, 1)
    offsets = spec.offsets(video_fps)
    last_start = _num_valid_starts(length, offsets) - 1
    if last_start < 0:
        return [_clip_at(0, offsets, length, spec.short_policy)]
    starts = list(range(0, last_start + 1, step))
    if starts[-1] != last_start:
        starts.append(last_start)
    return [_clip_at(start, offsets, length, spec.short_policy) for start in starts]


def tsn_segments(
    num_video_frames: int,
    num_segments: int,
    snippet_len: int = 1,
    rng: np.random.Generator | None = None,
    short_policy: str = "loop",
) -> Clip:
    """Temporal Segment Network sampling: one snippet of consecutive frames per segment.

    With ``M = L - snippet_len + 1`` valid snippet starts, segment ``k`` (of K) is the interval
    ``[k * M / K, (k + 1) * M / K)`` of starts. Training (``rng`` given): the snippet starts at
    ``floor(k * M / K + u * M / K)`` with ``u ~ U[0, 1)``, a uniform point of the segment.
    Testing (``rng`` None): at ``floor((k + 1/2) * M / K)``, the segment centre. When the video
    has fewer than K starts, neighbouring segments share frames. A video shorter than one
    snippet starts every snippet at 0 under ``short_policy``.

    Returns one clip of ``K * snippet_len`` indices, segment-major: snippet k is
    ``indices[k * snippet_len : (k + 1) * snippet_len]``.
    """
    length = _check_frame_count(num_video_frames)
    num_segments = _require_int("num_segments", num_segments, 1)
    snippet_len = _require_int("snippet_len", snippet_len, 1)
    num_starts = max(length - snippet_len + 1, 1)
    if rng is None:
        starts = _part_centres(num_starts, num_segments)
    else:
        segment_len = num_starts / num_segments
        points = (np.arange(num_segments) + rng.random(num_segments)) * segment_len
        # Float rounding may carry the last point onto M itself, one past the last valid start.
        starts = np.minimum(np.floor(points).astype(np.int64), num_starts - 1)
    raw = (starts[:, None] + np.arange(snippet_len, dtype=np.int64)[None, :]).reshape(-1)
    return apply_short_policy(raw, length, short_policy)
