"""A dataset's optical flow, computed once and stored compactly: one uint8 array per video.

Flow is quantised as two-stream codebases do (denseflow, TSN, MMAction2): each component is
clipped to ``[-bound, bound]`` pixels and mapped linearly onto 0..255, so a value is stored to
within ``bound / 255`` pixels (0.08 px at the default bound 20). Unlike their JPEG images the
arrays are lossless beyond that rounding and are read by memory mapping: a clip touches only
its own frames.

Layout of a store folder::

    flow.json                          method, parameters, short side, step, bound, version
    <video path relative to the dataset root>.flow.npy
                                       uint8 (F - step) x H x W x 2: entry k is the flow from
                                       frame k to frame k + step, channel 0 dx, channel 1 dy

Extraction is resumable (a video's file appears whole, by atomic rename, or not at all; a rerun
skips finished videos), parallel over processes, and shardable over machines with ``shard=(i, n)``:
shard i takes every n-th video of the sorted list, and each video's flow depends only on the
video, so the union of the shards equals a one-machine run byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vidlearn.data.index import cache_dir
from vidlearn.errors import BadArgumentError, VidlearnError, VideoReadError
from vidlearn.files import atomic_path, write_text_atomic
from vidlearn.io import open_video
from vidlearn.motion.flow import DEFAULT_METHOD, FlowEstimator, flow_params
from vidlearn.progress import progress_bar

STORE_VERSION = 1
DEFAULT_BOUND = 20.0
MANIFEST = "flow.json"
SUFFIX = ".flow.npy"


def quantize(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Float flow (pixels) -> uint8: ``round((clip(f, -bound, bound) + bound) * 255 / (2 * bound))``."""
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2.0 * bound))
    return np.rint(scaled).astype(np.uint8)


