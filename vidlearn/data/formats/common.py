"""What every dataset format shares: finding videos, reading annotation text and CSV rows,
checking split and subset arguments, and indexing a plain folder of videos."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from vidlearn.data.index import UNKNOWN_LABEL, DatasetSource, IndexEntry, VideoIndex
from vidlearn.data.index import scan as scan_videos
from vidlearn.errors import AnnotationError, BadArgumentError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
SUBSET_ALIASES = {"validation": "val", "validate": "val"}


def _folder(root: str | Path) -> Path:
    folder = Path(root).absolute()
    if not folder.is_dir():
        raise BadArgumentError(f"{folder}: not a folder")
    return folder


def _subset(subset: str, allowed: tuple[str, ...], dataset: str) -> str:
    canonical = SUBSET_ALIASES.get(subset, subset)
    if canonical not in allowed:
        raise BadArgumentError(f"{dataset} has no subset {subset!r}; choose one of {', '.join(allowed)}")
    return canonical


def _split_number(split: int) -> int:
    if isinstance(split, bool) or not isinstance(split, int) or split < 1:
        raise BadArgumentError(f"split must be a whole number from 1, got {split!r}")
    return split


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def _videos_in(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if _is_video(child))


def _videos_by_class(root: Path) -> dict[str, list[Path]]:
    """Sorted sub-folders of ``root`` that hold videos, with their sorted videos."""
    folders = sorted(child for child in root.iterdir() if child.is_dir() and not child.name.startswith("."))
    return {folder.name: videos for folder in folders if (videos := _videos_in(folder))}


def _read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(path, "file not found") from None
    except UnicodeDecodeError:
        raise AnnotationError(path, "not a UTF-8 text file") from None
    except OSError as error:
        raise AnnotationError(path, f"cannot be read ({error.strerror})") from None


def _annotation_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a text file, stripped, with their 1-based line numbers."""
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            yield number, line.strip()


def _read_class_names(path: Path) -> list[str]:
    """One class name a line, in the file's order."""
    names: list[str] = []
    for number, name in _annotation_lines(path):
        if name in names:
            raise AnnotationError(path, f"class {name!r} is listed twice", line=number)
        names.append(name)
    if not names:
        raise AnnotationError(path, "no classes listed")
    return names


def _csv_header(path: Path) -> list[str]:
    first_line = _read_text(path).partition("\n")[0]
    return [name.strip() for name in next(csv.reader([first_line]), [])]


def _csv_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a CSV with a header naming at least ``required``, as (line number, column -> value)."""
    rows = csv.reader(io.StringIO(_read_text(path)))
    header = [name.strip() for name in next(rows, [])]
    missing = [name for name in required if name not in header]
    if missing:
        reason = f"the header lacks column(s) {', '.join(missing)}; expected {','.join(required)}"
        raise AnnotationError(path, reason, line=rows.line_num or 1)
    for fields in rows:
        if not any(field.strip() for field in fields):
            continue
        if len(fields) != len(header):
            raise AnnotationError(
                path, f"{len(fields)} fields where the header has {len(header)}", line=rows.line_num
            )
        yield rows.line_num, {name: value.strip() for name, value in zip(header, fields)}


def _label(name: str, label_of: dict[str, int], path: Path, number: int) -> int:
    """The label of a class name; an empty name means unlabelled (-1)."""
    if not name:
        return UNKNOWN_LABEL
    if name not in label_of:
        raise AnnotationError(path, f"class {name!r} is not among the dataset's classes", line=number)
    return label_of[name]


def _segment(
    start_text: str, end_text: str, columns: tuple[str, str], path: Path, number: int
) -> tuple[float, float]:
    """Start and end seconds of an annotated segment, checked: non-negative numbers, start < end."""
    start, end = (
        _seconds(text, column, path, number) for text, column in zip((start_text, end_text), columns)
    )
    if not start < end:
        raise AnnotationError(
            path, f"{columns[0]} {start:g} s is not before {columns[1]} {end:g} s", line=number
        )
    return start, end


def _seconds(text: str, column: str, path: Path, number: int) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise AnnotationError(path, f"{column} {text!r} is not a number of seconds", line=number) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise AnnotationError(
            path, f"{column} {text!r} must be a non-negative number of seconds", line=number
        )
    return seconds


def video_folder_index(root: str | Path, progress: bool = True, workers: int | None = None) -> VideoIndex:
    """Every video anywhere under ``root``, without labels (for learning without labels)."""
    folder = _folder(root)
    entries = [IndexEntry(str(p)) for p in sorted(folder.rglob("*")) if _is_video(p)]
    if not entries:
        raise BadArgumentError(
            f"{folder}: no video files ({', '.join(sorted(VIDEO_EXTENSIONS))}) under this folder"
        )
    return scan_videos(
        VideoIndex(entries, [], DatasetSource("videos", str(folder))), workers=workers, progress=progress
    )
