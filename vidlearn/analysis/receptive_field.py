"""Receptive fields (T x H x W, in input frames and pixels) of a model's layers, by gradients.

The receptive field of a layer is the box of input positions that can change the central unit of
its output (the middle index along every axis, channels included). It is measured, not derived,
so residual branches, frames folded into the batch or stacked as channels, crops and attention
need no special rules:

1. The model runs on a positive random clip under ``SupportMode``, which swaps every operation
   that could make contributions cancel (or block them) for a twin with the same geometry and only
   positive weights: a convolution becomes a uniform average over its window (and over its group's
   input channels), a linear layer an average of its inputs, a max-pool an average pool of the same
   kernel, stride and padding, softmax attention (``scaled_dot_product_attention`` without a mask, or with a finite additive
   bias) uniform attention; normalisation layers and rectifiers become the identity. Everything else
   (reshapes, crops, concatenations, additions) runs as written. Nothing can cancel, so the input
   positions with a nonzero gradient of the central unit are exactly those wired to it.
2. Along each axis where that box touches the clip's border (and so may be cut off by it) the
   clip is enlarged along that axis alone, doubling until the box fits inside. A layer whose output
   shape does not change when the clip grows (after a global pool or a flatten + linear), or that
   the model cannot even reach with the larger clip (early fusion's fixed number of frames, C3D's
   fixed fc6), sees the whole clip along that axis: its field is the clip's size there. So is a
   field still at the border of a clip 32 times larger (one that grows with the clip).

A convolution's twin gives all its output channels one value, so twins pass one channel between
them behind broadcast views: a probe costs a small fraction of a real forward pass (about one
second for all layers of R3D-18 at 16 x 112 x 112).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from vidlearn.analysis.layers import first_tensor, module_names
from vidlearn.errors import VidlearnError

# (module name, call index): a layer row, as ``trace_layers`` names it.
LayerKey = tuple[str, int]
# (first, last) input index reached along one axis.
Span = tuple[int, int]

SPATIOTEMPORAL_AXES = 3  # T, H, W after B x C
# A field still at the border of a clip 2**5 = 32 times larger is taken to cover any clip.
MAX_DOUBLINGS = 5


def _average_pool_instead(avg_pool: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def pool(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        if return_indices or not _all_ones(dilation, input.dim() - 2):
            raise VidlearnError(
                "receptive fields: max-pooling with dilation or returned indices has no average-pool twin; "
                "summarize with receptive_fields=False"
            )
        return avg_pool(input, kernel_size, stride, padding, ceil_mode)

    return pool


def _adaptive_average_pool_instead(avg_pool: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    def pool(input, output_size, return_indices=False):
        if return_indices:
            raise VidlearnError(
                "receptive fields: adaptive max-pooling that returns indices has no average-pool twin; "
                "summarize with receptive_fields=False"
            )
        return avg_pool(input, output_size)

    return pool


def _window_average(input, kernel, stride, padding, dilation) -> torch.Tensor:
    """Each channel averaged over a convolution's window (zero padding counted, like a convolution's)."""
    dims = len(kernel)
    padding = (padding,) * dims if isinstance(padding, int) else padding
    if (
        _all_ones(dilation, dims)
        and not isinstance(padding, str)
        and all(2 * p <= k <= size for p, k, size in zip(padding, kernel, input.shape[2:]))
    ):
        # The same numbers as the convolution below (average pooling accepts fewer geometries),
        # with a much faster backward pass on CPU.
        return (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[dims - 1](input, kernel, stride, padding)
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    channels = input.shape[1]
    window = torch.full(
        (channels, 1, *kernel), 1.0 / math.prod(kernel), dtype=input.dtype, device=input.device
    )
    return conv(input, window, None, stride, padding, dilation, channels)


def _all_ones(value: int | Sequence[int], dims: int) -> bool:
    return all(v == 1 for v in ((value,) * dims if isinstance(value, int) else value))


def _uniform_attention(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs
):
    """Every query attends to every key with equal weight: the support of softmax attention, in linear time."""
    # An additive float bias with finite values (relative positions, MViT) blocks nothing.
    blocking_mask = attn_mask is not None and (
        attn_mask.dtype == torch.bool or not bool(torch.isfinite(attn_mask).all())
    )
    if blocking_mask or is_causal or kwargs.get("enable_gqa", False):
        # A mask decides who sees whom, and grouped heads change shapes: run the real thing.
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=attn_mask, is_causal=is_causal, scale=scale, **kwargs
        )
    return value.mean(dim=-2, keepdim=True).expand(*query.shape[:-1], value.shape[-1])


def _identity(input, *args, **kwargs):
    return input


# Per-channel operations: their twins (max -> average) or themselves, run by ``SupportMode._per_channel``.
_PER_CHANNEL_TWINS: dict[Callable[..., Any], Callable[..., torch.Tensor]] = {
    F.max_pool1d: _average_pool_instead(F.avg_pool1d),
    F.max_pool2d: _average_pool_instead(F.avg_pool2d),
    F.max_pool3d: _average_pool_instead(F.avg_pool3d),
    F.adaptive_max_pool1d: _adaptive_average_pool_instead(F.adaptive_avg_pool1d),
    F.adaptive_max_pool2d: _adaptive_average_pool_instead(F.adaptive_avg_pool2d),
    F.adaptive_max_pool3d: _adaptive_average_pool_instead(F.adaptive_avg_pool3d),
    F.avg_pool1d: F.avg_pool1d,
    F.avg_pool2d: F.avg_pool2d,
    F.avg_pool3d: F.avg_pool3d,
    F.adaptive_avg_pool1d: F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d: F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d: F.adaptive_avg_pool3d,
}

_IDENTITY_TWINS = (
    # Normalisation rescales per channel (or mixes channels at one position); as the identity its
    # statistics cannot cancel contributions, and the field is that of the layers' windows.
    F.batch_norm,
    F.instance_norm,
    F.layer_norm,
    F.group_norm,
    F.rms_norm,
    F.local_response_norm,
    # Rectifiers would block the gradient wherever a value happens to be cut off; a field is about
    # which positions are wired to a unit, not about one input's values.
    F.relu,
    torch.relu_,
    torch.Tensor.relu,
    torch.Tensor.relu_,
    F.relu6,
    F.hardtanh,
    F.leaky_relu,
)


class SupportMode(TorchFunctionMode):
    """Within this context, run convolutions, linear layers, pools, norms and rectifiers as positive twins.

    A convolution's twin gives all its output channels one value (the average over its window and
    its group's input channels); it returns a broadcast view of that one channel, and the twins
    after it work on the one channel. A model that writes into a layer's output in place
    (``out += shortcut``) cannot write into such a view: with ``materialize=True`` twins return
    real tensors instead (slower).
    """

    def __init__(self, materialize: bool = False):
        super().__init__()
        self.materialize = materialize
        # id(view) -> (view, its one channel); the view is kept so that its id stays its own.
        self._broadcasts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._twins: dict[Callable[..., Any], Callable[..., Any]] = {
            F.conv1d: self._conv,
            F.conv2d: self._conv,
            F.conv3d: self._conv,
            F.linear: self._linear,
            F.scaled_dot_product_attention: _uniform_attention,
            **{func: self._per_channel(twin) for func, twin in _PER_CHANNEL_TWINS.items()},
            **dict.fromkeys(_IDENTITY_TWINS, _identity),
            # Residual connections: a sum of two broadcasts is the broadcast of a sum.
            **{func: self._add(func) for func in (torch.add, torch.Tensor.add, torch.Tensor.__add__)},
        }

    def __torch_function__(self, func, types, args=(), kwargs=None):
        return self._twins.get(func, func)(*args, **(kwargs or {}))

    def one_channel(self, tensor: torch.Tensor) -> torch.Tensor | None:
        """The single channel behind ``tensor`` if it is a twin's broadcast output, else ``None``."""
        entry = self._broadcasts.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else None

    def _broadcast(self, one_channel: torch.Tensor, channels: int) -> torch.Tensor:
        view = one_channel.expand(-1, channels, *one_channel.shape[2:])
        if self.materialize:
            return view.contiguous()
        self._broadcasts[id(view)] = (view, one_channel)
        return view

    def _conv(self, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        kernel = tuple(weight.shape[2:])
        one_channel = self.one_channel(input)
        if one_channel is not None:
            # All input channels hold one value, so every group's average is that value.
            groups, group_means = 1, one_channel
        else:
            group_means = input.unflatten(1, (groups, -1)).mean(dim=2)
        out = _window_average(group_means, kernel, stride, padding, dilation)
        if groups == 1:
            return self._broadcast(out, weight.shape[0])
        return out.repeat_interleave(weight.shape[0] // groups, dim=1)

    def _linear(self, input, weight, bias=None):
        out = input.mean(dim=-1, keepdim=True).expand(*input.shape[:-1], weight.shape[0])
        return out.contiguous() if self.materialize else out

    def _add(self, add: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def run(input, other, *args, **kwargs):
            one_channel = self.one_channel(input)
            other_channel = self.one_channel(other) if isinstance(other, torch.Tensor) else None
            if one_channel is None or other_channel is None or args or kwargs or input.shape != other.shape:
                return add(input, other, *args, **kwargs)
            return self._broadcast(one_channel + other_channel, input.shape[1])

        return run

    def _per_channel(self, op: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``op`` applied to the one channel behind a broadcast input, or to the input as it is."""

        def run(input, *args, **kwargs):
            one_channel = self.one_channel(input)
            if one_channel is None:
                return op(input, *args, **kwargs)
            return self._broadcast(op(one_channel, *args, **kwargs), input.shape[1])

        return run


class _EnoughLayers(Exception):
    """Raised from a hook to stop a probe once every wanted layer has run."""


@dataclass
class _Probe:
    """One run of the model in ``SupportMode`` on a positive clip: the wanted layers' outputs."""

    clip: torch.Tensor
    mode: SupportMode
    outputs: dict[LayerKey, torch.Tensor]
    # By output tensor: a layer returning its input (a norm's twin) shares its predecessor's answer.
    _spans: dict[int, tuple[Span, ...] | None] = field(default_factory=dict)

    def output_shape(self, key: LayerKey) -> tuple[int, ...] | None:
        """Shape of the layer's output; ``None`` if the model failed before the layer ran."""
        return tuple(self.outputs[key].shape) if key in self.outputs else None

    def spans(self, key: LayerKey) -> tuple[Span, ...] | None:
        """Per axis (T, H, W), the first and last input index reaching the centre of the layer's output.

        ``None`` when no input position reaches it.
        """
        output = self.outputs[key]
        if id(output) not in self._spans:
            self._spans[id(output)] = self._central_spans(output)
        return self._spans[id(output)]

    def _central_spans(self, output: torch.Tensor) -> tuple[Span, ...] | None:
        if not output.requires_grad:
            return None
        index = tuple(size // 2 for size in output.shape)
        one_channel = self.mode.one_channel(output)
        # Through the one channel behind a broadcast output, the gradient skips the broadcast.
        centre = output[index] if one_channel is None else one_channel[(index[0], 0, *index[2:])]
        (gradient,) = torch.autograd.grad(centre, self.clip, retain_graph=True, allow_unused=True)
        if gradient is None:
            return None
        reached = gradient[0].abs().amax(dim=0)  # T x H x W, nonzero where the centre is reached
        if not reached.any():
            return None
        spans = []
        for axis in range(SPATIOTEMPORAL_AXES):
            others = tuple(a for a in range(SPATIOTEMPORAL_AXES) if a != axis)
            indices = reached.amax(dim=others).nonzero().flatten()
            spans.append((int(indices[0]), int(indices[-1])))
        return tuple(spans)


@dataclass
class _Prober:
    model: nn.Module
    materialize: bool = False

    def run(self, clip_shape: tuple[int, ...], layers: Iterable[LayerKey], allow_failure: bool) -> _Probe:
        """Run the model until every wanted layer has run.

        With ``allow_failure``, an exception from the model ends the run: the layers that ran
        before it are observed, the others are missing.
        """
        wanted = set(layers)
        parameter = next(self.model.parameters(), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
        dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
        generator = torch.Generator().manual_seed(0)
        # Values in [1, 2): positive, and uneven, so that attention weights differ between positions.
        clip = (1 + torch.rand((1, *clip_shape), generator=generator)).to(device, dtype).requires_grad_()
        probe = _Probe(clip, SupportMode(self.materialize), {})
        names = module_names(self.model)
        calls: dict[nn.Module, int] = {}

        def record(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            call = calls.get(module, 0)
            calls[module] = call + 1
            key = (names[module], call)
            if key in wanted:
                probe.outputs[key] = first_tensor(output)
                if len(probe.outputs) == len(wanted):
                    raise _EnoughLayers

        handles = [module.register_forward_hook(record) for module in names]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad(), probe.mode:
                self.model(clip)
        except _EnoughLayers:
            pass
        except Exception:
            # A larger clip may be refused in any way the model likes (its own checks, torch's
            # shape errors, einops' ...); what matters is which layers ran before that.
            if not allow_failure:
                raise
        finally:
            self.model.train(was_training)
            for handle in handles:
                handle.remove()
        return probe


def receptive_fields(
    model: nn.Module, clip_shape: Sequence[int], layers: Sequence[LayerKey]
) -> list[list[int] | None]:
    """Receptive field ``[t, h, w]`` of each of ``layers`` for clips of ``clip_shape`` ``(C, T, H, W)``.

    ``None`` where the layer's output does not depend on the input at all.
    """
    threads = torch.get_num_threads()
    # The probes run many small one-channel operations: worker threads only add synchronisation,
    # which costs dearly (up to 50x) when other processes share the cores.
    torch.set_num_threads(1)
    try:
        return _receptive_fields(model, tuple(clip_shape), layers)
    finally:
        torch.set_num_threads(threads)


def _receptive_fields(
    model: nn.Module, clip_shape: tuple[int, ...], layers: Sequence[LayerKey]
) -> list[list[int] | None]:
    prober = _Prober(model)
    try:
        base = prober.run(clip_shape, layers, allow_failure=False)
    except RuntimeError:
        # Most likely the model writes into a layer's output in place, which a broadcast view refuses.
        prober = _Prober(model, materialize=True)
        base = prober.run(clip_shape, layers, allow_failure=False)
    base_spans = {key: base.spans(key) for key in layers}
    fields: dict[LayerKey, list[int]] = {key: [0] * SPATIOTEMPORAL_AXES for key in layers}
    for axis in range(SPATIOTEMPORAL_AXES):
        clip_size = clip_shape[1 + axis]
        clipped = []
        for key, spans in base_spans.items():
            if spans is not None and _inside(spans[axis], clip_size):
                fields[key][axis] = _width(spans[axis])
            elif spans is not None:
                clipped.append(key)
        widths = _widths_on_larger_clips(prober, clip_shape, axis, clipped, base)
        for key, width in widths.items():
            fields[key][axis] = width
    return [None if base_spans[key] is None else fields[key] for key in layers]


def _widths_on_larger_clips(
    prober: _Prober, clip_shape: tuple[int, ...], axis: int, pending: list[LayerKey], base: _Probe
) -> dict[LayerKey, int]:
    """Field widths along ``axis`` of the ``pending`` layers, whose box touched the clip's border."""
    clip_size = clip_shape[1 + axis]
    widths: dict[LayerKey, int] = {}
    size = clip_size
    for _ in range(MAX_DOUBLINGS):
        if not pending:
            break
        size *= 2
        larger = prober.run(
            clip_shape[: 1 + axis] + (size,) + clip_shape[2 + axis :], pending, allow_failure=True
        )
        still_pending = []
        for key in pending:
            output = larger.output_shape(key)
            spans = None if output in (None, base.output_shape(key)) else larger.spans(key)
            if spans is None:
                # Unreachable with a larger clip, or blind to where in the clip things are: whole clip.
                widths[key] = clip_size
            elif _inside(spans[axis], size):
                widths[key] = _width(spans[axis])
            else:
                still_pending.append(key)
        pending = still_pending
    for key in pending:
        # Still at the border of a clip 2**MAX_DOUBLINGS times larger: a field that grows with the
        # clip (global attention, say) covers the whole clip.
        widths[key] = clip_size
    return widths


def _inside(span: Span, size: int) -> bool:
    return span[0] > 0 and span[1] < size - 1


def _width(span: Span) -> int:
    return span[1] - span[0] + 1
