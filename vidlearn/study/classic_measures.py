"""The numbers the classic study's claims are decided by, measured on its trained models.

- ``class_metrics``: accuracy on groups of classes and the twin-swap rate, from a test confusion
  matrix (rows: true class, columns: predicted class, video level).
- ``shift_check``: what a shift of the clip by one frame does to early fusion's first layer and to
  a 3D convolution's features (the course: early fusion has no temporal shift invariance).
- ``inflation_check``: the inflated single-frame network on a constant video, and how many epochs
  the inflated and the from-scratch 3D networks need to reach the scratch network's final accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from vidlearn.data.dataset import ClipDataset
from vidlearn.data.prepared import PreparedStore
from vidlearn.data.samplers import ClipSpec
from vidlearn.engine.checkpoint import load_checkpoint
from vidlearn.engine.modeling import load_initial_weights, model_from_record
from vidlearn.engine.sources import load_splits
from vidlearn.models import create_model

SHIFT_CLIPS = 8


def group_accuracy(confusion: np.ndarray, class_names: Sequence[str], group: Sequence[str]) -> float:
    """Video accuracy over the test videos of the classes of ``group`` present in the run (NaN if none)."""
    rows = [class_names.index(name) for name in group if name in class_names]
    total = sum(confusion[r].sum() for r in rows)
    return float(sum(confusion[r, r] for r in rows) / total) if total else math.nan


def twin_swaps(
    confusion: np.ndarray, class_names: Sequence[str], pairs: Sequence[tuple[str, str]]
) -> tuple[float, int]:
    """Among the test videos of time-reversed classes that the model assigns to one of the two
    classes of their own pair, the fraction given the twin; and how many videos that is."""
    own = twin = 0
    for a, b in pairs:
        if a in class_names and b in class_names:
            i, j = class_names.index(a), class_names.index(b)
            own += confusion[i, i] + confusion[j, j]
            twin += confusion[i, j] + confusion[j, i]
    total = int(own + twin)
    return (float(twin / total) if total else math.nan), total


def class_metrics(
    metrics: dict[str, Any], class_names: list[str], pairs, reversed_classes, appearance_classes
) -> dict[str, Any]:
    """A run's entry of ``report.json`` from its evaluation (``EvaluationResult.to_json()``)."""
    confusion = np.asarray(metrics["confusion"], dtype=np.int64)
    per_class = {
        name: float(confusion[k, k] / confusion[k].sum()) if confusion[k].sum() else math.nan
        for k, name in enumerate(class_names)
    }
    swap_rate, pair_videos = twin_swaps(confusion, class_names, pairs)
    return {
        "video_top1": metrics["video_top1"],
        "clip_top1": metrics["clip_top1"],
        "per_class_video_accuracy": per_class,
        "appearance_top1": group_accuracy(confusion, class_names, appearance_classes),
        "reversed_top1": group_accuracy(confusion, class_names, reversed_classes),
        "twin_swap_rate": swap_rate,
        "twin_pair_videos": pair_videos,
        "test_videos": int(confusion.sum()),
    }


def trained_model(path) -> tuple[nn.Module, dict[str, Any]]:
    checkpoint = load_checkpoint(path)
    model = model_from_record(checkpoint.record)
    model.load_state_dict(checkpoint.model)
    return model.eval(), checkpoint.record


def test_clips(context, record: dict[str, Any], num_frames: int) -> torch.Tensor:
    """``SHIFT_CLIPS`` normalised test clips ``N x C x num_frames x H x W`` of the run's classes."""
    settings = record["input"]
    _, test_index = load_splits(str(context.shared["data"]), progress=False, classes=record["class_names"])
    spec = ClipSpec(
        num_frames=num_frames,
        target_fps=settings["target_fps"],
        stride=settings["stride"],
        size=settings["size"],
        short_side=settings["short_side"],
    )
    dataset = ClipDataset(
        test_index,
        spec,
        train=False,
        prepared=PreparedStore(context.shared["prepared"], str(context.shared["data"])),
    )
    picks = np.linspace(0, len(dataset) - 1, min(SHIFT_CLIPS, len(dataset))).round().astype(int)
    return torch.stack([dataset[int(k)][0][0] for k in picks])


def _first(model: nn.Module, kind: type[nn.Module]) -> nn.Module:
    return next(module for module in model.modules() if isinstance(module, kind))


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp_min(1e-12))


