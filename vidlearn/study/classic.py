"""The classic study (``make demo``): the course's classification models on SynthActions.

The course's argument, in runs whose numbers decide its claims: a single frame is a strong baseline
that cannot tell time-reversed actions apart (MoveLeft from MoveRight, Grow from Shrink, ...);
networks that fuse time (slow fusion, C3D) can; optical flow carries the motion and RGB the
appearance (two streams); short clips cannot see long-range structure (ThereAndBack) while models
over the whole video can; a 2D network inflated to 3D starts where it left off (I3D); masked
pre-training helps when labels are few (VideoMAE).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from vidlearn.data.prepared import PreparedSettings, prepare_videos
from vidlearn.data.synth import CLASSES, synthesize
from vidlearn.engine.checkpoint import load_checkpoint
from vidlearn.engine.config import TrainConfig
from vidlearn.engine.pretrain import PretrainConfig, pretrain
from vidlearn.engine.sources import load_splits
from vidlearn.engine.train import train
from vidlearn.study.claims import AllOf, AtLeast, AtMost, Between, Claim, Exceeds, Measure
from vidlearn.study.classic_measures import class_metrics, inflation_check, shift_check
from vidlearn.study.core import Study, StudyContext, StudyRun
from vidlearn.viz.confusion import plot_confusion
from vidlearn.viz.report import plot_learning_curves, section_slug

# The time-reversed pairs (a single frame cannot separate them) and the appearance classes (a
# single frame is enough): the two sides of the course's argument.
REVERSED_CLASSES = (
    "MoveLeft", "MoveRight", "Grow", "Shrink", "RotateClockwise", "RotateAnticlockwise",
    "Approach", "Recede", "FadeIn", "FadeOut",
)  # fmt: skip
APPEARANCE_CLASSES = ("Ring", "Crescent", "Hourglass")
CLASSIC_CLASSES = (*REVERSED_CLASSES, *APPEARANCE_CLASSES)
# ThereAndBack looks like MoveRight then MoveLeft (or the reverse) in any short window; only a
# model that sees most of the video can tell it from the two moves.
LONG_RANGE_CLASSES = ("MoveLeft", "MoveRight", "ThereAndBack")


@dataclass(frozen=True)
class ClassicSettings:
    """Clips are 16 frames at 8 fps (2 seconds: low fps, as the course recommends, so that a clip
    sees enough of the motion) at 64 x 64. ``recipes`` give per-model changes (learning rate,
    epochs) to the common recipe."""

    videos_per_class: int = 36
    epochs: int = 8
    eval_every: int = 1
    val_fraction: float = 0.15
    patience: int | None = None
    num_frames: int = 16
    target_fps: float = 8.0
    size: int = 64
    short_side: int = 64
    batch_size: int = 8
    lr: float = 3e-3
    test_clips: int = 2
    pretrain_epochs: int = 10

    def quick(self) -> ClassicSettings:
        """The CI smoke version: few videos, one epoch, small clips (numbers meaningless)."""
        return replace(self, videos_per_class=4, epochs=1, size=32, short_side=32, pretrain_epochs=1)


SETTINGS_KEY = "classic_settings"


def _settings(context: StudyContext) -> ClassicSettings:
    return context.shared[SETTINGS_KEY]


def setup(context: StudyContext) -> None:
    """SynthActions rendered once, decoded once into a prepared store that every run reads."""
    settings = ClassicSettings().quick() if context.quick else ClassicSettings()
    context.shared[SETTINGS_KEY] = settings
    data_root = context.out / "synthactions"
    synthesize(
        data_root,
        num_videos=settings.videos_per_class * len(CLASSES),
        seed=context.seed,
        num_untrimmed=0,
        progress=context.progress,
    )
    prepared = context.out / f"prepared-s{settings.short_side}"
    train_index, test_index = load_splits(str(data_root), progress=False)
    entries = [e.path for e in (*train_index, *test_index)]
    prepare_videos(
        entries, prepared, data_root, PreparedSettings(settings.short_side), progress=context.progress
    )
    context.shared["data"], context.shared["prepared"] = data_root, prepared
    context.shared["pairs"] = [
        tuple(p) for p in json.loads((data_root / "synth.json").read_text())["time_reversed_pairs"]
    ]


def train_run(
    name: str,
    model: str,
    section: str,
    classes: tuple[str, ...] = CLASSIC_CLASSES,
    needs: tuple[str, ...] = (),
    **changes: Any,
) -> StudyRun:
    """A run that trains ``model`` with the study's recipe plus ``changes`` (TrainConfig keys)."""

    def execute(context: StudyContext) -> dict[str, Any]:
        settings = _settings(context)
        values = dict(
            model=model,
            data=str(context.shared["data"]),
            out=str(context.out / name),
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            lr=settings.lr,
            warmup_epochs=1.0 if settings.epochs > 2 else 0.0,
            classes=list(classes),
            eval_every=settings.eval_every,
            val_fraction=settings.val_fraction,
            patience=settings.patience,
            num_frames=settings.num_frames,
            target_fps=settings.target_fps,
            size=settings.size,
            short_side=settings.short_side,
            test_clips=settings.test_clips,
            seed=context.seed,
            prepared=str(context.shared["prepared"]),
        )
        given = dict(changes, **({"init": str(context.out / changes["init"])} if "init" in changes else {}))
        result = train(TrainConfig(**{**values, **given}), quiet=not context.progress)
        # The model chosen on the validation split, evaluated once on the test split.
        record = load_checkpoint(result.best_checkpoint).record
        metrics = result.test["details"]
        plot_confusion(
            metrics["confusion"],
            record["class_names"],
            context.out / name / "confusion.png",
            title=f"{name}: video-level confusion (test)",
        )
        measured = class_metrics(
            metrics, record["class_names"], context.shared["pairs"], REVERSED_CLASSES, APPEARANCE_CLASSES
        )
        curve = [row.get("val_video_top1") for row in result.history]
        return {
            **measured,
            "best_epoch": result.test["epoch"],
            "epochs_run": len(result.history),
            "model": model,
            "input": record["config"]["input"],
            "params": record["params"],
            "gflops_per_view": record["flops_per_view"] / 1e9,
            "val_video_top1_per_epoch": curve,
            "train_loss_per_epoch": [row["train_loss"] for row in result.history],
            "seconds": result.seconds,
        }

    return StudyRun(name, execute, section, needs)


