"""The optical flow of a whole video: raw arrays, colour-wheel videos and PNG frames, and how well
the flow explains the video (warping error against zero flow)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidlearn.errors import BadArgumentError, VideoReadError
from vidlearn.files import atomic_path
from vidlearn.io import open_video, write_video
from vidlearn.motion.checks import WarpError, WarpTally
from vidlearn.motion.flow import DEFAULT_METHOD, FlowEstimator
from vidlearn.motion.picture import color_wheel, flow_to_rgb, with_legend
from vidlearn.progress import progress_bar


@dataclass(frozen=True)
class FlowVideoResult:
    """What ``flow_video`` wrote and measured."""

    pairs: int
    shape: tuple[int, int]
    max_magnitude: float
    warp: WarpError
    seconds: float
    video: Path | None
    raw: Path | None
    png_dir: Path | None

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else float("inf")


def _even(picture: np.ndarray) -> np.ndarray:
    """Pad to even height and width (H.264 in yuv420p needs them) with white, the colour of no motion."""
    height, width = picture.shape[:2]
    return np.pad(picture, ((0, height % 2), (0, width % 2), (0, 0)), constant_values=255)


def _scale_for(flows: np.ndarray) -> float:
    """The magnitude drawn fully saturated: the 99th percentile over (a sample of) all pixels, so
    that a few wild vectors do not wash out the picture."""
    sample = flows[:: max(1, len(flows) // 50)]
    magnitude = np.sqrt((sample.astype(np.float32) ** 2).sum(-1))
    return max(float(np.percentile(magnitude, 99)), 1e-3)


def compute_video_flow(
    path: str | Path,
    estimator: FlowEstimator,
    out: np.ndarray | None,
    size: int | None,
    max_frames: int | None,
    progress: bool,
) -> tuple[np.ndarray, WarpError]:
    """Flow of consecutive frames into ``out`` (or a new array), with the warping error accumulated."""
    with open_video(path, size=size) as video:
        frames = video.info.frames if max_frames is None else min(max_frames, video.info.frames)
        if frames < 2:
            raise VideoReadError(str(path), f"{frames} frame(s): optical flow needs at least 2")
        height, width = video.frame_shape[:2]
        if out is None:
            out = np.empty((frames - 1, height, width, 2), np.float32)
        previous = None
        tally = WarpTally()
        with progress_bar(frames - 1, f"flow ({estimator.method})", enabled=progress) as advance:
            for start, block in video.iter_chunks(32):
                for k, frame in enumerate(block, start):
                    if k >= frames:
                        break
                    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
                    if previous is not None:
                        out[k - 1] = estimator(previous, gray)
                        tally.add(previous, gray, out[k - 1])
                        advance()
                    previous = gray
    return out, tally.result()


def flow_video(
    path: str | Path,
    out: str | Path | None = None,
    method: str = DEFAULT_METHOD,
    size: int | None = None,
    side_by_side: bool = False,
    raw: str | Path | None = None,
    png_dir: str | Path | None = None,
    max_magnitude: float | None = None,
    max_frames: int | None = None,
    progress: bool = True,
) -> FlowVideoResult:
    """Compute the flow of a video and write any of: a colour-wheel video (``out``, MP4, with the
    legend wheel in a corner; ``side_by_side`` puts the original frame on its left), the raw flow
    (``raw``, ``.npy`` float32 ``(T-1) x H x W x 2``, x then y, pixels per frame), and PNG
    pictures with a ``legend.png`` (``png_dir``). ``size``: compute at this short side."""
    if out is None and raw is None and png_dir is None:
        raise BadArgumentError("nothing to write: give an output video, --raw FILE or --png DIR")
    estimator = FlowEstimator(method)
    with open_video(path, size=size) as video:
        frames = video.info.frames if max_frames is None else min(max_frames, video.info.frames)
        height, width = video.frame_shape[:2]
        fps = video.info.fps or 25.0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(raw) if raw is not None else Path(scratch) / "flow.npy"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".npy") as temporary:
            # On disk, not in memory: a long video's flow may not fit in RAM.
            store = np.lib.format.open_memmap(
                temporary, mode="w+", dtype=np.float32, shape=(max(frames - 1, 0), height, width, 2)
            )
            flows, warp = compute_video_flow(path, estimator, store, size, frames, progress)
            flows.flush()
            seconds = time.perf_counter() - started
            scale = max_magnitude or _scale_for(flows)
            if out is not None:
                write_video(out, _pictures(path, flows, scale, size, side_by_side), fps)
            if png_dir is not None:
                _write_pngs(Path(png_dir), _pictures(path, flows, scale, size, side_by_side))
            del flows, store
    return FlowVideoResult(
        frames - 1,
        (height, width),
        scale,
        warp,
        seconds,
        Path(out) if out is not None else None,
        Path(raw) if raw is not None else None,
        Path(png_dir) if png_dir is not None else None,
    )


def _pictures(path, flows: np.ndarray, scale: float, size: int | None, side_by_side: bool):
    """One picture per flow field; beside frame t when ``side_by_side``."""
    if not side_by_side:
        for flow in flows:
            yield _even(with_legend(flow_to_rgb(flow, scale)))
        return
    with open_video(path, size=size) as video:
        for start, block in video.iter_chunks(32):
            for k, frame in enumerate(block, start):
                if k >= len(flows):
                    return
                yield _even(np.concatenate([frame, with_legend(flow_to_rgb(flows[k], scale))], axis=1))


def _write_pngs(folder: Path, pictures) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _write_png(folder / "legend.png", color_wheel(128))
    for k, picture in enumerate(pictures):
        _write_png(folder / f"flow_{k:06d}.png", picture)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_path(path, suffix=".png") as temporary:
        if not cv2.imwrite(temporary, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise BadArgumentError(f"{path}: could not write the PNG")
