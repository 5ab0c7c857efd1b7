"""PyAV (FFmpeg) backend: opening files with clear errors, the frame index, frame-exact seeking.

A frame index ``k`` means the k-th *presented* frame of the first video stream: the k-th frame a
sequential decode outputs. Two ways of finding frame ``k`` without a sequential decode:

- ``pts`` mode (MP4/MOV, Matroska/WebM and most modern containers): the presentation timestamps
  of all frames are read from the packets alone (no decoding), sorted, and frame ``k`` is the one
  whose timestamp is the k-th smallest. Seeking goes to the keyframe before it and decodes forward.
- ``sequential`` mode (AVI with B-frames, and any stream whose packet timestamps are missing or
  repeat): AVI stores decode-order timestamps, which name presented frames only when the codec
  has no B-frames (decode order = presentation order; the decoder states this when it opens,
  before any decoding: UCF101's Xvid clips have none, HMDB51's have them). There, frames are
  counted while decoding from the start (the reader keeps its position, so ascending requests
  decode the file once).

Reading every packet to learn the timestamps costs a pass over the whole file (3 ms of a 77 ms clip
for a 2.8 MB, 377-frame MP4). It is skipped where the container's own index (MP4/MOV sample tables,
the AVI index, both read by FFmpeg when the file opens) already states every frame's presentation
time: for codecs that cannot reorder frames (intra-only ones, H.264 Baseline, MPEG-4 Simple Profile:
decode order is presentation order, so the index's decode timestamps are presentation timestamps),
when the index lists exactly the header's frame count within the file's bytes, and when the first
decoded frame carries the first listed timestamp. Anything else is scanned.

If a ``pts``-mode seek ever fails to land exactly on the wanted timestamp, the reader falls back
to sequential mode for that file, so a returned frame is always the k-th frame of a sequential decode.

In ``pts`` mode the decoder also skips the frames between a keyframe and a wanted frame that no
other frame references (FFmpeg's ``skip_frame = NONREF``, set packet by packet: a wanted frame is
always decoded). Every reference frame is still decoded exactly, so the wanted frames are
bit-identical to a full decode, and typical H.264 files decode 1.3-1.6x faster for a strided clip.
"""

from __future__ import annotations

import bisect
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import av
import cv2
import numpy as np
from av.stream import Discard
from av.video.reformatter import VideoReformatter

from vidlearn.errors import VideoReadError

T = TypeVar("T")

SEQUENTIAL_CONTAINERS = ("avi",)  # containers whose packet timestamps are in decode order
_INDEXED_CONTAINERS = ("mov", "avi")  # FFmpeg reads their complete sample table / index when opening them

# Options for the decoder that FFmpeg's avformat_find_stream_info opens on its own while opening a file.
# By default it decodes the first picture(s) to learn the pixel format, colour properties and aspect
# ratio, then discards them: most of the cost of opening an H.264 file (5.7 of 6.6 ms for a 1080p AVI,
# 2.9 of 4.1 ms for a 768x432 MP4). vidlearn needs none of those facts from there: its own decoder (a
# separate codec context that never sees these options) learns them from the pictures it decodes, the
# aspect ratio is read after the first frame, and the frame size, profile and reorder delay come from
# the headers. So the stream-info decoder reads headers only (``skip_frame=all``), except where a fact
# vidlearn does use could then be missing (``_header_facts_suffice``): then the file is opened again
# with that decoder decoding (without its in-loop deblocking filter, which changes none of the facts).
# Every shared sample video gives the same ``probe`` facts and the same pixels either way (tested).
# PyAV passes ``options`` to that decoder of every stream (and to avformat_open_input, which leaves an
# option it does not know unused).
_HEADER_ONLY_STREAM_INFO = {"skip_frame": "all"}
_DECODED_STREAM_INFO = {"skip_loop_filter": "all"}

# Codecs whose profile forbids reordering frames (no B-frames): their decode order is presentation order.
_IN_ORDER_PROFILES = {"h264": ("Baseline", "Constrained Baseline"), "mpeg4": ("Simple Profile",)}


def cannot_reorder(context: av.codec.context.CodecContext) -> bool:
    """Whether the stream's codec (intra-only) or profile rules out B-frames, whatever its headers say."""
    return context.codec.intra_only or context.profile in _IN_ORDER_PROFILES.get(context.name, ())


