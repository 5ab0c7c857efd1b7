"""Labelled videos or segments in a CSV (video,label[,start,end])."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vidlearn.data.formats.common import _csv_header, _csv_rows, _label, _read_class_names, _segment
from vidlearn.data.index import DatasetSource, IndexEntry, VideoIndex
from vidlearn.errors import AnnotationError

DATASET_CSV_NAMES = ("segments.csv", "labels.csv")


def load_csv(csv_path: str | Path, class_names: Sequence[str] | None = None) -> VideoIndex:
    """A CSV of labelled videos (``video,label``) or segments of untrimmed videos (``video,label,start,end``).

    ``path`` may stand for ``video``; paths are relative to the CSV's folder. Start and
    end are seconds, non-negative, with start < end; one entry per row, so a video with
    several segments appears several times. An optional ``caption`` column is kept; an
    empty label gives -1. Class names are ``class_names``, else ``class_names.txt``
    beside the CSV in its order, else the sorted labels.
    """
    csv_path = Path(csv_path).absolute()
    header = _csv_header(csv_path)
    path_column = "video" if "video" in header else "path"
    if path_column not in header or "label" not in header:
        raise AnnotationError(
            csv_path, "the header needs a 'video' (or 'path') column and a 'label' column", line=1
        )
    has_segments = "start" in header or "end" in header
    rows = list(_csv_rows(csv_path, (path_column, "label") + (("start", "end") if has_segments else ())))
    class_file = csv_path.parent / "class_names.txt"
    annotations = (str(csv_path),)
    if class_names is None and class_file.is_file():
        class_names = _read_class_names(class_file)
        annotations += (str(class_file),)
    elif class_names is None:
        class_names = sorted({row["label"] for _, row in rows if row["label"]})
    class_names = list(class_names)
    label_of = {name: label for label, name in enumerate(class_names)}
    entries = []
    for number, row in rows:
        if not row[path_column]:
            raise AnnotationError(csv_path, f"empty {path_column}", line=number)
        start, end = (None, None)
        if has_segments:
            start, end = _segment(row["start"], row["end"], ("start", "end"), csv_path, number)
        label = _label(row["label"], label_of, csv_path, number)
        caption = row.get("caption") or None
        entries.append(IndexEntry(str(csv_path.parent / row[path_column]), label, start, end, caption))
    return VideoIndex(entries, class_names, DatasetSource("csv", str(csv_path.parent), annotations))


def _dataset_csv(folder: Path) -> Path | None:
    """``segments.csv`` or ``labels.csv`` in a folder, if it has the columns of ``load_csv``."""
    for name in DATASET_CSV_NAMES:
        candidate = folder / name
        if candidate.is_file():
            header = set(_csv_header(candidate))
            if "label" in header and header & {"video", "path"}:
                return candidate
    return None
