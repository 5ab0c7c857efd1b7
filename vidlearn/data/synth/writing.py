"""SynthActions on disk: clips, untrimmed videos, UCF101-style split files, captions, segments
and metadata, written so that an interrupted run resumes."""

from __future__ import annotations

import csv
import json
import math
import os
import time
import zipfile
from collections import deque
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import numpy as np

from vidlearn.data.synth.classes import CLASS_NAMES, CLASSES, TIME_REVERSED_PAIRS
from vidlearn.data.synth.ground_truth import (
    DISTRACTOR,
    NpyStream,
    boxes_document,
    boxes_of,
    ground_truth_path,
    parse_ground_truth,
    segments_document,
    write_flow,
)
from vidlearn.data.synth.rendering import render_with_instances
from vidlearn.data.synth.scenes import ClipPlan, Scene, Segment, UntrimmedPlan, plan_clip, plan_untrimmed
from vidlearn.errors import BadArgumentError
from vidlearn.files import atomic_path, write_text_atomic
from vidlearn.io import write_video
from vidlearn.progress import progress_bar

SYNTH_VERSION = 3

DEFAULT_VIDEOS_PER_CLASS = 30
DEFAULT_NUM_VIDEOS = DEFAULT_VIDEOS_PER_CLASS * len(CLASSES)
DEFAULT_NUM_UNTRIMMED = 10
TEST_FRACTION = 0.27  # UCF101's split 1 holds out 7 of 25 groups
# UCF101 groups hold 4-7 clips; a little smaller here keeps the split close to TEST_FRACTION.
MIN_CLIPS_PER_GROUP, MAX_CLIPS_PER_GROUP = 3, 6


def videos_per_class(num_videos: int) -> int:
    """Classes stay balanced: ``num_videos`` is rounded up to a multiple of the class count."""
    return math.ceil(num_videos / len(CLASSES))


@dataclass(frozen=True)
class GroupSplit:
    """How one class's clips fall into groups, and how many trailing groups are held out for test."""

    sizes: tuple[int, ...]  # clips per group, group 1 first
    test_groups: int

    @property
    def test_clips(self) -> int:
        return sum(self.sizes[len(self.sizes) - self.test_groups :])

    def is_test(self, group: int) -> bool:
        return group > len(self.sizes) - self.test_groups


def _even_sizes(clips: int, groups: int) -> tuple[int, ...]:
    # Smaller groups first, which leaves the larger ones for the test split at the end.
    base, extra = divmod(clips, groups)
    return (base,) * (groups - extra) + (base + 1,) * extra


def split_groups(clips: int) -> GroupSplit:
    """Group ``clips`` clips of one class and hold out the trailing groups whose share of clips is
    nearest TEST_FRACTION. At least four groups when there are that many clips, so even a tiny set
    has both splits; a single clip has no test split."""
    fewest = max(min(clips, 4), math.ceil(clips / MAX_CLIPS_PER_GROUP))
    most = max(fewest, math.ceil(clips / MIN_CLIPS_PER_GROUP))
    candidates = [GroupSplit(_even_sizes(clips, g), k) for g in range(fewest, most + 1) for k in range(1, g)]
    if not candidates:
        return GroupSplit((clips,), 0)
    return min(candidates, key=lambda s: (abs(s.test_clips / clips - TEST_FRACTION), len(s.sizes)))


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    classes: tuple[str, ...]
    clips: int
    train_clips: int
    test_clips: int
    untrimmed: int
    segments: int
    rendered: int  # videos written by this run
    skipped: int  # videos already complete from an earlier run
    seconds: float


@dataclass(frozen=True)
class _Settings:
    """What fixes the dataset's content; a directory is only ever filled with one of these."""

    seed: int
    videos_per_class: int
    num_untrimmed: int
    version: int = SYNTH_VERSION

    def as_dict(self) -> dict:
        return {
            "seed": self.seed,
            "videos_per_class": self.videos_per_class,
            "num_untrimmed": self.num_untrimmed,
            "version": self.version,
        }


def _csv_text(rows: Iterable[Sequence]) -> str:
    buffer = StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _check_settings(out_dir: Path, settings: _Settings) -> None:
    """Refuse to mix two datasets in one directory; identical settings resume."""
    record = out_dir / "synth.json"
    if not record.exists():
        return
    try:
        previous = json.loads(record.read_text(encoding="utf-8")).get("settings")
    except (OSError, ValueError) as error:
        raise BadArgumentError(f"{record}: unreadable ({error}); use an empty directory") from None
    if previous != settings.as_dict():
        raise BadArgumentError(
            f"{record}: {out_dir} already holds SynthActions made with {previous}, not {settings.as_dict()};"
            " re-run with the same arguments to resume, or use another directory"
        )


