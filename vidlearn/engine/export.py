"""Exporting a model for deployment: ONNX, TorchScript, or a ``torch.export`` program."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vidlearn.engine.checkpoint import load_checkpoint
from vidlearn.engine.inputs import view_shape
from vidlearn.engine.modeling import clip_dependent_args, model_from_record
from vidlearn.errors import BadArgumentError
from vidlearn.files import atomic_path
from vidlearn.models import create_model, model_info

FORMATS = ("onnx", "torchscript", "exported")


def model_for_export(
    checkpoint: str | Path | None = None,
    model: str | None = None,
    num_classes: int = 400,
    input_shape: tuple[int, int, int, int] | None = None,
) -> tuple[nn.Module, tuple[int, int, int, int]]:
    """A model in eval mode and the clip shape ``(C, T, H, W)`` to trace it with: trained weights from a
    checkpoint (its input recipe gives the shape), or a freshly initialised registered model."""
    if (checkpoint is None) == (model is None):
        raise BadArgumentError("give either a checkpoint or a model name")
    if checkpoint is not None:
        loaded = load_checkpoint(checkpoint)
        net = model_from_record(loaded.record)
        net.load_state_dict(loaded.model)
        shape = input_shape or view_shape(loaded.record["config"])
    else:
        shape = input_shape or model_info(model).default_input
        net = create_model(model, num_classes=num_classes, **clip_dependent_args(model, shape[1], shape[2]))
    return net.eval(), tuple(shape)


def export_model(net: nn.Module, input_shape: tuple[int, int, int, int], out: str | Path, fmt: str) -> Path:
    """Write ``net`` traced on a ``1 x C x T x H x W`` clip to ``out`` (atomically), in ``fmt``."""
    if fmt not in FORMATS:
        raise BadArgumentError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, *input_shape)
    with torch.no_grad():
        net(example)  # a clip the model cannot take fails here with the model's own clear message
    with atomic_path(out) as temporary, torch.no_grad():
        if fmt == "onnx":
            # One self-contained file: external weight files would keep the temporary name.
            torch.onnx.export(
                net,
                (example,),
                temporary,
                dynamo=True,
                external_data=False,
                input_names=["clips"],
                output_names=["logits"],
                verbose=False,
            )
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.trace(net, example), temporary)
        else:
            torch.export.save(torch.export.export(net, (example,)), temporary)
    return out
