"""Dataset formats: each reads a dataset's annotation files into the common ``VideoIndex``.

The loaders only read annotations and list folders, which is fast; ``scan`` (in
``vidlearn.data.index``) then probes the videos. ``load_dataset`` detects the format,
loads and scans in one call. ``docs/datasets.md`` describes every layout.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from vidlearn.data.index import UNKNOWN_LABEL, DatasetSource, IndexEntry, VideoIndex
from vidlearn.data.index import scan as scan_videos
from vidlearn.errors import AnnotationError, BadArgumentError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")
FORMATS = ("folder", "ucf101", "hmdb51", "kinetics", "ssv2", "csv", "synthactions")
SUBSET_ALIASES = {"validation": "val", "validate": "val"}

# HMDB51 file names end in _<body>_<camera motion>_<people>_<viewpoint>_<quality>_<clip index>.
HMDB51_SUFFIX = re.compile(r"_[fuhl]_(?:cm|nm)_np\d+_(?:fr|ba|le|ri)_(?:goo|med|bad)_\d+$")
HMDB51_SPLITS_FOLDER = "testTrainMulti_7030_splits"
HMDB51_TAGS = {"train": "1", "test": "2"}

KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")
KINETICS_CSV_NAMES = {
    "train": ("train.csv",),
    "val": ("validate.csv", "val.csv", "validation.csv"),
    "test": ("test.csv",),
}

SSV2_VIDEOS_FOLDER = "20bn-something-something-v2"
SSV2_LIST_NAMES = {"train": "train", "val": "validation", "test": "test"}

KINETICS_MISSING = "video not found as <id>_<start>_<end> in the root, <label>/ or <split>/<label>/, nor as <id>"

DATASET_CSV_NAMES = ("segments.csv", "labels.csv")


def load_dataset(
    path: str | Path,
    format: str = "auto",
    split: int = 1,
    subset: str = "train",
    scan: bool = True,
    *,
    min_frames: int = 2,
    workers: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> VideoIndex:
    """Load a dataset folder (or annotation CSV) in any supported format as one ``VideoIndex``.

    ``format`` is one of ``FORMATS`` or ``"auto"`` (see ``detect_format``). ``split`` picks
    the official split of UCF101/HMDB51/SynthActions, ``subset`` is ``train``, ``val`` or
    ``test`` where the format has it (a single CSV is its own subset). With ``scan`` the
    videos are probed (see ``vidlearn.data.index.scan`` for the other arguments).
    """
    path = Path(path).absolute()
    if not path.exists():
        raise BadArgumentError(f"{path}: no such file or folder")
    name = detect_format(path) if format == "auto" else format
    if name not in FORMATS:
        raise BadArgumentError(f"unknown dataset format {format!r}; choose one of auto, {', '.join(FORMATS)}")
    index = _load(name, path, split, subset)
    if not scan:
        return index
    return scan_videos(index, min_frames=min_frames, workers=workers, cache=cache, progress=progress)


def detect_format(path: str | Path) -> str:
    """The format of a dataset folder or annotation CSV, from the files it holds."""
    path = Path(path).absolute()
    if path.is_file():
        header = set(_csv_header(path)) if path.suffix.lower() == ".csv" else set()
        if set(KINETICS_COLUMNS) <= header:
            return "kinetics"
        if "label" in header and header & {"video", "path"}:
            return "csv"
        raise BadArgumentError(
            f"{path}: cannot tell the dataset format; a CSV needs the Kinetics columns "
            f"{','.join(KINETICS_COLUMNS)} or the columns video,label[,start,end]"
        )
    if not path.is_dir():
        raise BadArgumentError(f"{path}: no such file or folder")
    if (path / "synth.json").is_file():
        return "synthactions"
    if (path / "ucfTrainTestlist" / "classInd.txt").is_file():
        return "ucf101"
    if any(_kinetics_csv(path, subset) for subset in KINETICS_CSV_NAMES):
        return "kinetics"
    if _find_ssv2_file(_ssv2_annotations_folder(path), "labels"):
        return "ssv2"
    if _looks_like_hmdb51(path):
        return "hmdb51"
    if _dataset_csv(path):
        return "csv"
    if _videos_by_class(path):
        return "folder"
    raise BadArgumentError(
        f"{path}: cannot tell the dataset format (no synth.json, ucfTrainTestlist/, Kinetics CSV, "
        f"Something-Something labels, HMDB51 files, {' or '.join(DATASET_CSV_NAMES)}, or class folders "
        f"of videos); pass format= one of {', '.join(FORMATS)}"
    )


def _load(name: str, path: Path, split: int, subset: str) -> VideoIndex:
    if name == "folder":
        return load_folder(path)
    if name == "ucf101":
        return load_ucf101(path, split=split, subset=subset)
    if name == "hmdb51":
        return load_hmdb51(path, split=split, subset=subset)
    if name == "synthactions":
        return load_synthactions(path, split=split, subset=subset)
    if name == "ssv2":
        return load_ssv2(path, subset=subset)
    if name == "kinetics":
        if path.is_file():
            return load_kinetics(path)
        canonical = _subset(subset, tuple(KINETICS_CSV_NAMES), "Kinetics")
        found = _kinetics_csv(path, canonical)
        if found is None:
            names = " or ".join(KINETICS_CSV_NAMES[canonical])
            raise BadArgumentError(f"{path}: no Kinetics CSV for subset {subset!r} (looked for {names})")
        return load_kinetics(found)
    found = path if path.is_file() else _dataset_csv(path)
    if found is None:
        raise BadArgumentError(f"{path}: no {' or '.join(DATASET_CSV_NAMES)} with columns video,label")
    synth_root = found.parent.parent
    if found.parent.name == "untrimmed" and (synth_root / "synth.json").is_file():
        # SynthActions segments are labelled with the clips' class list, not the sorted labels.
        return load_synthactions(synth_root, subset="untrimmed")
    return load_csv(found)


# Folder per class -------------------------------------------------------------------------


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
        IndexEntry(str(video), label) for label, name in enumerate(class_names) for video in videos_by_class[name]
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
    return VideoIndex(entries, class_names, DatasetSource("ucf101", str(root), (str(class_file), str(list_file))))


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
            path, f"expected '<Class>/<video> [class number]' with a class of classInd.txt, got {line!r}", line=number
        )
    return line, label_of[folder]


# HMDB51 -----------------------------------------------------------------------------------


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
            raise AnnotationError(split_file, f"class {action!r} (from the file name) is not in class_names.txt")
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
    folders = [root] + sorted(child for child in root.iterdir() if child.is_dir() and not child.name.startswith("."))
    return [video for folder in folders for video in _videos_in(folder)]


def _hmdb51_folder_entries(root: Path, class_names: list[str]) -> tuple[list[IndexEntry], list[tuple[str, str]]]:
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


# Kinetics ---------------------------------------------------------------------------------


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
        start, end = _segment(row["time_start"], row["time_end"], ("time_start", "time_end"), csv_path, number)
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
    folders = [root / split / name for name in label_folders if split] + [root / name for name in label_folders]
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


# Something-Something v2 -------------------------------------------------------------------


def load_ssv2(
    root: str | Path,
    annotations_dir: str | Path | None = None,
    videos_dir: str | Path | None = None,
    subset: str = "train",
) -> VideoIndex:
    """Something-Something v2: a labels JSON and train/validation/test JSON lists.

    Files are ``labels.json``, ``train.json``, ``validation.json``, ``test.json`` (or with the
    ``something-something-v2-`` prefix) in ``annotations_dir`` (default ``root/labels`` if
    present, else ``root``). Videos are ``<videos_dir>/<id>.webm`` (default
    ``root/20bn-something-something-v2`` if present, else ``root``). The class of an item is
    its template without brackets; test items have no template and get label -1.
    """
    root = _folder(root)
    subset = _subset(subset, tuple(SSV2_LIST_NAMES), "Something-Something v2")
    annotations = Path(annotations_dir).absolute() if annotations_dir else _ssv2_annotations_folder(root)
    videos = Path(videos_dir).absolute() if videos_dir else _ssv2_videos_folder(root)
    labels_file = _ssv2_file(annotations, "labels")
    list_file = _ssv2_file(annotations, SSV2_LIST_NAMES[subset])
    class_names = _ssv2_class_names(labels_file)
    label_of = {name: label for label, name in enumerate(class_names)}
    items = _read_json(list_file)
    if not isinstance(items, list):
        raise AnnotationError(list_file, "expected a JSON list of videos")
    entries = []
    for position, item in enumerate(items):
        if not isinstance(item, dict) or "id" not in item:
            raise AnnotationError(list_file, f"item {position}: expected an object with an 'id'")
        label = UNKNOWN_LABEL
        if "template" in item:
            name = str(item["template"]).replace("[", "").replace("]", "")
            if name not in label_of:
                raise AnnotationError(
                    list_file, f"item {position} (id {item['id']}): class {name!r} is not in {labels_file.name}"
                )
            label = label_of[name]
        entries.append(IndexEntry(str(videos / f"{item['id']}.webm"), label))
    return VideoIndex(entries, class_names, DatasetSource("ssv2", str(root), (str(labels_file), str(list_file))))


def _ssv2_annotations_folder(root: Path) -> Path:
    return root / "labels" if (root / "labels").is_dir() else root


def _ssv2_videos_folder(root: Path) -> Path:
    return root / SSV2_VIDEOS_FOLDER if (root / SSV2_VIDEOS_FOLDER).is_dir() else root


def _find_ssv2_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"something-something-v2-{name}.json", folder / f"{name}.json"):
        if candidate.is_file():
            return candidate
    return None


def _ssv2_file(folder: Path, name: str) -> Path:
    found = _find_ssv2_file(folder, name)
    if found is None:
        raise AnnotationError(folder / f"{name}.json", f"file not found (nor something-something-v2-{name}.json)")
    return found


def _ssv2_class_names(labels_file: Path) -> list[str]:
    """``{"Holding something": "0", ...}`` as class names in label order."""
    labels = _read_json(labels_file)
    if not isinstance(labels, dict) or not labels:
        raise AnnotationError(labels_file, "expected an object mapping class names to numbers")
    name_of_number = {}
    for name, value in labels.items():
        if not str(value).isdigit():
            raise AnnotationError(labels_file, f"class {name!r} has number {value!r}, not a whole number")
        name_of_number[int(value)] = name
    if sorted(name_of_number) != list(range(len(labels))):
        raise AnnotationError(labels_file, f"class numbers must run from 0 to {len(labels) - 1}, each once")
    return [name_of_number[number] for number in range(len(labels))]


def _read_json(path: Path) -> object:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise AnnotationError(path, f"not valid JSON: {error.msg}", line=error.lineno) from None


# Labelled videos or segments in a CSV -----------------------------------------------------


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
        raise AnnotationError(csv_path, "the header needs a 'video' (or 'path') column and a 'label' column", line=1)
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


# Shared readers ---------------------------------------------------------------------------


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
            raise AnnotationError(path, f"{len(fields)} fields where the header has {len(header)}", line=rows.line_num)
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
    start, end = (_seconds(text, column, path, number) for text, column in zip((start_text, end_text), columns))
    if not start < end:
        raise AnnotationError(path, f"{columns[0]} {start:g} s is not before {columns[1]} {end:g} s", line=number)
    return start, end


def _seconds(text: str, column: str, path: Path, number: int) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise AnnotationError(path, f"{column} {text!r} is not a number of seconds", line=number) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise AnnotationError(path, f"{column} {text!r} must be a non-negative number of seconds", line=number)
    return seconds


def video_folder_index(root: str | Path, progress: bool = True, workers: int | None = None) -> VideoIndex:
    """Every video anywhere under ``root``, without labels (for learning without labels)."""
    folder = _folder(root)
    entries = [IndexEntry(str(p)) for p in sorted(folder.rglob("*")) if _is_video(p)]
    if not entries:
        raise BadArgumentError(f"{folder}: no video files ({', '.join(sorted(VIDEO_EXTENSIONS))}) under this folder")
    return scan_videos(VideoIndex(entries, [], DatasetSource("videos", str(folder))), workers=workers, progress=progress)
