"""HMDB51: class folders of videos and the 70/30 split files, or the videos alone."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from vidlearn.data.formats.common import (
    _annotation_lines,
    _folder,
    _read_class_names,
    _split_number,
    _subset,
    _videos_by_class,
    _videos_in,
)
from vidlearn.data.index import DatasetSource, IndexEntry, VideoIndex
from vidlearn.errors import AnnotationError

# HMDB51 file names end in _<body>_<camera motion>_<people>_<viewpoint>_<quality>_<clip index>.
HMDB51_SUFFIX = re.compile(r"_[fuhl]_(?:cm|nm)_np\d+_(?:fr|ba|le|ri)_(?:goo|med|bad)_\d+$")
HMDB51_SPLITS_FOLDER = "testTrainMulti_7030_splits"
HMDB51_TAGS = {"train": "1", "test": "2"}


def hmdb51_action(file_name: str, class_names: Sequence[str]) -> str | None:
    """The action named in an HMDB51 file name, or None when it names none of ``class_names``.

    Names look like ``<title>_<action>_<body>_<camera>_<people>_<view>_<quality>_<clip>.avi``,
    and both titles and actions may contain underscores (``shoot_bow``, ``draw_sword``
    next to ``sword``), so the action is the longest class name that ends the part
    before the fixed suffix, not a piece split off at ``_``.
    """
    match = HMDB51_SUFFIX.search(Path(file_name).stem)
    if match is None:
        return None
    head = match.string[: match.start()]
    candidates = [name for name in class_names if head == name or head.endswith("_" + name)]
    return max(candidates, key=len, default=None)


def load_hmdb51(
    root: str | Path, splits_dir: str | Path | None = None, split: int = 1, subset: str = "train"
) -> VideoIndex:
    """HMDB51: ``root/<class>/*.avi`` with split files ``<class>_test_split<N>.txt``.

    Split lines are ``<file>.avi <tag>`` with tag 1 = train, 2 = test, 0 = unused.
    ``splits_dir`` defaults to ``root/testTrainMulti_7030_splits`` if present, else ``root``.
    Class names come from ``root/class_names.txt`` in its order when present, else sorted.
    Without split files every video under ``root`` is in the index, whatever the subset;
    its class is its folder's name, or else read from its file name (``hmdb51_action``).
    """
    root = _folder(root)
    subset = _subset(subset, tuple(HMDB51_TAGS), "HMDB51")
    split = _split_number(split)
    splits = Path(splits_dir).absolute() if splits_dir else _hmdb51_splits_folder(root)
    split_files = sorted(splits.glob(f"*_test_split{split}.txt")) if splits.is_dir() else []
    class_file = root / "class_names.txt"
    if class_file.is_file():
        class_names = _read_class_names(class_file)
    elif split_files:
        class_names = sorted(_hmdb51_split_action(split_file, split) for split_file in split_files)
    else:
        class_names = sorted({video.parent.name for video in _hmdb51_videos(root) if video.parent != root})
    if split_files:
        entries = _hmdb51_split_entries(root, split_files, split, HMDB51_TAGS[subset], class_names)
        skipped = []
    else:
        entries, skipped = _hmdb51_folder_entries(root, class_names)
    annotations = ((str(class_file),) if class_file.is_file() else ()) + tuple(map(str, split_files))
    return VideoIndex(entries, class_names, DatasetSource("hmdb51", str(root), annotations), skipped)


def _hmdb51_splits_folder(root: Path) -> Path:
    official = root / HMDB51_SPLITS_FOLDER
    return official if official.is_dir() else root


def _hmdb51_split_action(split_file: Path, split: int) -> str:
    return split_file.name[: -len(f"_test_split{split}.txt")]


def _hmdb51_split_entries(
    root: Path, split_files: list[Path], split: int, tag: str, class_names: list[str]
) -> list[IndexEntry]:
    label_of = {name: label for label, name in enumerate(class_names)}
    entries = []
    for split_file in split_files:
        action = _hmdb51_split_action(split_file, split)
        if action not in label_of:
            raise AnnotationError(
                split_file, f"class {action!r} (from the file name) is not in class_names.txt"
            )
        for number, line in _annotation_lines(split_file):
            parts = line.rsplit(None, 1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AnnotationError(
                    split_file,
                    f"expected '<video file> <tag>' with tag 0 (unused), 1 (train) or 2 (test), got {line!r}",
                    line=number,
                )
            if parts[1] == tag:
                entries.append(IndexEntry(str(root / action / parts[0]), label_of[action]))
    return entries


def _hmdb51_videos(root: Path) -> list[Path]:
    """Videos directly in ``root`` and in its sub-folders, folder by folder in sorted order."""
    folders = [root] + sorted(
        child for child in root.iterdir() if child.is_dir() and not child.name.startswith(".")
    )
    return [video for folder in folders for video in _videos_in(folder)]


def _hmdb51_folder_entries(
    root: Path, class_names: list[str]
) -> tuple[list[IndexEntry], list[tuple[str, str]]]:
    label_of = {name: label for label, name in enumerate(class_names)}
    entries, skipped = [], []
    for video in _hmdb51_videos(root):
        in_class_folder = video.parent != root and video.parent.name in label_of
        action = video.parent.name if in_class_folder else hmdb51_action(video.name, class_names)
        if action is None:
            skipped.append((str(video), "neither its folder nor its file name names a class"))
        else:
            entries.append(IndexEntry(str(video), label_of[action]))
    return entries, skipped


def _looks_like_hmdb51(root: Path) -> bool:
    """Split files, or class folders whose every video has an HMDB51-style name."""
    splits = _hmdb51_splits_folder(root)
    if any(splits.glob("*_test_split[0-9]*.txt")):
        return True
    videos = [video for videos in _videos_by_class(root).values() for video in videos]
    return bool(videos) and all(HMDB51_SUFFIX.search(video.stem) for video in videos)
