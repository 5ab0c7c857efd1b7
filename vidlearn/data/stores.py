"""What every per-video store of a dataset shares (the flow store of ``vidlearn.motion.store``,
the prepared frames of ``vidlearn.data.prepared``).

A store is a folder with a JSON manifest of the settings it was made with, and one or more files
per video at the video's path relative to the dataset root. Filling it runs one function per video
over a process pool with a progress bar; each video's files appear whole (atomic rename) or not at
all, so a rerun skips what is done. ``shard=(i, n)`` takes every n-th video of the sorted list, so
machines can split a dataset and the union of their shards equals a one-machine run.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from vidlearn.data.index import cache_dir
from vidlearn.errors import BadArgumentError, VidlearnError
from vidlearn.files import write_text_atomic
from vidlearn.progress import progress_bar

Settings = TypeVar("Settings")
# One video's work: (video, task) -> bytes written; raises a VidlearnError when the video fails.
Work = Callable[[Any], int]


def dataset_cache_folder(kind: str, dataset_root: str | Path) -> Path:
    """``$VIDLEARN_CACHE/<kind>/<dataset name>-<hash of its absolute path>`` (the cache default is
    ``~/.cache/vidlearn``): datasets often live on read-only storage."""
    root = Path(dataset_root).absolute()
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return cache_dir().parent / kind / f"{root.name}-{digest}"


def store_path(folder: Path, dataset_root: Path, video: str | Path, suffix: str) -> Path:
    """Where a store keeps a video's file: its path relative to the dataset root, plus ``suffix``."""
    relative = os.path.relpath(Path(video).absolute(), dataset_root)
    if relative.startswith(".."):
        raise BadArgumentError(f"{video} is not inside the dataset root {dataset_root}")
    return folder / (relative + suffix)


def read_manifest(folder: Path, name: str, kind: type[Settings], what: str, command: str) -> Settings:
    """The settings (a dataclass of type ``kind`` with a ``version`` field) of the store at ``folder``.

    ``what`` names the store in messages ("flow store"), ``command`` the command that makes one.
    """
    manifest = folder / name
    if not manifest.exists():
        raise BadArgumentError(f"{folder}: not a {what} (no {name}); create it with `{command}`")
    try:
        settings = kind(**json.loads(manifest.read_text()))
    except (ValueError, TypeError) as exc:
        raise BadArgumentError(f"{manifest}: unreadable {what} manifest ({exc})") from exc
    current = kind().version  # the default version is the one this code writes and reads
    if settings.version != current:
        raise BadArgumentError(
            f"{manifest}: {what} version {settings.version}, this vidlearn reads {current}; make it again with `{command}`"
        )
    return settings


def open_or_create(folder: Path, name: str, settings: Any, opened: Callable[[], Any]) -> Any:
    """The store at ``folder`` (``opened()`` reads it), its manifest written with ``settings`` if new.

    An existing store made with other settings is an error: mixing them would give a model
    inconsistent inputs.
    """
    manifest = folder / name
    if not manifest.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(manifest, json.dumps(asdict(settings), indent=2) + "\n")
    store = opened()
    if store.settings != settings:
        raise BadArgumentError(
            f"{folder} was made with {asdict(store.settings)}; asked for {asdict(settings)}: use another --out"
        )
    return store


def shard_of(videos: Iterable[str], shard: tuple[int, int]) -> list[str]:
    """Shard ``i`` of ``n`` (0-based) of the sorted, de-duplicated videos: every n-th from the i-th."""
    index, count = shard
    if count < 1 or not 0 <= index < count:
        raise BadArgumentError(f"shard must be i/n with 0 <= i < n, got {index}/{count}")
    return sorted(set(videos))[index::count]


@dataclass
class JobReport:
    """What one run over a dataset's videos did: videos done now, already done before, failed
    (path and reason), and the bytes written."""

    folder: Path
    done: int = 0
    already_done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes_written: int = 0

    def failures(self) -> str:
        """One indented line per failed video, each starting with a newline ("" when none failed)."""
        return "".join(f"\n  failed: {path}: {reason}" for path, reason in self.failed)


def pending(
    videos: Iterable[str], shard: tuple[int, int], is_done: Callable[[str], bool], report: JobReport
) -> list[str]:
    """The videos of the shard still to do; those already done are counted in ``report``."""
    todo = []
    for video in shard_of(videos, shard):
        if is_done(video):
            report.already_done += 1
        else:
            todo.append(video)
    return todo


def run_jobs(
    work: Work,
    tasks: list[tuple[str, Any]],
    report: JobReport,
    description: str,
    workers: int | None = None,
    progress: bool = True,
) -> None:
    """Run ``work(task)`` for each ``(video, task)`` on ``workers`` processes (default: one per core)
    and tally the outcomes in ``report``. ``work`` must be a module-level function (it is pickled);
    a video whose work raises a ``VidlearnError`` is listed as failed and the run goes on."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    jobs = [(work, video, task) for video, task in tasks]
    with progress_bar(len(tasks), description, enabled=progress) as advance:
        if workers == 1:
            _collect(map(_attempt, jobs), report, advance)
        else:
            # spawn: a forked child of a process that used OpenCV or torch threads can deadlock.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                _collect(pool.imap_unordered(_attempt, jobs), report, advance)


def _attempt(job: tuple[Work, str, Any]) -> tuple[str, str | None, int]:
    work, video, task = job
    try:
        return video, None, work(task)
    except VidlearnError as exc:
        return video, str(exc), 0


def _collect(
    results: Iterable[tuple[str, str | None, int]], report: JobReport, advance: Callable[..., None]
) -> None:
    for video, error, size in results:
        if error is None:
            report.done += 1
            report.bytes_written += size
        else:
            report.failed.append((video, error))
        advance(text=Path(video).name)
