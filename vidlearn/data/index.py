"""The common index every dataset format becomes, and the scan that probes its videos.

A format parser (``vidlearn.data.formats``) turns annotation files into a ``VideoIndex``
of ``IndexEntry`` records: which file, which class, which segment. ``scan`` then probes
every distinct video once, fills in its frame count and rate, and moves unusable files
(missing, empty, not a video, audio only, truncated, too short) to ``skipped`` with the
reason, so one bad file never stops a run over thousands.

Probing is the slow part (5-50 ms a file), so its results are cached on disk, outside
the dataset (datasets often live on read-only disks): one JSON file per dataset under
``$VIDLEARN_CACHE/index/`` (default ``~/.cache/vidlearn/index/``), named by a hash of the
format, the dataset's absolute root and the annotation files' contents. Each video's
record is keyed by its size and modification time, so a changed file is probed again
and the rest are not.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from vidlearn.errors import BadArgumentError, VideoReadError
from vidlearn.files import write_text_atomic
from vidlearn.io import probe
from vidlearn.progress import progress_bar

UNKNOWN_LABEL = -1
# Bump when the layout of a cache file changes, so old files are ignored rather than misread.
CACHE_VERSION = 1


@dataclass(frozen=True)
class IndexEntry:
    """One sample: a video file, its class and, for untrimmed videos, the segment in seconds.

    ``frames`` and ``fps`` describe the whole file and are filled in by ``scan``.
    """

    path: str
    label: int = UNKNOWN_LABEL
    start: float | None = None
    end: float | None = None
    caption: str | None = None
    frames: int | None = None
    fps: float | None = None


@dataclass(frozen=True)
class DatasetSource:
    """Where an index came from: the format, the dataset root and the annotation files read."""

    format: str
    root: str
    annotation_files: tuple[str, ...] = ()


@dataclass
class VideoIndex:
    """Entries of one dataset subset; label ``i`` names ``class_names[i]``."""

    entries: list[IndexEntry]
    class_names: list[str]
    source: DatasetSource
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[IndexEntry]:
        return iter(self.entries)

    def __getitem__(self, position: int) -> IndexEntry:
        return self.entries[position]

    def class_counts(self) -> dict[str, int]:
        """Entries per class name, in label order (classes without entries count 0)."""
        counts = Counter(entry.label for entry in self.entries)
        return {name: counts[label] for label, name in enumerate(self.class_names)}

    def filter(self, keep: Callable[[IndexEntry], bool]) -> VideoIndex:
        """A new index with the entries for which ``keep`` is true; classes and skipped files stay."""
        return replace(self, entries=[entry for entry in self.entries if keep(entry)])

    def skipped_table(self) -> str:
        """The skipped files as one short table: a row per reason with its count and one example."""
        if not self.skipped:
            return "no files skipped"
        paths_by_reason: dict[str, list[str]] = {}
        for path, reason in self.skipped:
            paths_by_reason.setdefault(reason, []).append(path)
        width = max(len(reason) for reason in paths_by_reason)
        lines = [
            f"skipped {len(self.skipped)} file(s):",
            f"  {'count':>5}  {'reason':<{width}}  example",
        ]
        for reason, paths in sorted(paths_by_reason.items(), key=lambda item: -len(item[1])):
            lines.append(f"  {len(paths):>5}  {reason:<{width}}  {paths[0]}")
        return "\n".join(lines)


def cache_dir() -> Path:
    """Folder of the index cache: ``$VIDLEARN_CACHE/index`` or ``~/.cache/vidlearn/index``."""
    base = os.environ.get("VIDLEARN_CACHE") or "~/.cache/vidlearn"
    return Path(base).expanduser() / "index"


def cache_file(source: DatasetSource) -> Path:
    """The cache file of one dataset: a hash of its format, absolute root and annotation files."""
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, source.format, os.path.abspath(source.root)]).encode())
    for annotation in source.annotation_files:
        digest.update(os.path.abspath(annotation).encode())
        digest.update(Path(annotation).read_bytes())
    return cache_dir() / f"{source.format}-{digest.hexdigest()[:24]}.json"


def scan(
    index: VideoIndex,
    *,
    min_frames: int = 2,
    workers: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> VideoIndex:
    """Probe every distinct video of ``index`` and return the index of the usable ones.

    Entries get ``frames`` and ``fps``; unusable files go to ``skipped`` with the reason.
    ``min_frames`` (default 2, since one still frame carries no motion) is the fewest
    decoded frames a usable video has. Probes run on ``workers`` threads (default: one
    per core; a probe mostly waits on the disk and on FFmpeg, so threads overlap well).
    With ``cache``, probe results are read from and written to the on-disk cache
    described in this module's docstring.
    """
    if min_frames < 1:
        raise BadArgumentError(f"min_frames must be at least 1, got {min_frames}")
    if workers is not None and workers < 1:
        raise BadArgumentError(f"workers must be at least 1, got {workers}")
    videos = list(dict.fromkeys(entry.path for entry in index.entries))
    stamps = {path: _file_stamp(path) for path in videos}
    path_of_cache = cache_file(index.source) if cache else None
    records = _read_cache(path_of_cache) if path_of_cache else {}

    stale = [
        path for path in videos if stamps[path] is not None and _stamp_of(records.get(path)) != stamps[path]
    ]
    fresh = _probe_all(stale, stamps, workers, progress)
    records.update(fresh)
    if path_of_cache and fresh:
        _write_cache(path_of_cache, records)

    reasons = {
        path: "file does not exist" if stamps[path] is None else _unusable_reason(records[path], min_frames)
        for path in videos
    }
    skipped = list(index.skipped) + [(path, reason) for path, reason in reasons.items() if reason]
    entries = []
    for entry in index.entries:
        if reasons[entry.path]:
            continue
        record = records[entry.path]
        if entry.start is not None and entry.start >= record["duration"]:
            # A segment past the end of its file would give empty clips later on.
            skipped.append(
                (
                    entry.path,
                    f"segment starts at {entry.start:g} s, after the video's end ({record['duration']:g} s)",
                )
            )
            continue
        entries.append(replace(entry, frames=record["frames"], fps=record["fps"]))
    return replace(index, entries=entries, skipped=skipped)


def _file_stamp(path: str) -> tuple[int, int] | None:
    """(size, modification time in ns) of a file, or None if it is not a readable file."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_size, status.st_mtime_ns) if stat.S_ISREG(status.st_mode) else None