@torch.no_grad()
def shift_check(context, name: str) -> dict[str, Any]:
    """Clips of T + 1 frames; ``x`` their first T frames, ``x'`` the last T (the clip one frame later).

    - ``early_fusion_change``: ``|g(x') - g(x)| / |g(x)|`` for early fusion's first layer ``g``,
      whose 2D convolution has separate weights for every frame: the same motion one frame later
      meets other weights, so the response changes (no time axis to shift it along).
    - ``conv3d_shift_error``: for slow fusion's first 3D convolution ``h`` (time kernel k, padding
      p), ``|h(x')[t] - h(x)[t + 1]| / |h(x)|`` over the steps that see no padding: zero up to
      rounding, the features shift with the clip. ``conv3d_change`` is the unshifted difference.
    - ``early_fusion_output_change``: the mean total-variation distance between early fusion's
      class probabilities for ``x`` and ``x'``.
    """
    early, record = trained_model(context.out / "early_fusion" / "best.safetensors")
    slow, _ = trained_model(context.out / "slow_fusion" / "best.safetensors")
    frames = record["input"]["num_frames"]
    clips = test_clips(context, record, frames + 1)
    x, shifted = clips[:, :, :frames], clips[:, :, 1:]
    first_2d = _first(early, nn.Conv2d)
    stacked = lambda c: c.transpose(1, 2).flatten(1, 2)  # noqa: E731  b c t h w -> b (t c) h w, as EarlyFusion
    change = _relative(first_2d(stacked(shifted)), first_2d(stacked(x)))
    probabilities = early(x).softmax(1), early(shifted).softmax(1)
    output_change = float((probabilities[0] - probabilities[1]).abs().sum(1).mean() / 2)
    conv = _first(slow, nn.Conv3d)
    padding = conv.padding[0]
    kernel = conv.kernel_size[0]
    features, features_shifted = conv(x), conv(shifted)
    steps = features.shape[2]
    inside = slice(
        padding, steps - (kernel - 1 - padding) - 1
    )  # outputs whose input window has no padding, then one step less
    later = slice(inside.start + 1, inside.stop + 1)
    error = _relative(features_shifted[:, :, inside], features[:, :, later])
    return {
        "early_fusion_change": change,
        "early_fusion_output_change": output_change,
        "conv3d_shift_error": error,
        "conv3d_change": _relative(features_shifted, features),
        "clips": len(clips),
    }


def epochs_to_reach(curve: Sequence[float | None], target: float) -> float:
    """The first epoch (from 1) whose validation accuracy is at least ``target``; epochs + 1 if none."""
    for epoch, value in enumerate(curve, 1):
        if value is not None and value >= target - 1e-12:
            return float(epoch)
    return float(len(curve) + 1)


@torch.no_grad()
def inflation_check(context, name: str) -> dict[str, Any]:
    """``constant_video_difference``: largest |log-probability difference| between the trained single-frame
    network on a frame and the network inflated from it (replicate temporal padding) on a clip of
    that frame repeated; epochs each 3D network needs to reach the validation accuracy of the
    from-scratch network's chosen (best) epoch, from the validation curves."""
    single, record = trained_model(context.out / "single_frame" / "best.safetensors")
    inflated = create_model(
        "i3d_tower", num_classes=len(record["class_names"]), temporal_padding="replicate"
    ).eval()
    load_initial_weights(inflated, context.out / "single_frame" / "best.safetensors")
    frames = record["input"]["num_frames"]
    clips = test_clips(context, record, frames)
    constant = clips[:, :, :1].expand_as(clips).contiguous()
    # single_frame gives log-probabilities (log of the frame-averaged softmax); compare like with like.
    difference = float((inflated(constant).log_softmax(1) - single(constant)).abs().max())
    scratch = context.results["i3d_tower_scratch"]["val_video_top1_per_epoch"]
    from_2d = context.results["i3d_tower_inflated"]["val_video_top1_per_epoch"]
    measured = [value for value in scratch if value is not None]
    final = max(measured) if measured else math.nan
    return {
        "constant_video_difference": difference,
        "scratch_final_video_top1": final,
        "scratch_epochs_to_final": epochs_to_reach(scratch, final) if not math.isnan(final) else math.nan,
        "inflated_epochs_to_scratch_final": epochs_to_reach(from_2d, final)
        if not math.isnan(final)
        else math.nan,
    }
