"""Building a model for a training run or from a checkpoint record, and measuring its cost."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vidlearn.analysis import summarize
from vidlearn.engine.config import TrainConfig
from vidlearn.models import create_model, model_info


def clip_dependent_args(name: str, num_frames: int, size: int) -> dict[str, Any]:
    """Options some architectures need at construction (late fusion's MLP and early fusion's first
    convolution depend on T; some heads on the frame size)."""
    options = model_info(name).options
    given: dict[str, Any] = {}
    if "num_frames" in options:
        given["num_frames"] = num_frames
    if "frame_size" in options:
        given["frame_size"] = (size, size)
    return given


def build_model(config: TrainConfig, num_classes: int) -> nn.Module:
    args = {**clip_dependent_args(config.model, config.num_frames, config.size), **config.model_args}
    model = create_model(config.model, num_classes=num_classes, **args)
    model.vidlearn_args = args  # recorded in checkpoints so the same model can be rebuilt
    return model


def model_from_record(record: dict[str, Any]) -> nn.Module:
    """The (untrained) model a checkpoint record describes."""
    spec = record["model"]
    model = create_model(spec["name"], num_classes=spec["num_classes"], **spec["args"])
    model.vidlearn_args = dict(spec["args"])
    return model


def model_cost(model: nn.Module, config: TrainConfig) -> dict[str, int]:
    """Parameters and FLOPs (multiply-adds) of one view, ``3 x T x size x size``."""
    summary = summarize(model, (3, config.num_frames, config.size, config.size), receptive_fields=False)
    return {"params": int(summary.total_params), "flops": int(summary.total_flops)}
