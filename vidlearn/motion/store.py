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

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vidlearn.data.stores import (
    JobReport,
    dataset_cache_folder,
    open_or_create,
    pending,
    read_manifest,
    run_jobs,
    shard_of,  # noqa: F401 (importable from here, where it used to live)
    store_path,
)
from vidlearn.errors import BadArgumentError, VideoReadError
from vidlearn.files import atomic_path
from vidlearn.io import open_video
from vidlearn.motion.flow import DEFAULT_METHOD, FlowEstimator, flow_params

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
    return (
        dataset_cache_folder("flow", dataset_root)
        / f"{settings.method}-s{settings.short_side}-step{settings.step}"
    )


class FlowStore:
    """Read access to a store folder for the videos of the dataset at ``dataset_root``."""

    def __init__(self, folder: str | Path, dataset_root: str | Path):
        self.folder = Path(folder)
        self.dataset_root = Path(dataset_root).absolute()
        self.settings = read_manifest(
            self.folder, MANIFEST, FlowSettings, "flow store", "vidlearn flow-extract"
        )

    def path_for(self, video: str | Path) -> Path:
        return store_path(self.folder, self.dataset_root, video, SUFFIX)

    def has(self, video: str | Path) -> bool:
        return self.path_for(video).exists()

    def read(self, video: str | Path, pairs: np.ndarray) -> np.ndarray:
        """Flow (float32 pixels, ``N x H x W x 2``) from frame k to k + step for each k in ``pairs``."""
        path = self.path_for(video)
        if not path.exists():
            raise VideoReadError(
                str(video), f"no flow in the store {self.folder}; run `vidlearn flow-extract` first"
            )
        stored = np.load(path, mmap_mode="r")
        pairs = np.asarray(pairs, dtype=np.int64)
        bad = pairs[(pairs < 0) | (pairs >= len(stored))]
        if bad.size:
            raise VideoReadError(
                str(video), f"flow pair {int(bad[0])} out of range (the store holds {len(stored)})"
            )
        return dequantize(np.asarray(stored[pairs]), self.settings.bound)


@dataclass
class ExtractionReport(JobReport):
    """What one ``extract_flow`` call did (``store`` and ``extracted`` name ``folder`` and ``done``)."""

    @property
    def store(self) -> Path:
        return self.folder

    @property
    def extracted(self) -> int:
        return self.done

    def summary(self) -> str:
        return (
            f"flow store {self.store}: {self.extracted} videos extracted "
            f"({self.bytes_written / 2**20:.1f} MiB), {self.already_done} already done, {len(self.failed)} failed"
        ) + self.failures()


def open_or_create_store(folder: str | Path, settings: FlowSettings, dataset_root: str | Path) -> FlowStore:
    """The store at ``folder``, created with ``settings`` if new; an existing store made with other
    settings is an error (mixing settings would give a model inconsistent inputs)."""
    return open_or_create(Path(folder), MANIFEST, settings, lambda: FlowStore(folder, dataset_root))


def _extract_one(task: tuple[str, str, FlowSettings]) -> int:
    video, target, settings = task
    cv2.setNumThreads(1)  # one process per core already; also keeps results independent of threads
    with open_video(video, size=settings.short_side, threads=1) as reader:
        frames = reader.info.frames
        if frames <= settings.step:
            raise VideoReadError(
                video, f"{frames} frame(s): flow with step {settings.step} needs at least {settings.step + 1}"
            )
        height, width = reader.frame_shape[:2]
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, suffix=".npy") as temporary:
            out = np.lib.format.open_memmap(
                temporary, mode="w+", dtype=np.uint8, shape=(frames - settings.step, height, width, 2)
            )
            count = 0
            for count, flow in enumerate(
                settings.estimator().stream((block for _, block in reader.iter_chunks(32)), settings.step), 1
            ):
                out[count - 1] = quantize(flow, settings.bound)
            if count != len(out):
                raise VideoReadError(video, f"decoded {count + settings.step} frames, expected {frames}")
            out.flush()
            del out
    return Path(target).stat().st_size


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
    tasks = [
        (video, (video, str(store.path_for(video)), settings))
        for video in pending(videos, shard, store.has, report)
    ]
    run_jobs(_extract_one, tasks, report, f"flow ({settings.method})", workers, progress)
    return report