def _stamp_of(record: dict | None) -> tuple[int, int] | None:
    return None if record is None else (record["size"], record["mtime_ns"])


def _probe_all(
    paths: list[str], stamps: dict[str, tuple[int, int] | None], workers: int | None, progress: bool
) -> dict[str, dict]:
    if not paths:
        return {}
    threads = workers or os.cpu_count() or 1

    def probe_record(path: str) -> dict:
        size, mtime_ns = stamps[path]
        record = {
            "size": size,
            "mtime_ns": mtime_ns,
            "frames": None,
            "fps": None,
            "duration": None,
            "error": None,
        }
        try:
            info = probe(path)
        except VideoReadError as error:
            record["error"] = error.reason
        else:
            record.update(frames=info.frames, fps=info.fps, duration=info.duration)
        return record

    records = {}
    bar = progress_bar(len(paths), "probing videos", progress)
    with ThreadPoolExecutor(max_workers=threads) as pool, bar as advance:
        for path, record in zip(paths, pool.map(probe_record, paths)):
            records[path] = record
            advance()
    return records


def _unusable_reason(record: dict, min_frames: int) -> str | None:
    if record["error"]:
        return record["error"]
    if record["frames"] < min_frames:
        return f"{record['frames']} frame(s), fewer than min_frames={min_frames}"
    return None


def _read_cache(path: Path) -> dict[str, dict]:
    """Cached probe records by video path; empty when the file is absent, unreadable or outdated."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(content, dict) or content.get("version") != CACHE_VERSION:
        return {}
    videos = content.get("videos")
    return videos if isinstance(videos, dict) else {}


def _write_cache(path: Path, records: dict[str, dict]) -> None:
    """Write the cache atomically (a temporary file renamed over the old one).

    A reader never sees half a file, and two processes scanning at once leave one whole
    version. A cache that cannot be written only costs the next scan its speed, so that
    is a warning, not an error.
    """
    content = json.dumps({"version": CACHE_VERSION, "videos": records})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, content)
    except OSError as error:
        warnings.warn(f"could not write the index cache {path}: {error}", stacklevel=3)