def pretraining_run(name: str, section: str) -> StudyRun:
    """VideoMAE on every training video, without labels."""

    def execute(context: StudyContext) -> dict[str, Any]:
        settings = _settings(context)
        config = PretrainConfig(
            data=str(context.shared["data"]), out=str(context.out / name), encoder="tiny", epochs=settings.pretrain_epochs,
            batch_size=settings.batch_size, num_frames=settings.num_frames, target_fps=settings.target_fps,
            size=settings.size, short_side=settings.short_side, hflip=False, seed=context.seed,
            picture_every=max(1, settings.pretrain_epochs // 2), prepared=str(context.shared["prepared"]),
        )  # fmt: skip
        result = pretrain(config, progress=context.progress)
        losses = [row["train_loss"] for row in result.history]
        return {
            "first_loss": losses[0],
            "last_loss": losses[-1],
            "train_loss_per_epoch": losses,
            "seconds": result.seconds,
        }

    return StudyRun(name, execute, section)


def measurement_run(name: str, section: str, measure, needs: tuple[str, ...]) -> StudyRun:
    return StudyRun(name, lambda context: measure(context, name), section, needs)


FUSE = "Where to fuse time"
STREAMS = "Two streams: appearance and motion"
LONG = "Long-range structure (MoveLeft, MoveRight, ThereAndBack)"
INFLATION = "Inflating a 2D network (I3D)"
MAE = "Masked pre-training (VideoMAE) with 10% of the labels"
TINY_VIT = {"size": "tiny"}

RUNS = (
    train_run("single_frame", "single_frame", FUSE),
    train_run("late_fusion_pool", "late_fusion_pool", FUSE),
    train_run("early_fusion", "early_fusion", FUSE),
    train_run("slow_fusion", "slow_fusion", FUSE),
    train_run("c3d_small", "c3d_small", FUSE),
    measurement_run("shift", FUSE, shift_check, needs=("early_fusion", "slow_fusion")),
    train_run("spatial_stream", "spatial_stream", STREAMS),
    train_run("flow_stream", "flow_stream", STREAMS, input="flow"),
    train_run("two_stream", "two_stream", STREAMS, input="rgb+flow"),
    train_run("slow_fusion_2s", "slow_fusion", LONG, LONG_RANGE_CLASSES),
    train_run("slow_fusion_whole", "slow_fusion", LONG, LONG_RANGE_CLASSES, sampling="segments"),
    train_run("lrcn_whole", "lrcn", LONG, LONG_RANGE_CLASSES, sampling="segments"),
    train_run("tsn_rgb_whole", "tsn", LONG, LONG_RANGE_CLASSES, sampling="segments"),
    train_run("i3d_tower_scratch", "i3d_tower", INFLATION, model_args={"temporal_padding": "replicate"}),
    train_run(
        "i3d_tower_inflated",
        "i3d_tower",
        INFLATION,
        model_args={"temporal_padding": "replicate"},
        init="single_frame/best.safetensors",
        needs=("single_frame",),
    ),
    measurement_run(
        "inflation",
        INFLATION,
        inflation_check,
        needs=("single_frame", "i3d_tower_scratch", "i3d_tower_inflated"),
    ),
    pretraining_run("videomae", MAE),
    train_run("vit_video_10pct_scratch", "vit_video", MAE, model_args=TINY_VIT, label_fraction=0.1),
    train_run(
        "vit_video_10pct_videomae",
        "vit_video",
        MAE,
        model_args=TINY_VIT,
        label_fraction=0.1,
        init="videomae/encoder.safetensors",
        needs=("videomae",),
    ),
)


def m(run: str, metric: str) -> Measure:
    return Measure(run, metric)


CLAIMS = (
    Claim(
        "single-frame-appearance",
        "A single-frame model is a strong baseline: one frame is enough to recognise appearance.",
        AtLeast(m("single_frame", "appearance_top1"), 0.90),
    ),
    Claim(
        "single-frame-blind-to-time",
        "A single-frame model cannot tell an action from its time-reversed twin (chance within a pair is 0.5).",
        Between(m("single_frame", "twin_swap_rate"), 0.35, 0.65),
    ),
    Claim(
        "3d-sees-time",
        "3D convolutions (slow fusion, C3D) see the order of frames and tell time-reversed actions apart.",
        AllOf(
            (
                AtLeast(m("slow_fusion", "video_top1"), 0.90),
                AtLeast(m("c3d_small", "video_top1"), 0.90),
                AtMost(m("slow_fusion", "twin_swap_rate"), 0.10),
                AtMost(m("c3d_small", "twin_swap_rate"), 0.10),
            )
        ),
    ),  # fmt: skip
    Claim(
        "where-to-fuse",
        "Fusing time slowly, throughout the network, beats fusing it at the end.",
        Exceeds(m("slow_fusion", "reversed_top1"), m("late_fusion_pool", "reversed_top1"), 0.30),
    ),
    Claim(
        "shift-invariance",
        "Early fusion is not shift-invariant in time (its output changes when a clip shifts); a 3D convolution's features shift with the clip.",
        AllOf(
            (AtLeast(m("shift", "early_fusion_change"), 0.05), AtMost(m("shift", "conv3d_shift_error"), 1e-5))
        ),
    ),
    Claim(
        "two-streams",
        "Optical flow carries the motion and RGB the appearance; fusing the two streams is at least as good as the better one.",
        AllOf(
            (
                AtLeast(m("flow_stream", "reversed_top1"), 0.90),
                AtMost(m("flow_stream", "appearance_top1"), 0.60),
                AtLeast(m("spatial_stream", "appearance_top1"), 0.90),
                AtMost(m("spatial_stream", "reversed_top1"), 0.60),
                Exceeds(m("two_stream", "video_top1"), m("flow_stream", "video_top1")),
                Exceeds(m("two_stream", "video_top1"), m("spatial_stream", "video_top1")),
            )
        ),
    ),  # fmt: skip
    Claim(
        "long-range",
        "A 2-second clip cannot see long-range structure; whole-video models that keep the order of their segments can.",
        AllOf(
            (
                AtMost(m("slow_fusion_2s", "video_top1"), 0.75),
                AtLeast(m("slow_fusion_whole", "video_top1"), 0.95),
                AtLeast(m("lrcn_whole", "video_top1"), 0.95),
            )
        ),
    ),  # fmt: skip
    Claim(
        "inflation",
        "A 2D network inflated to 3D computes the same on a constant video and learns faster than the 3D network from scratch, ending no lower.",
        AllOf(
            (
                AtMost(m("inflation", "constant_video_difference"), 1e-5),
                Exceeds(
                    m("inflation", "scratch_epochs_to_final"),
                    m("inflation", "inflated_epochs_to_scratch_final"),
                    1.0,
                ),
                Exceeds(m("i3d_tower_inflated", "video_top1"), m("i3d_tower_scratch", "video_top1")),
            )
        ),
    ),  # fmt: skip
    Claim(
        "masked-pretraining",
        "With few labels (10%), masked-autoencoder pre-training beats training from scratch.",
        Exceeds(
            m("vit_video_10pct_videomae", "video_top1"), m("vit_video_10pct_scratch", "video_top1"), 0.10
        ),
    ),
)


def sections(context: StudyContext, report: dict[str, Any]) -> list[str]:
    """Learning curves per section, the measured order of fusion, the confusion matrices."""
    runs = report["runs"]
    trained = [name for name in runs if "val_video_top1_per_epoch" in runs[name]]
    by_section: dict[str, list[str]] = {}
    for run in RUNS:
        if run.name in trained:
            by_section.setdefault(run.section, []).append(run.name)
    lines = ["## Learning curves", ""]
    for section, names in by_section.items():
        path = context.out / f"learning_curves_{section_slug(section)}.png"
        plot_learning_curves([_Curve(name, runs[name]) for name in names], path)
        lines.append(f"![{section}]({path.name})")
    fusion = [name for name in ("late_fusion_pool", "early_fusion", "slow_fusion") if name in runs]
    order = sorted(fusion, key=lambda name: runs[name].get("reversed_top1", 0.0))
    lines += [
        "",
        "Measured order on the time-reversed classes (worst to best): "
        + " < ".join(f"{n} ({runs[n].get('reversed_top1', float('nan')):.3f})" for n in order)
        + ".",
    ]
    if "tsn_rgb_whole" in runs:
        lines.append(
            f"TSN's average consensus over single RGB frames cannot see direction: {runs['tsn_rgb_whole']['video_top1']:.3f} on the long-range classes."
        )
    lines += [
        "",
        "Confusion matrices (video level, test set): "
        + ", ".join(f"[{n}]({n}/confusion.png)" for n in trained)
        + ".",
    ]
    return lines


@dataclass
class _Curve:
    """What ``plot_learning_curves`` reads of a run."""

    model: str
    run: dict[str, Any]

    @property
    def history(self) -> list[dict[str, Any]]:
        losses, accuracies = self.run["train_loss_per_epoch"], self.run["val_video_top1_per_epoch"]
        return [
            {"epoch": k + 1, "train_loss": loss, **({"val_video_top1": acc} if acc is not None else {})}
            for k, (loss, acc) in enumerate(zip(losses, accuracies))
        ]


STUDY = Study(
    name="classic",
    title="The classic study: the course's video classifiers on SynthActions",
    description=__doc__.split("\n\n", 1)[1].strip().replace("\n", " "),
    runs=RUNS,
    claims=CLAIMS,
    setup=setup,
    columns=(
        ("video_top1", "video acc"),
        ("clip_top1", "clip acc"),
        ("appearance_top1", "appearance acc"),
        ("reversed_top1", "reversed acc"),
        ("twin_swap_rate", "twin swaps"),
        ("twin_pair_videos", "in own pair"),
        ("gflops_per_view", "GFLOPs/view"),
        ("best_epoch", "best epoch"),
        ("epochs_run", "epochs run"),
    ),  # fmt: skip
    sections=sections,
)
