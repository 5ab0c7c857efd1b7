"""Row 1 of `make bench`: training clips per second from the original files, vidlearn against peers.

The work is one training read, as a DataLoader worker does it for one item: open the file (a new
decoder per clip), take a random clip of 16 frames at stride 4, resize so the short side is 128
while decoding, crop a random 112 x 112 window, and hand over a uint8 ``T x 112 x 112 x 3`` tensor.
Every reader gets the same clips (indices drawn once by vidlearn's sampler, which also pads clips
of videos shorter than the span), the same known frame count and target size (a dataset index has
probed them once), and one thread for decoding and one for resizing (a loader runs one worker per
core; PyAV's resize would otherwise start a thread per core for every frame, which a single reader
on an idle machine gains from on 1080p frames and a loader worker on a busy one does not).

Readers:
  vidlearn    vidlearn.io.open_video(size=128, threads=1).get(indices)
  decord      decord.VideoReader(width, height, num_threads=1).get_batch(indices) (MMAction2's default)
  torchcodec  VideoDecoder(seek_mode="approximate", transforms=[Resize], 1 thread).get_frames_at(indices)
  pyav        plain PyAV: seek to the clip's first time, decode forward, to_ndarray(width, height, threads=1),
              np.rot90 by the frame's display rotation (upright frames, as every other reader but decord)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
from harness import Context, Row, compare, timed_rate

from vidlearn.data.samplers import ClipSpec, random_clip
from vidlearn.data.transforms import random_crop, short_side_shape
from vidlearn.io import open_video, probe

SPEC = ClipSpec(num_frames=16, stride=4, size=112, short_side=128, short_policy="loop")
TINY_SPEC = ClipSpec(num_frames=4, stride=2, size=32, short_side=40, short_policy="loop")
GOAL_ORIGINALS = ">= 1.0"

Reader = Callable[[str, np.ndarray, tuple[int, int], int], np.ndarray]


# -- the readers: (path, indices, (height, width) after resize, frame count) -> uint8 N x H x W x 3
def read_vidlearn(path: str, indices: np.ndarray, shape: tuple[int, int], frames: int) -> np.ndarray:
    with open_video(path, size=shape, threads=1, frame_count=frames) as video:
        return video.get(indices)


def read_decord(path: str, indices: np.ndarray, shape: tuple[int, int], frames: int) -> np.ndarray:
    import decord

    reader = decord.VideoReader(path, ctx=decord.cpu(0), width=shape[1], height=shape[0], num_threads=1)
    return reader.get_batch(np.minimum(indices, len(reader) - 1).tolist()).asnumpy()


def read_torchcodec(path: str, indices: np.ndarray, shape: tuple[int, int], frames: int) -> np.ndarray:
    from torchcodec.decoders import VideoDecoder
    from torchcodec.transforms import Resize

    decoder = VideoDecoder(
        path,
        seek_mode="approximate",
        dimension_order="NHWC",
        num_ffmpeg_threads=1,
        transforms=[Resize(shape)],
    )
    return decoder.get_frames_at(np.minimum(indices, len(decoder) - 1).tolist()).data.numpy()


def read_pyav(path: str, indices: np.ndarray, shape: tuple[int, int], frames: int) -> np.ndarray:
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        rate = float(stream.average_rate or stream.guessed_rate)
        start_time = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        wanted = sorted(set(indices.tolist()))
        container.seek(
            int((start_time + wanted[0] / rate) / stream.time_base),
            stream=stream,
            backward=True,
            any_frame=False,
        )
        found: dict[int, np.ndarray] = {}
        last = None
        k = -1  # frames without a time count on from the previous one
        for frame in container.decode(stream):
            k = (
                round((float(frame.pts * stream.time_base) - start_time) * rate)
                if frame.pts is not None
                else k + 1
            )
            if k in wanted and k not in found:
                found[k] = _upright(frame, shape)
            last = frame
            if k >= wanted[-1]:
                break
        filler = found.get(max(found)) if found else _upright(last, shape)
        return np.stack([found.get(k, filler) for k in indices.tolist()])


def _upright(frame: av.VideoFrame, shape: tuple[int, int]) -> np.ndarray:
    """``frame`` resized to ``shape`` (display orientation) and turned upright by its display rotation,
    as a PyAV user who wants the same frames as the other readers writes it (``np.rot90``)."""
    turns = round(getattr(frame, "rotation", 0) or 0) % 360 // 90
    height, width = shape if turns % 2 == 0 else shape[::-1]
    array = frame.to_ndarray(format="rgb24", width=width, height=height, threads=1)
    return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


PEERS: dict[str, Reader] = {"decord": read_decord, "torchcodec": read_torchcodec, "pyav": read_pyav}


def available_peers() -> dict[str, Reader]:
    """The peers that import here (decord and torchcodec live in the bench environment only)."""
    peers = {}
    for name, reader in PEERS.items():
        try:
            __import__({"decord": "decord", "torchcodec": "torchcodec.decoders", "pyav": "av"}[name])
        except Exception:  # noqa: BLE001 - missing, or an ABI mismatch: not a peer here
            continue
        peers[name] = reader
    return peers


# -- one file ------------------------------------------------------------------------------------
class ClipJob:
    """The clips one measurement reads from one or more files, and how to read them."""

    def __init__(self, paths: list[Path], spec: ClipSpec, clips_per_measure: int, seed: int = 0):
        self.spec = spec
        rng = np.random.default_rng(seed)
        self.items = []  # (path, indices, shape, frames, crop origin rng seed)
        for k in range(clips_per_measure):
            path = str(paths[k % len(paths)])
            info = probe(path)
            clip = random_clip(info.frames, spec, rng, video_fps=info.fps)
            shape = short_side_shape(info.height, info.width, spec.short_side)
            self.items.append((path, clip.indices, shape, info.frames, int(rng.integers(2**31))))

    def run(self, reader: Reader) -> int:
        for path, indices, shape, frames, crop_seed in self.items:
            frames_hw3 = reader(path, indices, shape, frames)
            clip = random_crop(torch.from_numpy(frames_hw3), self.spec.size, np.random.default_rng(crop_seed))
            assert clip.dtype == torch.uint8 and clip.shape == (
                len(indices),
                self.spec.size,
                self.spec.size,
                3,
            ), clip.shape
        return len(self.items)


def rows_for(
    name: str, job: ClipJob, ours: Reader, peers: dict[str, Reader], ctx: Context, goal: str, group: str
) -> list[Row]:
    """One row per peer that can read the file; a peer that fails is named in the rows' notes."""
    rows, failures = [], []
    for peer_name, peer in peers.items():
        try:
            job.run(peer)
        except Exception as exc:  # noqa: BLE001 - a peer's failure on a real file is a result too
            failures.append(f"{peer_name} fails: {str(exc).strip().splitlines()[0][:120]}")
            ctx.log(f"    {failures[-1]}")
            continue
        row = compare(
            name,
            timed_rate(lambda job=job: job.run(ours)),
            timed_rate(lambda job=job, peer=peer: job.run(peer)),
            unit="clips/s",
            goal=goal,
            peer_name=peer_name,
            repeats=ctx.repeats,
            group=group,
        )
        ctx.log(
            f"    vs {peer_name}: {row.ours:.1f} vs {row.peer:.1f} clips/s, ratio {row.ratio:.2f} ({row.ratio_min:.2f}-{row.ratio_max:.2f})"
        )
        rows.append(row)
    for row in rows:
        row.note = "; ".join(failures)
    return rows


def run(ctx: Context) -> list[Row]:
    spec = TINY_SPEC if ctx.tiny else SPEC
    clips = 2 if ctx.tiny else 8
    peers = available_peers()
    ctx.log(f"clip sampling: peers {', '.join(peers)}; {clips} clips per measurement, {ctx.repeats} repeats")
    rows: list[Row] = []
    for path in ctx.videos:
        ctx.log(f"  {path.name}")
        job = ClipJob([path], spec, clips)
        rows += rows_for(path.name, job, read_vidlearn, peers, ctx, GOAL_ORIGINALS, "clips")
    if ctx.synth_root is not None:
        videos = sorted((ctx.synth_root / "clips").rglob("*.mp4"))
        ctx.log(f"  SynthActions ({len(videos)} videos)")
        job = ClipJob(videos, spec, max(clips, min(len(videos), 32)))
        rows += rows_for("SynthActions (all videos)", job, read_vidlearn, peers, ctx, GOAL_ORIGINALS, "clips")
    return rows
