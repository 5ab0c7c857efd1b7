"""Dataset formats: each reads a dataset's annotation files into the common ``VideoIndex``.

The loaders only read annotations and list folders, which is fast; ``scan`` (in
``vidlearn.data.index``) then probes the videos. ``load_dataset`` detects the format,
loads and scans in one call. ``docs/datasets.md`` describes every layout. One module per family of formats (``ucf101`` also
reads folder-per-class datasets and SynthActions); ``common`` holds what they share.
"""

from __future__ import annotations

from pathlib import Path

from vidlearn.data.formats.common import (
    SUBSET_ALIASES,
    VIDEO_EXTENSIONS,
    _csv_header,
    _subset,
    _videos_by_class,
    video_folder_index,
)
from vidlearn.data.formats.hmdb51 import (
    HMDB51_SPLITS_FOLDER,
    HMDB51_SUFFIX,
    HMDB51_TAGS,
    _looks_like_hmdb51,
    hmdb51_action,
    load_hmdb51,
)
from vidlearn.data.formats.kinetics import (
    KINETICS_COLUMNS,
    KINETICS_CSV_NAMES,
    KINETICS_MISSING,
    _kinetics_csv,
    load_kinetics,
)
from vidlearn.data.formats.labelled_csv import DATASET_CSV_NAMES, _dataset_csv, load_csv
from vidlearn.data.formats.ssv2 import (
    SSV2_LIST_NAMES,
    SSV2_VIDEOS_FOLDER,
    _find_ssv2_file,
    _ssv2_annotations_folder,
    load_ssv2,
)
from vidlearn.data.formats.ucf101 import attach_captions, load_folder, load_synthactions, load_ucf101
from vidlearn.data.index import VideoIndex
from vidlearn.data.index import scan as scan_videos
from vidlearn.errors import BadArgumentError

FORMATS = ("folder", "ucf101", "hmdb51", "kinetics", "ssv2", "csv", "synthactions")


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


__all__ = [
    "DATASET_CSV_NAMES",
    "FORMATS",
    "HMDB51_SPLITS_FOLDER",
    "HMDB51_SUFFIX",
    "HMDB51_TAGS",
    "KINETICS_COLUMNS",
    "KINETICS_CSV_NAMES",
    "KINETICS_MISSING",
    "SSV2_LIST_NAMES",
    "SSV2_VIDEOS_FOLDER",
    "SUBSET_ALIASES",
    "VIDEO_EXTENSIONS",
    "attach_captions",
    "detect_format",
    "hmdb51_action",
    "load_csv",
    "load_dataset",
    "load_folder",
    "load_hmdb51",
    "load_kinetics",
    "load_ssv2",
    "load_synthactions",
    "load_ucf101",
    "video_folder_index",
]
