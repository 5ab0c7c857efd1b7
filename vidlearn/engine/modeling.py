"""Building a model for a training run or from a checkpoint record, initialising it from another
run's weights, and measuring its cost."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from vidlearn.analysis import summarize
from vidlearn.engine.checkpoint import load_checkpoint
from vidlearn.engine.config import TrainConfig
from vidlearn.engine.inputs import input_settings, view_shape
from vidlearn.errors import BadArgumentError
from vidlearn.models import create_model, model_info
from vidlearn.models.inflation import fit_to_shape
from vidlearn.motion.dataset import INPUT_CHANNELS


def clip_dependent_args(name: str, num_frames: int, size: int, input: str = "rgb") -> dict[str, Any]:
    """Options some architectures need at construction (late fusion's MLP and early fusion's first
    convolution depend on T; some heads on the frame size; the first layer on the input channels)."""
    options = model_info(name).options
    given: dict[str, Any] = {}
    if "num_frames" in options:
        given["num_frames"] = num_frames
    if "frame_size" in options:
        given["frame_size"] = (size, size)
    if "in_channels" in options and input != "rgb":
        given["in_channels"] = INPUT_CHANNELS[input]
    return given


def build_model(config: TrainConfig, num_classes: int) -> nn.Module:
    input = input_settings(config)["input"]
    frames = config.num_frames
    if input == "flow" and config.model != "flow_stream":
        frames -= 1  # a flow clip has T-1 fields; flow_stream counts the clip's frames itself
    args = {**clip_dependent_args(config.model, frames, config.size, input), **config.model_args}
    model = create_model(config.model, num_classes=num_classes, **args)
    expected = getattr(model, "in_channels", None)
    if expected is not None and expected != INPUT_CHANNELS[input]:
        names = {channels: kind for kind, channels in INPUT_CHANNELS.items()}
        raise BadArgumentError(
            f"model {config.model} takes {expected}-channel clips ({names.get(expected, '?')}) but input={input} "
            f"gives {INPUT_CHANNELS[input]}; set input={names.get(expected, input)}"
        )
    model.vidlearn_args = args  # recorded in checkpoints so the same model can be rebuilt
    return model


def model_from_record(record: dict[str, Any]) -> nn.Module:
    """The (untrained) model a checkpoint record describes."""
    spec = record["model"]
    model = create_model(spec["name"], num_classes=spec["num_classes"], **spec["args"])
    model.vidlearn_args = dict(spec["args"])
    return model


def model_cost(model: nn.Module, config: TrainConfig) -> dict[str, int]:
    """Parameters and FLOPs (multiply-adds) of one view (``view_shape(config)``)."""
    summary = summarize(model, view_shape(config), receptive_fields=False)
    return {"params": int(summary.total_params), "flops": int(summary.total_flops)}


@dataclass
class InitReport:
    """What ``load_initial_weights`` did, tensor by tensor name."""

    copied: list[str] = field(default_factory=list)
    inflated: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)

    def summary(self) -> str:
        text = f"{len(self.copied)} tensors copied, {len(self.inflated)} inflated from 2D, {len(self.skipped)} left as initialised"
        return text + "".join(f"\n  kept: {name} ({why})" for name, why in self.skipped[:12])


def _read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.is_dir():
        path = path / "best.safetensors"
    if not path.exists():
        raise BadArgumentError(f"{path}: no such checkpoint to initialise from")
    try:
        return load_checkpoint(path).model
    except Exception:  # not a vidlearn checkpoint: a plain safetensors state dict (e.g. converted weights)
        try:
            return load_file(str(path))
        except Exception as exc:
            raise BadArgumentError(
                f"{path}: neither a vidlearn checkpoint nor a safetensors state dict ({exc})"
            ) from exc


def load_initial_weights(model: nn.Module, source: str | Path) -> InitReport:
    """Start ``model`` from the weights in ``source`` (a checkpoint, a run folder or a safetensors file).

    Tensors are matched by name. Equal shapes are copied; a 2D convolution weight ``O x I x kh x kw``
    meeting a 3D one ``O x I x kt x kh x kw`` is inflated (repeated over time and divided by kt, as
    I3D does); anything else (a classifier for other classes, a new layer) keeps its fresh
    initialisation and is listed in the report. No tensor matching at all is an error.
    """
    weights = _read_weights(source)
    report = InitReport()
    for name, target in model.state_dict().items():
        given = weights.get(name)
        fitted = None if given is None else fit_to_shape(given, target.shape)
        if given is None:
            report.skipped.append((name, "not in the source"))
        elif fitted is None:
            report.skipped.append(
                (name, f"shape {tuple(given.shape)} in the source, {tuple(target.shape)} here")
            )
        else:
            target.copy_(fitted)
            (report.copied if fitted is given else report.inflated).append(name)
    if not report.copied and not report.inflated:
        raise BadArgumentError(
            f"{source}: no weight matches this model by name and shape; is it the right checkpoint?"
        )
    return report