def _metadata(settings: _Settings, complete: bool, counts: dict) -> str:
    return (
        json.dumps(
            {
                "dataset": "SynthActions",
                "version": SYNTH_VERSION,
                "seed": settings.seed,
                "complete": complete,
                "settings": settings.as_dict(),
                "counts": counts,
                "classes": [
                    {"index": i + 1, "name": c.name, "family": c.family, "description": c.description}
                    for i, c in enumerate(CLASSES)
                ],
                "time_reversed_pairs": [list(pair) for pair in TIME_REVERSED_PAIRS],
            },
            indent=2,
        )
        + "\n"
    )


@dataclass(frozen=True)
class _VideoJob:
    """One video to render and which of its files are missing ("video" and ground-truth kinds)."""

    path: Path  # the .mp4
    scene: Scene
    classes: tuple[str, ...]  # per track: the actors' class names, then "distractor"
    segments: tuple[Segment, ...] | None  # untrimmed videos only
    missing: tuple[str, ...]


def _job(
    path: Path,
    scene: Scene,
    actor_labels: Sequence[int],
    segments: tuple[Segment, ...] | None,
    ground_truth: Sequence[str],
) -> _VideoJob:
    classes = tuple(CLASS_NAMES[label] for label in actor_labels)
    classes += (DISTRACTOR,) * (len(scene.tracks) - len(classes))
    wanted = [k for k in ground_truth if k != "segments" or segments is not None]
    missing = ("video",) * (not path.exists()) + tuple(
        k for k in wanted if not ground_truth_path(path, k).exists()
    )
    return _VideoJob(path, scene, classes, segments, missing)


def _write_job(job: _VideoJob) -> None:
    job.path.parent.mkdir(parents=True, exist_ok=True)
    if {"video", "masks", "boxes"} & set(job.missing):
        _write_pixels(job)
    if "flow" in job.missing:
        write_flow(ground_truth_path(job.path, "flow"), job.scene)
    if "segments" in job.missing:
        document = segments_document(job.path.name, job.segments, CLASS_NAMES)
        write_text_atomic(ground_truth_path(job.path, "segments"), document)


