"""Kinetics: CSVs of YouTube ids and times, videos named after them."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from vidlearn.data.formats.common import VIDEO_EXTENSIONS, _csv_header, _csv_rows, _label, _segment
from vidlearn.data.index import DatasetSource, IndexEntry, VideoIndex
from vidlearn.errors import AnnotationError

KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")
KINETICS_CSV_NAMES = {
    "train": ("train.csv",),
    "val": ("validate.csv", "val.csv", "validation.csv"),
    "test": ("test.csv",),
}

KINETICS_MISSING = (
    "video not found as <id>_<start>_<end> in the root, <label>/ or <split>/<label>/, nor as <id>"
)


def load_kinetics(
    csv_path: str | Path, videos_root: str | Path | None = None, class_names: Sequence[str] | None = None
) -> VideoIndex:
    """A Kinetics CSV (header with label, youtube_id, time_start, time_end, split; more columns allowed).

    Each row's video is looked for under ``videos_root`` (default: the CSV's folder) as
    ``<split>/<label>/<id>_<start:06d>_<end:06d>.<ext>``, ``<label>/<same>``, ``<same>`` and
    finally ``<id>.<ext>``, the whole YouTube video, whose entry keeps start and end so the
    clip can be cut from it. Label folders may use ``_`` for spaces. Rows whose video is
    missing are skipped and reported. Class names are the sorted labels of ``train.csv``
    beside the CSV when there is one (so val and test labels agree with train), else of
    this CSV; a CSV without a label column (a test set) gives label -1.
    """
    csv_path = Path(csv_path).absolute()
    root = Path(videos_root).absolute() if videos_root else csv_path.parent
    rows = list(_csv_rows(csv_path, KINETICS_COLUMNS))
    annotations = (str(csv_path),)
    if class_names is None:
        train_csv = csv_path.parent / "train.csv"
        if train_csv.is_file() and train_csv != csv_path:
            annotations += (str(train_csv),)
            class_rows = _csv_rows(train_csv, KINETICS_COLUMNS)
        else:
            class_rows = iter(rows)
        class_names = sorted({row["label"] for _, row in class_rows if row.get("label")})
    class_names = list(class_names)
    label_of = {name: label for label, name in enumerate(class_names)}
    names_in = _directory_listing()
    entries, skipped = [], []
    for number, row in rows:
        if not row["youtube_id"]:
            raise AnnotationError(csv_path, "empty youtube_id", line=number)
        start, end = _segment(
            row["time_start"], row["time_end"], ("time_start", "time_end"), csv_path, number
        )
        label = _label(row.get("label", ""), label_of, csv_path, number)
        clip = f"{row['youtube_id']}_{int(start):06d}_{int(end):06d}"
        found = _kinetics_video(root, row, clip, names_in)
        if found is None:
            skipped.append((str(root / clip), KINETICS_MISSING))
        elif found.stem == clip:
            entries.append(IndexEntry(str(found), label))
        else:
            entries.append(IndexEntry(str(found), label, start, end))
    return VideoIndex(entries, class_names, DatasetSource("kinetics", str(root), annotations), skipped)


def _kinetics_video(
    root: Path, row: dict[str, str], clip: str, names_in: Callable[[Path], frozenset[str]]
) -> Path | None:
    """The first existing file among the places a Kinetics downloader puts a clip."""
    label, split = row.get("label", ""), row.get("split", "")
    label_folders = list(dict.fromkeys([label, label.replace(" ", "_")])) if label else []
    folders = [root / split / name for name in label_folders if split] + [
        root / name for name in label_folders
    ]
    places = [(folder, clip) for folder in folders + [root]] + [(root, row["youtube_id"])]
    for folder, stem in places:
        for extension in VIDEO_EXTENSIONS:
            if stem + extension in names_in(folder):
                return folder / (stem + extension)
    return None


def _kinetics_csv(folder: Path, subset: str) -> Path | None:
    """The Kinetics CSV of a subset in a folder, if one has the Kinetics header."""
    for name in KINETICS_CSV_NAMES[subset]:
        candidate = folder / name
        if candidate.is_file() and set(KINETICS_COLUMNS) <= set(_csv_header(candidate)):
            return candidate
    return None


def _directory_listing() -> Callable[[Path], frozenset[str]]:
    """A memoised listing of folders: one ``listdir`` per folder instead of a ``stat`` per guess."""

    @functools.cache
    def names_in(folder: Path) -> frozenset[str]:
        try:
            return frozenset(os.listdir(folder))
        except OSError:
            return frozenset()

    return names_in
