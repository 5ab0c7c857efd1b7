"""Something-Something v2: JSON lists of video ids and templates, a labels file, numbered webm files."""

from __future__ import annotations

import json
from pathlib import Path

from vidlearn.data.formats.common import _folder, _read_text, _subset
from vidlearn.data.index import UNKNOWN_LABEL, DatasetSource, IndexEntry, VideoIndex
from vidlearn.errors import AnnotationError

SSV2_VIDEOS_FOLDER = "20bn-something-something-v2"
SSV2_LIST_NAMES = {"train": "train", "val": "validation", "test": "test"}


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
                    list_file,
                    f"item {position} (id {item['id']}): class {name!r} is not in {labels_file.name}",
                )
            label = label_of[name]
        entries.append(IndexEntry(str(videos / f"{item['id']}.webm"), label))
    return VideoIndex(
        entries, class_names, DatasetSource("ssv2", str(root), (str(labels_file), str(list_file)))
    )


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
        raise AnnotationError(
            folder / f"{name}.json", f"file not found (nor something-something-v2-{name}.json)"
        )
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
