"""``make demo``: synthesise SynthActions, train the course's fusion models, compare them in a report.

The comparison the course makes: a single-frame model is a strong baseline but cannot tell
time-reversed actions apart (MoveLeft from MoveRight, Grow from Shrink, ...), while models that
fuse time (early, slow fusion, C3D-style) can. The report shows what was measured, whatever it is.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vidlearn.data.prepared import PreparedSettings, prepare_videos
from vidlearn.data.synth import CLASSES, synthesize
from vidlearn.engine.checkpoint import load_checkpoint
from vidlearn.engine.config import TrainConfig
from vidlearn.engine.pretrain import PretrainConfig, pretrain
from vidlearn.engine.sources import load_splits
from vidlearn.engine.train import train
from vidlearn.errors import BadArgumentError
from vidlearn.viz.confusion import plot_confusion
from vidlearn.viz.report import plot_learning_curves, plot_pretraining_curve, section_slug, write_demo_report


@dataclass(frozen=True)
class DemoRun:
    """One row of the report: ``model`` trained with the demo's settings plus ``config`` overrides
    (e.g. ``{"input": "flow"}``), under the heading ``section``."""

    name: str
    model: str
    config: dict[str, Any] = field(default_factory=dict)
    section: str = "Where to fuse time"


def _runs(section: str, *runs: tuple[str, dict[str, Any]]) -> tuple[DemoRun, ...]:
    return tuple(DemoRun(model, model, config, section) for model, config in runs)


# Long-range structure: ThereAndBack looks like MoveRight then MoveLeft (or the reverse) in any
# short window; only a model that sees most of the video can tell it from the two moves.
LONG_RANGE_CLASS = "ThereAndBack"
LONG_RANGE_CLASSES = ["MoveLeft", "MoveRight", LONG_RANGE_CLASS]
_WHOLE_VIDEO = {"classes": LONG_RANGE_CLASSES, "sampling": "segments"}

VIDEOMAE_SECTION = "Masked pre-training (VideoMAE) with 10% of the labels"

DEMO_RUNS = (
    *_runs(
        "Where to fuse time",
        ("single_frame", {}),
        ("late_fusion_pool", {}),
        ("early_fusion", {}),
        ("slow_fusion", {}),
        ("c3d_small", {}),
    ),
    *_runs(
        "Two streams: appearance and motion",
        ("spatial_stream", {}),
        ("flow_stream", {"input": "flow"}),
        ("two_stream", {"input": "rgb+flow"}),
    ),
    DemoRun("slow_fusion_2s", "slow_fusion", {"classes": LONG_RANGE_CLASSES}, "Long-range structure"),
    DemoRun("slow_fusion_whole", "slow_fusion", _WHOLE_VIDEO, "Long-range structure"),
    DemoRun("slow_fusion_nl_whole", "slow_fusion_nl", _WHOLE_VIDEO, "Long-range structure"),
    DemoRun("lrcn_whole", "lrcn", _WHOLE_VIDEO, "Long-range structure"),
    DemoRun("tsn_whole", "tsn", _WHOLE_VIDEO, "Long-range structure"),
    *_runs(
        "Recurrent, segment-based and inflated CNNs",
        ("lrcn", {}),
        ("tsn", {"sampling": "segments"}),
        ("slow_fusion_nl", {}),
        # I3D's recipe: the single-frame network above, inflated to 3D and fine-tuned.
        ("i3d_tower", {"init": "single_frame/best.safetensors"}),
    ),
    *_runs(
        "Video transformers (tiny, from scratch)",
        ("vit_video", {"model_args": {"size": "tiny"}}),
        ("timesformer", {"model_args": {"size": "tiny"}}),
    ),
    # VideoMAE pre-training on all training videos without their labels comes first (see
    # run_demo); then the same tiny ViT is fine-tuned with a tenth of the labels, from scratch and
    # from the pre-trained encoder.
    DemoRun(
        "vit_video_10pct_scratch",
        "vit_video",
        {"model_args": {"size": "tiny"}, "label_fraction": 0.1},
        VIDEOMAE_SECTION,
    ),
    DemoRun(
        "vit_video_10pct_videomae",
        "vit_video",
        {"model_args": {"size": "tiny"}, "label_fraction": 0.1, "init": "videomae/encoder.safetensors"},
        VIDEOMAE_SECTION,
    ),
)
SECTIONS = tuple(dict.fromkeys(run.section for run in DEMO_RUNS))
DEMO_MODELS = tuple(run.name for run in DEMO_RUNS)


# The time-reversed pairs (a single frame cannot separate them) and the appearance classes (a
# single frame is enough): the two sides of the course's argument, in a set small enough to train
# five models in minutes.
DEMO_CLASSES = (
    "MoveLeft",
    "MoveRight",
    "Grow",
    "Shrink",
    "RotateClockwise",
    "RotateAnticlockwise",
    "Approach",
    "Recede",
    "FadeIn",
    "FadeOut",
    "Ring",
    "Crescent",
    "Hourglass",
)


@dataclass(frozen=True)
class DemoSettings:
    """Sizes chosen so the whole demo runs in about ten minutes on two CPU cores.

    Clips are 16 frames at 8 fps (2 seconds: low fps, as the course recommends, so that a clip sees
    enough of the motion) at 64 x 64.
    """

    videos_per_class: int = 36
    classes: tuple[str, ...] = DEMO_CLASSES
    epochs: int = 8
    eval_every: int = 2
    num_frames: int = 16
    target_fps: float = 8.0
    size: int = 64
    short_side: int = 64
    batch_size: int = 8
    lr: float = 3e-3
    test_clips: int = 2
    runs: tuple[DemoRun, ...] = DEMO_RUNS
    pretrain_epochs: int = 10
    seed: int = 0

    def quick(self) -> DemoSettings:
        """A minute-long smoke version (CI): few videos, one epoch, small clips."""
        return replace(
            self, videos_per_class=4, epochs=1, eval_every=1, size=32, short_side=32, pretrain_epochs=1
        )

    def only(self, sections: list[str]) -> DemoSettings:
        """The runs of the named sections (by number from 1, or by the start of their title)."""
        chosen = []
        for wanted in sections:
            matches = [
                t
                for i, t in enumerate(SECTIONS, 1)
                if wanted == str(i) or t.lower().startswith(wanted.lower())
            ]
            if not matches:
                listing = "; ".join(f"{i}: {t}" for i, t in enumerate(SECTIONS, 1))
                raise BadArgumentError(f"no demo section {wanted!r}; sections are {listing}")
            chosen += matches
        return replace(self, runs=tuple(run for run in self.runs if run.section in chosen))


@dataclass
class ModelRow:
    model: str
    section: str
    input: str
    params: int
    gflops_per_view: float
    clip_top1: float
    video_top1: float
    reversed_pairs_top1: float
    reversed_pairs_swapped: float
    long_range_top1: float
    train_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def reversed_pair_scores(
    confusion: np.ndarray, class_names: list[str], pairs: list[tuple[str, str]]
) -> tuple[float, float]:
    """On test videos of the time-reversed classes: video accuracy, and the fraction predicted as
    the class's time-reversed twin (the mistake a model blind to the order of frames makes)."""
    index = {name: i for i, name in enumerate(class_names)}
    correct = swapped = total = 0
    for a, b in pairs:
        for true, twin in ((index[a], index[b]), (index[b], index[a])):
            correct += confusion[true, true]
            swapped += confusion[true, twin]
            total += confusion[true].sum()
    return (correct / total, swapped / total) if total else (float("nan"), float("nan"))


