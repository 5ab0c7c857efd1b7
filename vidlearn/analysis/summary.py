"""A model's layer table: output sizes, receptive fields, parameters and FLOPs, per layer and in total.

FLOPs count one multiply-add as one FLOP, as the papers' and the course's tables do, and only
for convolutions, linear layers and matrix products (attention included); batch norm, pooling,
activations and additions count as 0. See ``docs/analysis.md``.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from rich.table import Table
from torch import nn

from vidlearn.analysis.layers import LayerCall, ModelTrace, count_params, trace_layers
from vidlearn.analysis.receptive_field import receptive_fields as measure_receptive_fields
from vidlearn.errors import BadArgumentError
from vidlearn.models import create_model, model_info

FLOP_RULE = (
    "FLOPs: one multiply-add = one FLOP; convolutions, linear layers and matrix products only "
    "(batch norm, pooling, activations and additions count 0)."
)


@dataclass(frozen=True)
class LayerStats:
    """One row of the table, for one clip.

    ``output`` is the layer's output shape without the batch axis, ``[C, T, H, W]`` for video maps;
    a 2D layer that sees frames folded into the batch (``(B*T) x C x H x W``) reads the same way,
    ``[C, T, H, W]`` (``[D, T]`` for its per-frame vectors). Token layouts keep their own order
    (``[T, N, D]`` for tokens of frames folded into the batch). ``receptive_field`` is ``[t, h, w]`` in input frames and pixels, or ``None``
    when not measured or when the output does not depend on the input. ``params`` are the
    parameters the module owns (counted at its first call); ``flops`` are multiply-adds.
    """

    name: str
    type: str
    output: list[int]
    receptive_field: list[int] | None
    params: int
    flops: int


@dataclass(frozen=True)
class ModelSummary:
    """A model's rows for one input clip ``input = [C, T, H, W]``, and its totals.

    ``total_params`` counts every parameter of the model once; ``total_flops`` every multiply-add
    of one clip's forward pass (the sum of the rows' ``flops``).
    """

    input: list[int]
    layers: list[LayerStats]
    total_params: int
    total_flops: int

    def to_json(self) -> dict:
        """``{"input", "layers": [{"name", "output", "receptive_field", "params", "flops"}], "total_params", "total_flops"}``."""
        return {
            "input": list(self.input),
            "layers": [{k: v for k, v in asdict(layer).items() if k != "type"} for layer in self.layers],
            "total_params": self.total_params,
            "total_flops": self.total_flops,
        }

    def format_table(self, title: str | None = None) -> Table:
        """The rows as a rich ``Table``, FLOPs in G (or M for small models), with totals and the counting rule."""
        scale, unit = (1e9, "GFLOPs") if self.total_flops >= 1e9 else (1e6, "MFLOPs")
        table = Table(title=title, caption=FLOP_RULE, show_footer=True)
        table.add_column("layer", footer="total")
        table.add_column("type")
        table.add_column("output", footer="input " + " x ".join(map(str, self.input)))
        table.add_column("receptive field (T x H x W)")
        table.add_column("params", justify="right", footer=f"{self.total_params:,}")
        table.add_column(unit, justify="right", footer=f"{self.total_flops / scale:.2f}")
        for layer in self.layers:
            field = "-" if layer.receptive_field is None else " x ".join(map(str, layer.receptive_field))
            table.add_row(
                layer.name,
                layer.type,
                " x ".join(map(str, layer.output)),
                field,
                f"{layer.params:,}" if layer.params else "",
                f"{layer.flops / scale:.2f}" if layer.flops else "",
            )
        return table


def summarize(
    model: nn.Module, input_shape: Sequence[int], batch: int = 1, receptive_fields: bool = True
) -> ModelSummary:
    """Table of ``model``'s layers for clips of ``input_shape`` ``(C, T, H, W)``.

    Shapes and FLOPs come from one forward pass of a copy of the model on PyTorch's meta device
    (no arithmetic is done, the model is left untouched), or of the model itself if some
    operation has no meta version. ``batch`` clips go through it at once; FLOPs are reported per
    clip. Receptive fields (``receptive_fields=True``) take a few cheap extra passes of the model
    itself, one to two seconds for an 18-layer video ResNet; see ``vidlearn.analysis.receptive_field``.
    """
    shape = _check_input_shape(input_shape)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise BadArgumentError(f"batch must be a positive integer, got {batch!r}")
    trace = _trace(model, (batch, *shape))
    keys = [(call.name, call.call) for call in trace.layers]
    fields = measure_receptive_fields(model, shape, keys) if receptive_fields else [None] * len(keys)
    return ModelSummary(
        input=list(shape),
        layers=[_layer_stats(call, field, batch) for call, field in zip(trace.layers, fields)],
        total_params=count_params(model),
        total_flops=round(trace.total_flops / batch),
    )


def summarize_model(
    name: str,
    input_shape: Sequence[int] | None = None,
    num_classes: int = 400,
    receptive_fields: bool = True,
) -> ModelSummary:
    """``summarize`` the registered model ``name``; ``input_shape`` defaults to the model's own."""
    model = create_model(name, num_classes=num_classes)
    shape = model_info(name).default_input if input_shape is None else input_shape
    return summarize(model, shape, receptive_fields=receptive_fields)