def open_container(path: str | Path) -> av.container.InputContainer:
    """Open ``path`` for reading, turning every FFmpeg failure into a ``VideoReadError``."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise VideoReadError(path, "file does not exist") from None
    except OSError as exc:
        raise VideoReadError(path, f"cannot open: {exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoReadError(path, "is a directory, not a video file")
    if st.st_size == 0:
        raise VideoReadError(path, "empty file (0 bytes)")
    container = _open(path, _HEADER_ONLY_STREAM_INFO)
    if not _header_facts_suffice(container):
        container.close()
        container = _open(path, _DECODED_STREAM_INFO)
    return container


def _open(path: Path, stream_info_options: dict[str, str]) -> av.container.InputContainer:
    try:
        container = av.open(str(path), options=stream_info_options, metadata_errors="ignore")
    except av.error.InvalidDataError as exc:
        raise VideoReadError(
            path, f"not a readable video (corrupt, truncated or not a video file: {exc.strerror})"
        ) from None
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoReadError(path, f"cannot open: {exc}") from None
    if not container.streams.video:
        others = f"{len(container.streams.audio)} audio, {len(container.streams.subtitles)} subtitle"
        container.close()
        raise VideoReadError(path, f"no video stream (it has {others} stream(s))")
    return container


def _header_facts_suffice(container: av.container.InputContainer) -> bool:
    """Whether a header-only open told everything vidlearn uses: the frame size, and in a decode-order
    container (AVI) whether frames reorder. Headers may leave a reorder delay unstated that decoding
    the first pictures reveals; "no B-frames" is taken from headers only where the profile rules them out."""
    context = container.streams.video[0].codec_context
    if context.width <= 0 or context.height <= 0:
        return False
    decode_order = container.format.name in SEQUENTIAL_CONTAINERS
    return not decode_order or bool(context.has_b_frames) or cannot_reorder(context)


@dataclass(frozen=True)
class FrameIndex:
    """Where every presented frame of a video stream is, found without decoding when possible.

    ``pts`` holds the sorted presentation timestamps (stream time base) in ``pts`` mode and is empty
    in ``sequential`` mode; ``keyframe_pts`` the sorted timestamps of keyframes. ``from_container``:
    read from the container's index (``index_from_container``) rather than from the packets.
    """

    mode: str
    pts: tuple[int, ...]
    keyframe_pts: tuple[int, ...]
    packet_count: int
    from_container: bool = False


def index_from_container(container: av.container.InputContainer) -> FrameIndex | None:
    """The frame index from the container's own index, without reading packets, where it is exact; else None."""
    stream = container.streams.video[0]
    context = stream.codec_context
    if container.format.name.split(",")[0] not in _INDEXED_CONTAINERS or context.has_b_frames:
        return None
    if not cannot_reorder(context):
        return None
    entries = stream.index_entries
    # A fragmented MP4 lists only its first fragment when it opens, a truncated file more than it holds,
    # an edit list can mark frames to discard: the packets tell those cases apart, so scan them.
    if not entries or len(entries) != stream.frames:
        return None
    pts, keyframes, end = [], [], 0
    for entry in entries:
        if entry.size <= 0 or entry.is_discard:
            return None
        pts.append(entry.timestamp)
        if entry.is_keyframe:
            keyframes.append(entry.timestamp)
        end = max(end, entry.pos + entry.size)
    if end > container.size or any(b <= a for a, b in zip(pts, pts[1:])) or not keyframes:
        return None
    return FrameIndex("pts", tuple(pts), tuple(keyframes), len(pts), from_container=True)


def scan_packets(container: av.container.InputContainer, path: str | Path) -> FrameIndex:
    """Demux (not decode) the first video stream and build its frame index."""
    stream = container.streams.video[0]
    pts: list[int] = []
    keyframes: list[int] = []
    missing_pts = False
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end, and empty AVI chunks
                continue
            if packet.pts is None:
                missing_pts = True
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
    except av.error.FFmpegError as exc:
        raise VideoReadError(path, f"corrupt or truncated data while reading packets: {exc}") from None
    rewind(container)
    sorted_pts = sorted(pts)
    decode_order_pts = container.format.name in SEQUENTIAL_CONTAINERS and bool(
        stream.codec_context.has_b_frames
    )
    sequential = decode_order_pts or missing_pts or len(set(sorted_pts)) != len(sorted_pts)
    if sequential:
        return FrameIndex("sequential", (), (), len(pts))
    return FrameIndex("pts", tuple(sorted_pts), tuple(sorted(keyframes)), len(pts))


def rewind(container: av.container.InputContainer) -> None:
    """Back to the first frame of the first video stream."""
    container.seek(0, stream=container.streams.video[0], backward=True, any_frame=False)


def display_rotation(frame: av.VideoFrame) -> int:
    """Counter-clockwise rotation in degrees (0, 90, 180, 270) to apply so the frame displays upright."""
    return int(round(getattr(frame, "rotation", 0) or 0)) % 360


