"""A dataset decoded once for fast training: every frame of every video as uint8, read by memory mapping.

Decoding compressed video is what limits training on a few CPU cores. ``prepare_videos`` (the
``vidlearn prepare`` command) decodes each video once at a reduced short side and stores all its
frames; ``ClipDataset`` then reads a clip's frames from the array instead of decoding them, and a
clip touches only its own frames. The frames are the ones ``open_video(path, size=short_side)``
decodes, bit for bit, so training on a store gives the clips that decoding would give.

Layout of a store folder::

    prepared.json                          short side, version
    <video path relative to the dataset root>.frames.npy
                                           uint8 F x H x W x 3: all F frames, RGB, upright, short side resized
    <video path relative to the dataset root>.frames.json
                                           the sidecar: the original's VideoInfo (frame count, fps, ...), the
                                           frame times in seconds, the array's shape, size and sha256, and the
                                           source file's size and modification time

A video counts as prepared when its sidecar names the source file's current size and modification
time and its array has the size the sidecar states. The array is renamed into place whole before
the sidecar is written, so a run killed midway leaves no video that counts as prepared, and a
changed source file is prepared again. Opening checks the array's shape; the checksum is checked
by ``PreparedStore.verify`` (hashing every array on every open would cost more than decoding).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from vidlearn.data.index import _file_stamp
from vidlearn.data.stores import (
    JobReport,
    dataset_cache_folder,
    open_or_create,
    pending,
    read_manifest,
    run_jobs,
    shard_of,
    store_path,
)
from vidlearn.errors import BadArgumentError, VideoReadError
from vidlearn.files import atomic_path, write_text_atomic
from vidlearn.io import VideoInfo, VideoReader, check_frame_indices, open_video
from vidlearn.progress import progress_bar

STORE_VERSION = 1
MANIFEST = "prepared.json"
ARRAY_SUFFIX = ".frames.npy"
SIDECAR_SUFFIX = ".frames.json"
CHUNK = 32  # frames decoded and written at a time: memory stays bounded whatever the video's length
OPEN_CACHE = 4096  # videos whose memory map and sidecar a store keeps between clips (least recently used go)


@dataclass(frozen=True)
class PreparedSettings:
    """Frames stored with their short side resized to ``short_side`` (aspect kept)."""

    short_side: int = 128
    version: int = STORE_VERSION

    def __post_init__(self) -> None:
        if self.short_side < 8:
            raise BadArgumentError(
                f"prepared frames need a short side of at least 8 pixels, got {self.short_side}"
            )


def default_prepared_folder(
    dataset_root: str | Path, settings: PreparedSettings = PreparedSettings()
) -> Path:
    """``$VIDLEARN_CACHE/prepared/<dataset name>-<hash of its path>/s<short side>`` (the cache
    default is ``~/.cache/vidlearn``): where ``vidlearn prepare`` writes and training looks."""
    return dataset_cache_folder("prepared", dataset_root) / f"s{settings.short_side}"


class PreparedVideo:
    """One prepared video, read like a ``VideoReader`` (the part that the datasets use).

    ``info`` describes the original file, as a reader's does; ``get`` returns frames at the store's
    short side, ``frame_shape`` their shape.
    """

    def __init__(self, path: str, frames: np.ndarray, info: VideoInfo, times: np.ndarray):
        self.path = path
        self.info = info
        self._frames = frames  # memory-mapped F x H x W x 3: indexing reads only those frames
        self._times = times

    def __enter__(self) -> PreparedVideo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._frames = None  # drops the memory map

    def __len__(self) -> int:
        return self.info.frames

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return self._frames.shape[1:]

    def frame_times(self) -> np.ndarray:
        """Presentation time in seconds of every frame (float64, length ``frames``), as the original's reader gives them."""
        return self._times

    def get(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 ``N x H x W x 3``."""
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        check_frame_indices(self.path, wanted, len(self))
        return np.asarray(self._frames[wanted])


class _Opened(NamedTuple):
    stamps: tuple  # (source, array) (size, mtime) when opened
    array: str
    frames: np.ndarray
    info: VideoInfo
    times: np.ndarray


class PreparedStore:
    """Read access to a store folder for the videos of the dataset at ``dataset_root``.

    A store keeps the memory maps and sidecars of the videos it opened (the last ``OPEN_CACHE``):
    opening a video again costs two ``stat`` calls (its source and its array unchanged?) instead
    of parsing the sidecar and the array's header, which took longer than reading a clip.
    """

    def __init__(self, folder: str | Path, dataset_root: str | Path):
        self.folder = Path(folder)
        self.dataset_root = Path(dataset_root).absolute()
        self.settings = read_manifest(
            self.folder, MANIFEST, PreparedSettings, "prepared-data store", "vidlearn prepare"
        )
        self._opened: OrderedDict[str, _Opened] = OrderedDict()

    def __getstate__(self) -> dict:
        # Memory maps pickle as their whole contents: a store sent to a spawned worker reopens instead.
        return {**self.__dict__, "_opened": OrderedDict()}

    def array_path(self, video: str | Path) -> Path:
        return store_path(self.folder, self.dataset_root, video, ARRAY_SUFFIX)

    def sidecar_path(self, video: str | Path) -> Path:
        return store_path(self.folder, self.dataset_root, video, SIDECAR_SUFFIX)

    def has(self, video: str | Path) -> bool:
        """Whether ``video`` is prepared: its sidecar matches the source file's current size and
        modification time, and its array has the size the sidecar states."""
        if self._cached(video) is not None:
            return True
        sidecar = self._fresh_sidecar(video)
        array = _file_stamp(str(self.array_path(video)))
        return sidecar is not None and array is not None and array[0] == sidecar["bytes"]

    def open(self, video: str | Path) -> PreparedVideo:
        """The prepared frames of ``video``; ``VideoReadError`` naming the file when they are missing,
        out of date or truncated."""
        opened = self._cached(video) or self._load(video)
        return PreparedVideo(str(video), opened.frames, opened.info, opened.times)

    def open_if_prepared(self, video: str | Path) -> PreparedVideo | None:
        """``open(video)`` if ``has(video)``, else None; a video opened before costs one lookup."""
        opened = self._cached(video)
        if opened is None:
            if not self.has(video):
                return None
            opened = self._load(video)
        return PreparedVideo(str(video), opened.frames, opened.info, opened.times)

    def _cached(self, video: str | Path) -> _Opened | None:
        """The opened video if its source and array are unchanged since it was opened."""
        opened = self._opened.get(str(video))
        if opened is None or opened.stamps != (_file_stamp(str(video)), _file_stamp(opened.array)):
            return None
        self._opened.move_to_end(str(video))
        return opened

    def _load(self, video: str | Path) -> _Opened:
        path = self.array_path(video)
        stamps = _file_stamp(str(video)), _file_stamp(str(path))
        sidecar = self._fresh_sidecar(video)
        if sidecar is None:
            raise VideoReadError(
                video, f"not prepared in {self.folder}, or changed since; run `vidlearn prepare`"
            )
        try:
            frames = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise VideoReadError(
                path,
                f"unreadable prepared frames, truncated or corrupt ({exc}); delete it and run `vidlearn prepare` again",
            ) from exc
        if frames.dtype != np.uint8 or list(frames.shape) != sidecar["shape"]:
            raise VideoReadError(
                path,
                f"holds {frames.dtype} {list(frames.shape)}, its sidecar says uint8 {sidecar['shape']} (overwritten); delete it and run `vidlearn prepare` again",
            )
        info = dataclasses.replace(VideoInfo(**sidecar["info"]), path=str(video))
        opened = _Opened(
            stamps, str(path), frames, info, np.asarray(sidecar["frame_times"], dtype=np.float64)
        )
        self._opened[str(video)] = opened
        if len(self._opened) > OPEN_CACHE:
            self._opened.popitem(last=False)
        return opened

    def disk_cost(self, videos: Iterable[str]) -> tuple[int, int]:
        """(bytes of prepared arrays, bytes of their original files) over the prepared ones of ``videos``."""
        prepared = [video for video in videos if self.has(video)]
        return sum(self.array_path(v).stat().st_size for v in prepared), sum(
            Path(v).stat().st_size for v in prepared
        )

    def verify(self, progress: bool = True) -> list[tuple[str, str]]:
        """``(video, problem)`` for every prepared video whose array is missing, truncated or not the
        bytes its checksum was computed from. Reads every array whole."""
        sidecars = sorted(self.folder.rglob("*" + SIDECAR_SUFFIX))
        problems = []
        with progress_bar(len(sidecars), "verifying", enabled=progress) as advance:
            for sidecar in sidecars:
                video = str(self.dataset_root / str(sidecar.relative_to(self.folder))[: -len(SIDECAR_SUFFIX)])
                problem = self._problem(video)
                if problem:
                    problems.append((video, problem))
                advance(text=sidecar.name)
        return problems

    def _problem(self, video: str) -> str | None:
        sidecar = _read_sidecar(self.sidecar_path(video))
        path = self.array_path(video)
        if sidecar is None:
            return f"{self.sidecar_path(video)}: unreadable sidecar"
        if not path.exists():
            return f"{path}: the prepared frames are missing"
        if path.stat().st_size != sidecar["bytes"]:
            return f"{path}: {path.stat().st_size} bytes, {sidecar['bytes']} when prepared (truncated or overwritten)"
        if sha256_of(path) != sidecar["sha256"]:
            return f"{path}: checksum mismatch, the bytes changed since they were prepared"
        return None

    def _fresh_sidecar(self, video: str | Path) -> dict | None:
        """The video's sidecar if it names the source file's current size and modification time, else None."""
        sidecar = _read_sidecar(self.sidecar_path(video))
        if sidecar is None or _file_stamp(str(video)) != (
            sidecar["source"]["size"],
            sidecar["source"]["mtime_ns"],
        ):
            return None
        return sidecar


def _read_sidecar(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class PreparationReport(JobReport):
    """What one ``prepare_videos`` call did, and the disk cost of the shard's prepared videos:
    ``prepared_bytes`` of arrays for ``original_bytes`` of original files."""

    prepared_bytes: int = 0
    original_bytes: int = 0

    def summary(self) -> str:
        ratio = self.prepared_bytes / self.original_bytes if self.original_bytes else 0.0
        return (
            f"prepared store {self.folder}: {self.done} videos prepared ({self.bytes_written / 2**20:.1f} MiB), "
            f"{self.already_done} already done, {len(self.failed)} failed\n"
            f"disk: {self.prepared_bytes / 2**20:.1f} MiB prepared for {self.original_bytes / 2**20:.1f} MiB of original files ({ratio:.1f}x)"
        ) + self.failures()


def prepare_videos(
    videos: Iterable[str],
    folder: str | Path,
    dataset_root: str | Path,
    settings: PreparedSettings = PreparedSettings(),
    workers: int | None = None,
    shard: tuple[int, int] = (0, 1),
    progress: bool = True,
) -> PreparationReport:
    """Decode ``videos`` (paths inside ``dataset_root``) into the store at ``folder``.

    Uses ``workers`` processes (default: one per core). Prepared videos whose source is unchanged
    are skipped; a video that cannot be decoded is reported in the result and does not stop the run.
    An existing store made with other settings is refused.
    """
    videos = list(videos)
    store = open_or_create(Path(folder), MANIFEST, settings, lambda: PreparedStore(folder, dataset_root))
    report = PreparationReport(store.folder)
    tasks = [
        (video, (video, str(store.array_path(video)), str(store.sidecar_path(video)), settings.short_side))
        for video in pending(videos, shard, store.has, report)
    ]
    run_jobs(_prepare_one, tasks, report, f"preparing (short side {settings.short_side})", workers, progress)
    report.prepared_bytes, report.original_bytes = store.disk_cost(shard_of(videos, shard))
    return report


def _prepare_one(task: tuple[str, str, str, int]) -> int:
    """Decode one video into its array, then write its sidecar; returns the bytes written."""
    video, array_path, sidecar_path, short_side = task
    with open_video(video, size=short_side, threads=1) as reader:
        stamp = _file_stamp(
            video
        )  # taken before decoding: a file changed meanwhile is prepared again next run
        if stamp is None:
            raise VideoReadError(video, "the file disappeared while being prepared")
        shape = (reader.info.frames, *reader.frame_shape)
        Path(array_path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(array_path, suffix=".npy") as temporary:
            _write_frames(reader, temporary, shape)
            checksum = sha256_of(temporary)
        sidecar = {
            "info": reader.info.to_dict(),
            "frame_times": reader.frame_times().tolist(),
            "shape": list(shape),
            "bytes": Path(array_path).stat().st_size,
            "sha256": checksum,
            "source": {"size": stamp[0], "mtime_ns": stamp[1]},
        }
    text = json.dumps(sidecar) + "\n"
    write_text_atomic(sidecar_path, text)
    return sidecar["bytes"] + len(text)


def _write_frames(reader: VideoReader, path: str, shape: tuple[int, int, int, int]) -> None:
    """Every frame of ``reader``, in order, into a new uint8 ``.npy`` of ``shape`` (F x H x W x 3) at ``path``."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    decoded = 0
    for start, block in reader.iter_chunks(CHUNK):
        decoded = start + len(block)
        if decoded > len(out):
            raise VideoReadError(
                reader.path, f"decodes more frames than the {len(out)} it was counted to have"
            )
        out[start:decoded] = block
    if decoded != len(out):
        raise VideoReadError(reader.path, f"decoded {decoded} frames, expected {len(out)}")
    out.flush()
    del out  # closes the memory map before the file is renamed