def parse_input_shape(text: str) -> tuple[int, int, int, int]:
    """``"3x16x112x112"`` -> ``(3, 16, 112, 112)`` (C x T x H x W)."""
    if not re.fullmatch(r"\s*\d+(\s*[xX]\s*\d+){3}\s*", text):
        raise BadArgumentError(f"input shape must look like CxTxHxW, e.g. 3x16x112x112; got {text!r}")
    return _check_input_shape([int(part) for part in re.split(r"[xX]", text)])


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 4 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise BadArgumentError(
            f"input shape must be four positive integers (C, T, H, W), got {input_shape!r}"
        )
    return shape


def _trace(model: nn.Module, batch_shape: tuple[int, ...]) -> ModelTrace:
    try:
        return _trace_on_meta(model, batch_shape)
    except (NotImplementedError, RuntimeError):
        # An operation without a meta version, or one that reads values (``.item()``): run for real.
        pass
    was_training = model.training
    model.eval()
    device = next(itertools.chain(model.parameters(), model.buffers()), torch.empty(0)).device
    try:
        return trace_layers(model, torch.zeros(batch_shape, device=device))
    except RuntimeError as err:
        raise BadArgumentError(
            f"{type(model).__name__} cannot take clips of {' x '.join(map(str, batch_shape[1:]))}: {err}"
        ) from err
    finally:
        model.train(was_training)


def _trace_on_meta(model: nn.Module, batch_shape: tuple[int, ...]) -> ModelTrace:
    # The copy shares nothing with the model and allocates no memory for its weights.
    memo = {}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        meta = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = (
            nn.Parameter(meta, tensor.requires_grad) if isinstance(tensor, nn.Parameter) else meta
        )
    meta_model = copy.deepcopy(model, memo).eval()
    return trace_layers(meta_model, torch.zeros(batch_shape, device="meta"))


def _layer_stats(call: LayerCall, field: list[int] | None, batch: int) -> LayerStats:
    name = call.name if call.call == 0 else f"{call.name} (call {call.call + 1})"
    return LayerStats(
        name=name,
        type=call.type,
        output=_per_clip_shape(call.output, batch),
        receptive_field=field,
        params=call.params,
        flops=round(call.flops / batch),
    )


def _per_clip_shape(shape: tuple[int, ...], batch: int) -> list[int]:
    if shape and shape[0] == batch:
        return list(shape[1:])
    if shape and shape[0] % batch == 0:
        frames = shape[0] // batch
        if len(shape) in (2, 4):
            # A 2D network's frames (or segments) folded into the batch, (B*T) x C x H x W or
            # (B*T) x D: read with time after the channels, as every other layer (C x T x H x W).
            return [shape[1], frames, *shape[2:]]
        # Tokens (B*T) x N x D, or another axis (MViT's heads) folded: keep it first.
        return [frames, *shape[1:]]
    return list(shape)