@dataclass(frozen=True)
class OutputGeometry:
    """How decoded frames are converted: size to ask swscale for (before rotation) and the rotation.

    One reformatter is kept for all frames: it caches swscale's context, which ``frame.to_ndarray(width=...)``
    would rebuild for every frame (measured 3x slower for a resize, same pixels).
    """

    decode_width: int
    decode_height: int
    rotation: int  # counter-clockwise degrees
    threads: int = 0  # swscale threads, 0 = one per core (its default)
    reformatter: VideoReformatter = field(default_factory=VideoReformatter, compare=False, repr=False)

    @staticmethod
    def plan(
        stored_width: int,
        stored_height: int,
        rotation: int,
        size: int | tuple[int, int] | None,
        threads: int = 0,
    ) -> OutputGeometry:
        """Plan the conversion for a requested ``size`` given in display orientation.

        ``size`` is ``None`` (as stored), an int (the short side, see ``short_side_size``) or
        ``(height, width)`` exactly. ``threads``: swscale threads (0 = one per core). Its slices are
        independent, so the pixels do not depend on it; with 1, no thread pool is started per reader
        (measured 0.1-0.7 ms per open on a 2-core machine, more when the other core is busy).
        """
        quarter_turn = rotation in (90, 270)
        disp_w, disp_h = (stored_height, stored_width) if quarter_turn else (stored_width, stored_height)
        if size is None:
            out_h, out_w = disp_h, disp_w
        elif isinstance(size, int):
            out_h, out_w = short_side_size(disp_h, disp_w, size)
        else:
            out_h, out_w = int(size[0]), int(size[1])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"output size must be positive, got {out_h}x{out_w}")
        dec_w, dec_h = (out_h, out_w) if quarter_turn else (out_w, out_h)
        return OutputGeometry(dec_w, dec_h, rotation, threads)

    def to_array(self, frame: av.VideoFrame) -> np.ndarray:
        """One decoded frame as uint8 H x W x 3 RGB, resized and turned upright."""
        rgb = self.reformatter.reformat(
            frame,
            width=self.decode_width,
            height=self.decode_height,
            format="rgb24",
            interpolation="BILINEAR",
            threads=self.threads,
        ).to_ndarray()
        if self.rotation:
            rgb = cv2.rotate(
                rgb, _CV2_ROTATIONS[self.rotation]
            )  # = np.rot90(rgb, k), 20x faster than copying it
        return rgb


_CV2_ROTATIONS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