def dequantize(stored: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """uint8 -> float32 flow in pixels, the inverse of :func:`quantize` up to ``bound / 255``."""
    return stored.astype(np.float32) * np.float32(2.0 * bound / 255.0) - np.float32(bound)


@dataclass(frozen=True)
class FlowSettings:
    """How a store's flow was computed: method and parameters, frames decoded at ``short_side``,
    flow from frame k to frame k + ``step``, quantised with ``bound``."""

    method: str = DEFAULT_METHOD
    params: dict = field(default_factory=dict)
    short_side: int = 128
    step: int = 1
    bound: float = DEFAULT_BOUND
    version: int = STORE_VERSION

    def __post_init__(self) -> None:
        flow_params(self.method, **self.params)  # validates the method and parameter names
        if self.short_side < 8 or self.step < 1 or self.bound <= 0:
            raise BadArgumentError(
                f"flow store needs short_side >= 8, step >= 1 and bound > 0, got {self.short_side}, {self.step}, {self.bound}"
            )

    def estimator(self) -> FlowEstimator:
        return FlowEstimator(self.method, flow_params(self.method, **self.params))


def default_store_folder(dataset_root: str | Path, settings: FlowSettings) -> Path:
    """``$VIDLEARN_CACHE/flow/<dataset name>-<hash of its path>/<method>-s<short side>-step<k>``
    (the cache default is ``~/.cache/vidlearn``): datasets may live on read-only storage."""
    root = Path(dataset_root).absolute()
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return cache_dir().parent / "flow" / f"{root.name}-{digest}" / f"{settings.method}-s{settings.short_side}-step{settings.step}"


class FlowStore:
    """Read access to a store folder for the videos of the dataset at ``dataset_root``."""

    def __init__(self, folder: str | Path, dataset_root: str | Path):
        self.folder = Path(folder)
        self.dataset_root = Path(dataset_root).absolute()
        manifest = self.folder / MANIFEST
        if not manifest.exists():
            raise BadArgumentError(f"{self.folder}: not a flow store (no {MANIFEST}); create it with `vidlearn flow-extract`")
        try:
            self.settings = FlowSettings(**json.loads(manifest.read_text()))
        except (ValueError, TypeError) as exc:
            raise BadArgumentError(f"{manifest}: unreadable flow store manifest ({exc})") from exc
        if self.settings.version != STORE_VERSION:
            raise BadArgumentError(f"{manifest}: store version {self.settings.version}, this vidlearn reads {STORE_VERSION}; re-extract")

    def path_for(self, video: str | Path) -> Path:
        relative = os.path.relpath(Path(video).absolute(), self.dataset_root)
        if relative.startswith(".."):
            raise BadArgumentError(f"{video} is not inside the dataset root {self.dataset_root}")
        return self.folder / (relative + SUFFIX)

    def has(self, video: str | Path) -> bool:
        return self.path_for(video).exists()

    def read(self, video: str | Path, pairs: np.ndarray) -> np.ndarray:
        """Flow (float32 pixels, ``N x H x W x 2``) from frame k to k + step for each k in ``pairs``."""
        path = self.path_for(video)
        if not path.exists():
            raise VideoReadError(str(video), f"no flow in the store {self.folder}; run `vidlearn flow-extract` first")
        stored = np.load(path, mmap_mode="r")
        pairs = np.asarray(pairs, dtype=np.int64)
        bad = pairs[(pairs < 0) | (pairs >= len(stored))]
        if bad.size:
            raise VideoReadError(str(video), f"flow pair {int(bad[0])} out of range (the store holds {len(stored)})")
        return dequantize(np.asarray(stored[pairs]), self.settings.bound)


@dataclass
class ExtractionReport:
    """What one ``extract_flow`` call did."""

    store: Path
    extracted: int = 0
    already_done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes_written: int = 0

    def summary(self) -> str:
        text = (
            f"flow store {self.store}: {self.extracted} videos extracted "
            f"({self.bytes_written / 2**20:.1f} MiB), {self.already_done} already done, {len(self.failed)} failed"
        )
        return text + "".join(f"\n  failed: {path}: {reason}" for path, reason in self.failed)


def open_or_create_store(folder: str | Path, settings: FlowSettings, dataset_root: str | Path) -> FlowStore:
    """The store at ``folder``, created with ``settings`` if new; an existing store made with other
    settings is an error (mixing settings would give a model inconsistent inputs)."""
    folder = Path(folder)
    manifest = folder / MANIFEST
    if manifest.exists():
        store = FlowStore(folder, dataset_root)
        if store.settings != settings:
            raise BadArgumentError(
                f"{folder} holds flow made with {asdict(store.settings)}; asked for {asdict(settings)}: use another --out"
            )
        return store
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(manifest, json.dumps(asdict(settings), indent=2) + "\n")
    return FlowStore(folder, dataset_root)


def shard_of(videos: Iterable[str], shard: tuple[int, int]) -> list[str]:
    """Shard ``i`` of ``n`` (0-based) of the sorted, de-duplicated videos: every n-th from the i-th."""
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise BadArgumentError(f"shard must be i/n with 0 <= i < n, got {index}/{count}")
    return sorted(set(videos))[index::count]


def _extract_one(task: tuple[str, str, str, FlowSettings]) -> tuple[str, str | None, int]:
    video, target, dataset_root, settings = task
    cv2.setNumThreads(1)  # one process per core already; also keeps results independent of threads
    try:
        with open_video(video, size=settings.short_side, threads=1) as reader:
            frames = reader.info.frames
            if frames <= settings.step:
                raise VideoReadError(video, f"{frames} frame(s): flow with step {settings.step} needs at least {settings.step + 1}")
            height, width = reader.frame_shape[:2]
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target, suffix=".npy") as temporary:
                out = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.uint8, shape=(frames - settings.step, height, width, 2))
                count = 0
                for count, flow in enumerate(settings.estimator().stream((block for _, block in reader.iter_chunks(32)), settings.step), 1):
                    out[count - 1] = quantize(flow, settings.bound)
                if count != len(out):
                    raise VideoReadError(video, f"decoded {count + settings.step} frames, expected {frames}")
                out.flush()
                del out
        return video, None, Path(target).stat().st_size
    except VidlearnError as exc:
        return video, str(exc), 0


def extract_flow(
    videos: Iterable[str],
    folder: str | Path,
    dataset_root: str | Path,
    settings: FlowSettings = FlowSettings(),
    workers: int | None = None,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> ExtractionReport:
    """Compute and store the flow of ``videos`` (paths inside ``dataset_root``) in ``folder``.

    Uses ``workers`` processes (default: one per core). Videos whose file already exists are
    skipped; a video that cannot be decoded is reported in the result and does not stop the run.
    """
    store = open_or_create_store(folder, settings, dataset_root)
    report = ExtractionReport(store.folder)
    todo = []
    for video in shard_of(videos, shard):
        if store.has(video):
            report.already_done += 1
        else:
            todo.append((video, str(store.path_for(video)), str(store.dataset_root), settings))
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    with progress_bar(len(todo), f"flow ({settings.method})", enabled=progress) as advance:
        if workers == 1:
            results = map(_extract_one, todo)
            _collect(results, report, advance)
        else:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                _collect(pool.imap_unordered(_extract_one, todo), report, advance)
    return report


def _collect(results, report: ExtractionReport, advance) -> None:
    for video, error, size in results:
        if error is None:
            report.extracted += 1
            report.bytes_written += size
        else:
            report.failed.append((video, error))
        advance(text=Path(video).name)