def _write_pixels(job: _VideoJob) -> None:
    """Render once for the video, the masks and the boxes, whichever are missing."""
    scene, camera = job.scene, job.scene.camera
    boxes: list[list] = []
    with ExitStack() as stack:
        masks = None
        if "masks" in job.missing:
            temporary = stack.enter_context(atomic_path(ground_truth_path(job.path, "masks"), suffix=".npz"))
            archive = stack.enter_context(zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED))
            masks = NpyStream(archive, "masks", (scene.frames, camera.height, camera.width), np.uint8)

        def frames():
            for frame, instances in render_with_instances(scene):
                if masks is not None:
                    masks.write(instances)
                if "boxes" in job.missing:
                    boxes.append(boxes_of(instances, len(scene.tracks)))
                yield frame

        if "video" in job.missing:
            write_video(job.path, frames(), camera.fps)
        else:
            deque(frames(), maxlen=0)
        if masks is not None:
            masks.close()
    if "boxes" in job.missing:
        actors = sum(name != DISTRACTOR for name in job.classes)
        write_text_atomic(
            ground_truth_path(job.path, "boxes"), boxes_document(job.path.name, job.classes, actors, boxes)
        )


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_jobs(jobs: list[_VideoJob], workers: int, progress: bool) -> None:
    workers = min(workers, len(jobs))
    with progress_bar(len(jobs), "SynthActions", enabled=progress) as advance:
        if workers <= 1:
            for job in jobs:
                _write_job(job)
                advance()
            return
        import multiprocessing

        # Chunks of a few videos amortise the pickling; many chunks per worker balance the load.
        chunksize = max(1, min(8, len(jobs) // (4 * workers)))
        # Fork where the platform has it: spawned workers would re-run a caller's script that lacks
        # an `if __name__ == "__main__"` guard. Workers leave OpenCV's thread settings alone:
        # cv2.setNumThreads in a child forked after the parent used OpenCV deadlocks.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with context.Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_job, jobs, chunksize=chunksize):
                advance()


def synthesize(
    out_dir: str | Path,
    num_videos: int = DEFAULT_NUM_VIDEOS,
    seed: int = 0,
    workers: int | None = None,
    num_untrimmed: int = DEFAULT_NUM_UNTRIMMED,
    progress: bool = True,
    ground_truth: str | Iterable[str] = (),
) -> SynthSummary:
    """Render SynthActions into ``out_dir`` (layout in docs/synthactions.md).

    ``num_videos`` trimmed clips in total, rounded up so that every class has the same count;
    ``num_untrimmed`` long videos with segment annotations. ``workers`` processes (default: every
    available core). ``ground_truth`` kinds (GROUND_TRUTH_KINDS, e.g. ``"masks,boxes,flow"``) are
    written beside each video (see vidlearn.data.synth.ground_truth). Files already complete from an
    earlier run with the same arguments are kept, so an interrupted run resumes, and asking for more
    ground truth later only writes what is missing; a directory made with other arguments is refused.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BadArgumentError(f"seed must be a non-negative integer, got {seed!r}")
    if num_videos < 1:
        raise BadArgumentError(f"num_videos must be at least 1, got {num_videos}")
    if num_untrimmed < 0:
        raise BadArgumentError(f"num_untrimmed must be at least 0, got {num_untrimmed}")
    if workers is not None and workers < 1:
        raise BadArgumentError(f"workers must be at least 1, got {workers}")
    ground_truth = parse_ground_truth(ground_truth)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    settings = _Settings(int(seed), videos_per_class(num_videos), num_untrimmed)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_settings(out_dir, settings)
    write_text_atomic(out_dir / "synth.json", _metadata(settings, complete=False, counts={}))

    split = split_groups(settings.videos_per_class)
    clips = [
        plan_clip(settings.seed, label, group, clip)
        for label in range(len(CLASSES))
        for group, size in enumerate(split.sizes, start=1)
        for clip in range(1, size + 1)
    ]
    untrimmed = [plan_untrimmed(settings.seed, index) for index in range(1, num_untrimmed + 1)]

    # Long videos first: they are the slowest jobs, and starting them early balances the workers.
    wanted = [
        _job(out_dir / "untrimmed" / p.name, p.scene, [s.label for s in p.segments], p.segments, ground_truth)
        for p in untrimmed
    ]
    wanted += [
        _job(out_dir / "clips" / p.relative_path, p.scene, [p.label], None, ground_truth) for p in clips
    ]
    jobs = [job for job in wanted if job.missing]
    _run_jobs(jobs, workers or _default_workers(), progress)

    _write_split_files(out_dir, clips, split)
    _write_captions(out_dir, clips)
    segments = _write_segments(out_dir, untrimmed)
    test_clips = sum(split.is_test(p.group) for p in clips)
    counts = {
        "classes": len(CLASSES),
        "clips": len(clips),
        "clips_per_class": settings.videos_per_class,
        "groups_per_class": len(split.sizes),
        "test_groups_per_class": split.test_groups,
        "train": len(clips) - test_clips,
        "test": test_clips,
        "untrimmed": len(untrimmed),
        "segments": segments,
    }
    write_text_atomic(out_dir / "synth.json", _metadata(settings, complete=True, counts=counts))
    return SynthSummary(
        out_dir=out_dir,
        classes=CLASS_NAMES,
        clips=len(clips),
        train_clips=len(clips) - test_clips,
        test_clips=test_clips,
        untrimmed=len(untrimmed),
        segments=segments,
        rendered=len(jobs),
        skipped=len(wanted) - len(jobs),
        seconds=time.perf_counter() - started,
    )


def _write_split_files(out_dir: Path, clips: Sequence[ClipPlan], split: GroupSplit) -> None:
    """UCF101's ucfTrainTestlist: 1-based class indices; train lines carry the label, test lines do not."""
    lists = out_dir / "ucfTrainTestlist"
    lists.mkdir(exist_ok=True)
    write_text_atomic(
        lists / "classInd.txt", "".join(f"{i} {name}\n" for i, name in enumerate(CLASS_NAMES, start=1))
    )
    train = "".join(f"{p.relative_path} {p.label + 1}\n" for p in clips if not split.is_test(p.group))
    test = "".join(f"{p.relative_path}\n" for p in clips if split.is_test(p.group))
    write_text_atomic(lists / "trainlist01.txt", train)
    write_text_atomic(lists / "testlist01.txt", test)


def _write_captions(out_dir: Path, clips: Sequence[ClipPlan]) -> None:
    rows = [(p.relative_path, CLASS_NAMES[p.label], p.caption) for p in clips]
    write_text_atomic(out_dir / "captions.csv", _csv_text([("path", "label", "caption"), *rows]))


def _write_segments(out_dir: Path, untrimmed: Sequence[UntrimmedPlan]) -> int:
    """segments.csv (written even when empty, so readers find the file); returns the row count."""
    rows = [
        (p.name, CLASS_NAMES[s.label], f"{s.start:.6f}", f"{s.end:.6f}")
        for p in untrimmed
        for s in p.segments
    ]
    folder = out_dir / "untrimmed"
    folder.mkdir(exist_ok=True)
    write_text_atomic(folder / "segments.csv", _csv_text([("video", "label", "start", "end"), *rows]))
    return len(rows)