def short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the shorter side equal to ``short_side`` and the aspect ratio kept.

    The long side is ``floor(long * short_side / short)`` in exact integer arithmetic, the rule of
    torchvision's ``resize`` and PySlowFast: 240 x 320 with short side 128 gives 128 x 170.
    """
    if height <= width:
        return short_side, max(1, width * short_side // height)
    return max(1, height * short_side // width), short_side


class FrameDecoder:
    """Decodes frames by index from one open container, keeping its position between calls."""

    def __init__(self, path: str | Path, threads: int = 0):
        self.path = str(path)
        self._container = open_container(path)
        self.stream = self._container.streams.video[0]
        self._discard_other_streams()
        self.index = index_from_container(self._container) or scan_packets(self._container, path)
        self._threads = threads
        self._configure_threads()
        self._frames: Iterator[av.VideoFrame] | None = None
        self._next_seq = 0  # sequential mode: index of the next frame the iterator yields
        self._last_pts: int | None = None  # pts mode: timestamp of the last frame yielded
        self._last_frame: av.VideoFrame | None = None  # ... and that frame, for a request of the same one
        self._wanted_pts: frozenset[int] = frozenset()  # pts mode: frames the current request needs

    def _configure_threads(self) -> None:
        ctx = self.stream.codec_context
        ctx.thread_type = "AUTO"
        ctx.thread_count = self._threads

    def _discard_other_streams(self) -> None:
        """Have the demuxer skip the packets of every other stream (audio, subtitles) instead of reading
        them and handing them over to be dropped: the packet scan of a WebM file with Vorbis audio took
        4.4 ms with them, 2.7 ms without, and every decode reads fewer bytes."""
        for stream in self._container.streams:
            if stream.index != self.stream.index:
                stream.discard = Discard.all

    def close(self) -> None:
        self._frames = None
        self._container.close()

    # -- sequential access -------------------------------------------------
    def _restart(self) -> None:
        rewind(self._container)
        self._frames = self._decode_stream()
        self._next_seq = 0
        self._last_pts, self._last_frame = None, None

    def _decode_stream(self) -> Iterator[av.VideoFrame]:
        context = self.stream.codec_context
        try:
            for packet in self._container.demux(self.stream):
                if self._wanted_pts:
                    context.skip_frame = (
                        "DEFAULT" if packet.pts is None or packet.pts in self._wanted_pts else "NONREF"
                    )
                yield from packet.decode()
        except av.error.EOFError:
            return
        except av.error.FFmpegError as exc:
            raise VideoReadError(self.path, f"corrupt or truncated data while decoding: {exc}") from None
        finally:
            context.skip_frame = "DEFAULT"

    def first_frame(self) -> av.VideoFrame | None:
        """The first presented frame (None for a stream without frames); checks an index read from the container."""
        first = next(self.iter_frames(), None)
        if self.index.from_container and (first is None or first.pts != self.index.pts[0]):
            # The index's timestamps are not the frames' (e.g. a constant composition offset): scan the packets.
            self._frames = None
            rewind(self._container)
            self.index = scan_packets(self._container, self.path)
            first = next(self.iter_frames(), None)
        return first

    def iter_frames(self) -> Iterator[av.VideoFrame]:
        """Every presented frame from the start, in order."""
        self._restart()
        assert self._frames is not None
        self._wanted_pts = frozenset()  # every frame is wanted
        for frame in self._frames:
            self._next_seq += 1
            self._last_pts, self._last_frame = frame.pts, frame  # a request just after this decodes on
            yield frame

    def count_frames(self) -> int:
        """Frames a sequential decode outputs (decodes the whole stream in sequential mode)."""
        if self.index.mode == "pts":
            return len(self.index.pts)
        return sum(1 for _ in self.iter_frames())

    # -- random access -----------------------------------------------------
    def frames_at(self, indices: list[int], convert: Callable[[av.VideoFrame], T]) -> dict[int, T]:
        """``convert(frame)`` for the frames at the given (unique, ascending) indices.

        Each wanted frame is converted as soon as it is decoded, so the decoder can reuse its picture
        buffer: keeping 16 full-size decoded frames until the end of a clip made the decoder's buffer
        pool grow by fresh allocations (measured 2-3% slower per 1080p clip).
        """
        if self.index.mode == "pts":
            try:
                return self._frames_by_pts(indices, convert)
            except _SeekMissed:
                # The packet timestamps did not describe the decoder's output: count instead, from the start.
                self.index = FrameIndex("sequential", (), (), self.index.packet_count)
                self._frames = None
        self._wanted_pts = frozenset()  # counting needs every frame decoded
        return self._frames_by_counting(indices, convert)

    def _frames_by_counting(self, indices: list[int], convert: Callable[[av.VideoFrame], T]) -> dict[int, T]:
        if self._frames is None or indices[0] < self._next_seq:
            self._restart()
        assert self._frames is not None
        wanted = set(indices)
        found: dict[int, T] = {}
        for frame in self._frames:
            k = self._next_seq
            self._next_seq += 1
            if k in wanted:
                found[k] = convert(frame)
                if len(found) == len(wanted):
                    break
        return found

    def _frames_by_pts(self, indices: list[int], convert: Callable[[av.VideoFrame], T]) -> dict[int, T]:
        found: dict[int, T] = {}
        self._wanted_pts = frozenset(self.index.pts[k] for k in indices)
        for k in indices:
            target = self.index.pts[k]
            if self._last_frame is not None and self._last_pts == target:
                found[k] = convert(self._last_frame)
                continue
            if self._must_seek(target):
                self._seek(target)
            assert self._frames is not None
            for frame in self._frames:
                if frame.pts is None:
                    raise _SeekMissed
                self._last_pts, self._last_frame = frame.pts, frame
                if frame.pts == target:
                    found[k] = convert(frame)
                    break
                if frame.pts > target:
                    raise _SeekMissed
            else:
                raise _SeekMissed
        return found

    def _must_seek(self, target: int) -> bool:
        """Seek unless the target lies ahead with no keyframe between: decoding on is then cheaper."""
        if self._frames is None or self._last_pts is None or target <= self._last_pts:
            return True
        keys = self.index.keyframe_pts
        next_key = bisect.bisect_right(keys, self._last_pts)
        return next_key < len(keys) and keys[next_key] <= target

    def _seek(self, target: int) -> None:
        try:
            self._container.seek(target, stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            raise VideoReadError(self.path, f"cannot seek: {exc}") from None
        self._frames = self._decode_stream()
        self._last_pts, self._last_frame = None, None


class _SeekMissed(Exception):
    """A seek did not reach the exact timestamp the packet index promised."""
