"""Folder-per-class datasets, UCF101 and SynthActions (UCF101's layout plus captions and segments)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vidlearn.data.formats.common import (
    VIDEO_EXTENSIONS,
    _annotation_lines,
    _csv_rows,
    _folder,
    _split_number,
    _subset,
    _videos_by_class,
)
from vidlearn.data.formats.labelled_csv import load_csv
from vidlearn.data.index import DatasetSource, IndexEntry, VideoIndex
from vidlearn.errors import AnnotationError, BadArgumentError


def load_folder(root: str | Path) -> VideoIndex:
    """``root/<class>/<video>``: one folder per class, classes in sorted order.

    Only folders holding at least one video count as classes, so a stray folder of
    notes or annotations does not become a class.
    """
    root = _folder(root)
    videos_by_class = _videos_by_class(root)
    if not videos_by_class:
        raise BadArgumentError(f"{root}: no class folders holding videos ({' '.join(VIDEO_EXTENSIONS)})")
    class_names = list(videos_by_class)
    entries = [
        IndexEntry(str(video), label)
        for label, name in enumerate(class_names)
        for video in videos_by_class[name]
    ]
    return VideoIndex(entries, class_names, DatasetSource("folder", str(root)))


# UCF101 and SynthActions ------------------------------------------------------------------


def load_ucf101(
    root: str | Path, splits_dir: str | Path | None = None, split: int = 1, subset: str = "train"
) -> VideoIndex:
    """UCF101: ``classInd.txt`` and ``trainlistNN.txt``/``testlistNN.txt`` under ``splits_dir``.

    ``splits_dir`` defaults to ``root/ucfTrainTestlist``. Video paths in the lists are
    relative to ``root``. Train lines carry a 1-based class number; test lines give the
    path only and the class comes from its folder.
    """
    root = _folder(root)
    splits = Path(splits_dir).absolute() if splits_dir else root / "ucfTrainTestlist"
    subset = _subset(subset, ("train", "test"), "UCF101")
    class_file = splits / "classInd.txt"
    class_names = _read_class_index(class_file)
    label_of = {name: label for label, name in enumerate(class_names)}
    list_file = splits / f"{subset}list{_split_number(split):02d}.txt"
    entries = []
    for number, line in _annotation_lines(list_file):
        relative, label = _ucf101_line(line, label_of, list_file, number)
        entries.append(IndexEntry(str(root / relative), label))
    return VideoIndex(
        entries, class_names, DatasetSource("ucf101", str(root), (str(class_file), str(list_file)))
    )


def load_synthactions(root: str | Path, split: int = 1, subset: str = "train") -> VideoIndex:
    """The built-in SynthActions layout: UCF101 lists over ``root/clips`` plus ``captions.csv``.

    ``subset="untrimmed"`` gives the segments of ``root/untrimmed/segments.csv`` instead,
    labelled with the same class list as the clips.
    """
    root = _folder(root)
    class_file = root / "ucfTrainTestlist" / "classInd.txt"
    if subset == "untrimmed":
        index = load_csv(root / "untrimmed" / "segments.csv", class_names=_read_class_index(class_file))
        annotations = index.source.annotation_files + (str(class_file),)
    else:
        index = load_ucf101(root / "clips", class_file.parent, split, subset)
        captions_file = root / "captions.csv"
        index = attach_captions(index, captions_file, root / "clips")
        annotations = index.source.annotation_files + (str(captions_file),)
    return replace(index, source=DatasetSource("synthactions", str(root), annotations))


def attach_captions(index: VideoIndex, captions_csv: str | Path, videos_root: str | Path) -> VideoIndex:
    """Give each entry the caption of its video from a CSV with columns ``path`` and ``caption``.

    Paths in the CSV are relative to ``videos_root``; videos without a row keep their caption.
    """
    videos_root = Path(videos_root).absolute()
    rows = _csv_rows(Path(captions_csv), ("path", "caption"))
    captions = {str(videos_root / row["path"]): row["caption"] for _, row in rows}
    entries = [replace(entry, caption=captions.get(entry.path, entry.caption)) for entry in index.entries]
    return replace(index, entries=entries)


def _read_class_index(path: Path) -> list[str]:
    """``classInd.txt``: lines ``<number> <name>``, numbers 1..N in any order."""
    name_of_number: dict[int, str] = {}
    for number, line in _annotation_lines(path):
        parts = line.split(None, 1)
        if len(parts) != 2 or not parts[0].isdigit():
            raise AnnotationError(path, f"expected '<class number> <class name>', got {line!r}", line=number)
        class_number = int(parts[0])
        if class_number in name_of_number:
            raise AnnotationError(path, f"class number {class_number} is listed twice", line=number)
        name_of_number[class_number] = parts[1].strip()
    if not name_of_number:
        raise AnnotationError(path, "no classes listed")
    if sorted(name_of_number) != list(range(1, len(name_of_number) + 1)):
        raise AnnotationError(path, f"class numbers must run from 1 to {len(name_of_number)} without gaps")
    return [name_of_number[class_number] for class_number in sorted(name_of_number)]


def _ucf101_line(line: str, label_of: dict[str, int], path: Path, number: int) -> tuple[str, int]:
    """A list line ``<Class>/<video> <class number>`` or ``<Class>/<video>``: (relative path, label)."""
    parts = line.rsplit(None, 1)
    if len(parts) == 2 and parts[1].isdigit():
        label = int(parts[1]) - 1
        if not 0 <= label < len(label_of):
            raise AnnotationError(
                path, f"class number {parts[1]} is not in classInd.txt (1 to {len(label_of)})", line=number
            )
        return parts[0], label
    folder, separator, _ = line.replace("\\", "/").partition("/")
    if not separator or folder not in label_of:
        raise AnnotationError(
            path,
            f"expected '<Class>/<video> [class number]' with a class of classInd.txt, got {line!r}",
            line=number,
        )
    return line, label_of[folder]
