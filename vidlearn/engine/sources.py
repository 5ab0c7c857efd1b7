"""From ``--data PATH|synth`` to a train and a test index."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path

from vidlearn.data.formats import load_dataset, video_folder_index
from vidlearn.data.index import VideoIndex
from vidlearn.data.synth import synthesize
from vidlearn.errors import BadArgumentError

SYNTH_NAME = "synth"


def default_synth_dir() -> Path:
    """Where ``--data synth`` lives: ``$VIDLEARN_DATA/synthactions`` or ``./data/synthactions``."""
    return Path(os.environ.get("VIDLEARN_DATA", "data")) / "synthactions"


def resolve_data(data: str, progress: bool = True) -> Path:
    """A dataset path; ``synth`` is synthesised with the defaults (and completed if interrupted)."""
    if data != SYNTH_NAME:
        return Path(data)
    root = default_synth_dir()
    synthesize(root, progress=progress)  # renders what is missing; a complete set is checked in a second
    return root


def load_splits(
    data: str,
    split: int = 1,
    progress: bool = True,
    test_fraction: float = 0.25,
    classes: list[str] | None = None,
) -> tuple[VideoIndex, VideoIndex]:
    """Train and test indexes of a dataset.

    Formats with official splits (UCF101, HMDB51 with split files, SynthActions, Kinetics,
    Something-Something) use them. A dataset without one (a folder per class, HMDB51 without split
    files) is split here: ``test_fraction`` of each class goes to test, chosen by a hash of the file
    name, so the split is the same on every machine and does not move when files are added.
    ``classes`` keeps only those classes (relabelled 0..n-1 in the order given).
    """
    root = resolve_data(data, progress)
    train = load_dataset(root, split=split, subset="train", progress=progress)
    try:
        test = load_dataset(root, split=split, subset="test", progress=progress)
    except BadArgumentError:  # formats whose single subset has no test part
        test = train
    if [e.path for e in train.entries] == [e.path for e in test.entries]:
        train, test = holdout_split(train, test_fraction)
    if classes:
        train, test = select_classes(train, classes), select_classes(test, classes)
    for name, index in (("training", train), ("test", test)):
        if len(index) == 0:
            raise BadArgumentError(
                f"{root}: no usable {name} videos ({len(index.skipped)} skipped); without an official split, "
                "each class needs at least 2 videos so that one can be held out for testing"
            )
    return train, test


def select_classes(index: VideoIndex, names: list[str]) -> VideoIndex:
    """Only the videos of the named classes, relabelled ``0..len(names)-1`` in the order given."""
    unknown = [n for n in names if n not in index.class_names]
    if unknown:
        raise BadArgumentError(
            f"unknown class(es) {', '.join(unknown)}; the dataset has: {', '.join(index.class_names)}"
        )
    new_label = {index.class_names.index(n): i for i, n in enumerate(names)}
    kept = [dataclasses.replace(e, label=new_label[e.label]) for e in index.entries if e.label in new_label]
    return dataclasses.replace(index, entries=kept, class_names=list(names))


def holdout_split(index: VideoIndex, test_fraction: float) -> tuple[VideoIndex, VideoIndex]:
    """Per class, the ``test_fraction`` of videos with the smallest file-name hashes (at least one when a class has two or more)."""
    test_paths: set[str] = set()
    for label in range(len(index.class_names)):
        paths = sorted(
            (e.path for e in index.entries if e.label == label),
            key=lambda p: hashlib.sha1(Path(p).name.encode()).hexdigest(),
        )
        if len(paths) >= 2:
            test_paths.update(paths[: max(1, round(len(paths) * test_fraction))])
    return index.filter(lambda e: e.path not in test_paths), index.filter(lambda e: e.path in test_paths)


def label_subset(index: VideoIndex, fraction: float, seed: int = 0) -> VideoIndex:
    """Keep ``fraction`` of each class's videos (at least one per class), chosen by a hash of the
    file name and ``seed``: the few-label setting of semi-supervised experiments, the same on every
    machine."""
    if not 0 < fraction <= 1:
        raise BadArgumentError(f"label_fraction must be in (0, 1], got {fraction!r}")
    if fraction == 1:
        return index
    kept: set[str] = set()
    for label in range(len(index.class_names)):
        paths = sorted(
            (e.path for e in index.entries if e.label == label),
            key=lambda p: hashlib.sha1(f"{seed}:{Path(p).name}".encode()).hexdigest(),
        )
        kept.update(paths[: max(1, round(len(paths) * fraction))])
    return index.filter(lambda e: e.path in kept)


def validation_split(index: VideoIndex, fraction: float, seed: int = 0) -> tuple[VideoIndex, VideoIndex]:
    """Carve a validation subset from a training index: per class, whole recording groups (UCF101's
    and SynthActions' ``_gNN_`` in the file name; each file its own group otherwise) chosen by a
    hash of the group and ``seed`` until ``fraction`` of the class's videos are held out (at least
    one group when a class has two or more). Returns (train, validation); no group is in both, so
    that early stopping never sees a recording it trains on."""
    if not 0 < fraction < 1:
        raise BadArgumentError(f"val_fraction must be in (0, 1), got {fraction!r}")
    held: set[str] = set()
    for label in range(len(index.class_names)):
        groups: dict[str, list[str]] = {}
        for entry in index.entries:
            if entry.label == label:
                groups.setdefault(recording_group(entry.path), []).append(entry.path)
        if len(groups) < 2:
            continue
        total = sum(len(paths) for paths in groups.values())
        order = sorted(groups, key=lambda g: hashlib.sha1(f"{seed}:{g}".encode()).hexdigest())
        taken = 0
        for group in order[:-1]:  # at least one group stays for training
            if taken and taken >= total * fraction:
                break
            held.update(groups[group])
            taken += len(groups[group])
    return index.filter(lambda e: e.path not in held), index.filter(lambda e: e.path in held)


_GROUP = re.compile(r"^(.*_g\d+)_c\d+$")


def recording_group(path: str) -> str:
    """The recording a clip comes from: ``v_ApplyEyeMakeup_g08_c01.avi`` -> ``v_ApplyEyeMakeup_g08``
    (UCF101's and SynthActions' naming); any other file is its own group."""
    stem = Path(path).stem
    match = _GROUP.match(stem)
    return match.group(1) if match else stem


def unlabelled_videos(data: str, split: int = 1, progress: bool = True) -> VideoIndex:
    """Videos to learn from without labels: a dataset's training subset (labels then ignored), or
    every video under a folder that is not a known dataset format."""
    root = resolve_data(data, progress)
    try:
        return load_splits(data, split, progress)[0]
    except BadArgumentError:
        if not root.is_dir():
            raise
    return video_folder_index(root, progress=progress)