def class_accuracy(confusion: np.ndarray, class_names: list[str], name: str) -> float:
    """Video accuracy on one class's test videos (NaN when the class is not in the run)."""
    if name not in class_names:
        return float("nan")
    row = confusion[class_names.index(name)]
    return float(row[class_names.index(name)] / row.sum()) if row.sum() else float("nan")


def time_reversed_pairs(data_root: Path) -> list[tuple[str, str]]:
    meta = json.loads((data_root / "synth.json").read_text())
    return [tuple(pair) for pair in meta["time_reversed_pairs"]]


def run_demo(out: str | Path, settings: DemoSettings = DemoSettings(), progress: bool = True) -> Path:
    """Run the whole demo into ``out``; returns the path of ``report.md``."""
    out = Path(out)
    started = time.perf_counter()
    data_root = out / "synthactions"
    synth = synthesize(
        data_root,
        num_videos=settings.videos_per_class * len(CLASSES),
        seed=settings.seed,
        num_untrimmed=2,
        progress=progress,
    )
    pairs = time_reversed_pairs(data_root)
    # Decoded once at the clips' short side: every run below then reads frames instead of decoding.
    prepared = out / f"prepared-s{settings.short_side}"
    train_index, test_index = load_splits(str(data_root), progress=False)
    prepare_videos(
        [e.path for e in (*train_index, *test_index)],
        prepared,
        data_root,
        PreparedSettings(settings.short_side),
        progress=progress,
    )
    pretraining = None
    if any(run.section == VIDEOMAE_SECTION for run in settings.runs):
        if progress:
            print("\n== pre-training VideoMAE (no labels) ==")
        pretraining = pretrain(
            PretrainConfig(
                data=str(data_root),
                out=str(out / "videomae"),
                encoder="tiny",
                epochs=settings.pretrain_epochs,
                batch_size=settings.batch_size,
                num_frames=settings.num_frames,
                target_fps=settings.target_fps,
                size=settings.size,
                short_side=settings.short_side,
                hflip=False,
                seed=settings.seed,
                picture_every=max(1, settings.pretrain_epochs // 2),
                prepared=str(prepared),
            ),
            progress=progress,
        )
    rows = []
    for run in settings.runs:
        name = run.name
        values = dict(
            model=run.model,
            data=str(data_root),
            out=str(out / name),
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            lr=settings.lr,
            warmup_epochs=1.0 if settings.epochs > 2 else 0.0,
            classes=list(settings.classes),
            eval_every=settings.eval_every,
            num_frames=settings.num_frames,
            target_fps=settings.target_fps,
            size=settings.size,
            short_side=settings.short_side,
            test_clips=settings.test_clips,
            seed=settings.seed,
            prepared=str(prepared),
        )
        config = TrainConfig(
            **{**values, **{k: (str(out / v) if k == "init" else v) for k, v in run.config.items()}}
        )
        if config.init and not Path(config.init).exists():
            raise BadArgumentError(
                f"demo run {name} starts from {config.init}, which an earlier section writes: run that section too"
            )
        if progress:
            print(f"\n== training {name} ==")
        result = train(config)
        record = load_checkpoint(
            result.last_checkpoint
        ).record  # the final model, evaluated after the last epoch
        metrics = record["metrics"]
        confusion = np.asarray(metrics["confusion"])
        class_names = record["class_names"]
        pair_top1, pair_swapped = reversed_pair_scores(
            confusion, class_names, [p for p in pairs if set(p) <= set(class_names)]
        )
        plot_confusion(
            confusion,
            class_names,
            out / name / "confusion.png",
            title=f"{name}: video-level confusion (test)",
        )
        rows.append(
            ModelRow(
                model=name,
                section=run.section,
                input=config.input,
                params=record["params"],
                gflops_per_view=record["flops_per_view"] / 1e9,
                clip_top1=metrics["clip_top1"],
                video_top1=metrics["video_top1"],
                reversed_pairs_top1=pair_top1,
                reversed_pairs_swapped=pair_swapped,
                long_range_top1=class_accuracy(confusion, class_names, LONG_RANGE_CLASS),
                train_seconds=result.seconds,
                history=result.history,
            )
        )
    for section in dict.fromkeys(row.section for row in rows):
        plot_learning_curves(
            [row for row in rows if row.section == section],
            out / f"learning_curves_{section_slug(section)}.png",
        )
    if pretraining is not None:
        plot_pretraining_curve(pretraining.history, out / "videomae" / "pretraining_loss.png")
    report = write_demo_report(out, rows, settings, synth, pairs, time.perf_counter() - started, pretraining)
    if progress:
        print(f"\nreport: {report}")
    return report
