"""Inflating 2D networks into 3D ones (Carreira and Zisserman, "Quo Vadis, Action Recognition? A New
Model and the Kinetics Dataset", CVPR 2017; the course's "Inflating 2D Networks to 3D (I3D)").

``inflate(model_2d)`` returns a new network in which every 2D layer that has a 3D counterpart is
replaced by it, so that a network for images ``N x C x H x W`` runs on clips ``N x C x T x H x W``:

- ``Conv2d`` K_h x K_w -> ``Conv3d`` K_t x K_h x K_w, time stride 1 (or as given), time padding
  K_t // 2, time dilation 1; weight = the 2D kernel repeated K_t times along time and divided by
  K_t (``inflate_weight``), bias unchanged;
- ``BatchNorm2d`` -> ``BatchNorm3d`` with the same statistics and affine parameters;
- ``MaxPool2d`` / ``AvgPool2d`` -> 3D with time kernel and stride 1; ``AdaptiveAvgPool2d`` /
  ``AdaptiveMaxPool2d`` -> 3D with output time 1 (they pool over all of T); ``Dropout2d`` -> ``Dropout3d``;
- every other module is kept as it is (``Linear``, ``ReLU``, ``Flatten``, ``Dropout``, containers).

Inflation works on module-level layers only. A ``forward`` that calls functions on tensors (a
``view`` to ``N x C*H*W``, ``F.max_pool2d``, ``x.mean((2, 3))``) is not seen; such networks may run
and compute something else, or fail. The constant-clip property (``docs/inflation.md``) is the check.
What ``inflate`` cannot convert it rejects with ``BadArgumentError``: subclasses of the layers above
that override ``forward``, convolutions with a ``padding_mode`` other than zeros or an asymmetric
``padding="same"``, even time kernels, and layers that assume 2D inputs with no 3D counterpart here
(``ConvTranspose2d``, ``InstanceNorm2d``, ``Upsample``, ... any leaf class named ``*2d``).

``inflate_state_dict(state_dict_2d, model_3d)`` maps a 2D network's trained weights onto an inflated
network of the same architecture, e.g. to start a video model from an image or frame model checkpoint.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidlearn.errors import BadArgumentError

TimeKernel = int | tuple[int, int]
"""A convolution's time kernel K_t (time stride 1) or ``(K_t, time stride)``."""

TimeKernels = Mapping[str, TimeKernel] | Callable[[str, nn.Conv2d], TimeKernel]
"""Per-layer time kernels: ``{qualified Conv2d name: TimeKernel}``, or ``f(name, conv2d) -> TimeKernel``."""

TEMPORAL_PADDINGS = ("zeros", "replicate")

# Modules that assume N x C x H x W inputs but whose names do not say so.
_NOT_INFLATABLE = (nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle, nn.Fold, nn.Unfold)


def inflate_weight(weight_2d: torch.Tensor, time_kernel: int) -> torch.Tensor:
    """``O x I x K_h x K_w`` -> ``O x I x K_t x K_h x K_w``: the kernel repeated K_t times along time, / K_t.

    Summed over time it is the 2D kernel again, so on K_t equal frames the 3D convolution computes
    what the 2D one computes on one of them.
    """
    if weight_2d.ndim != 4:
        raise BadArgumentError(
            f"a 2D convolution weight is O x I x K_h x K_w, got shape {tuple(weight_2d.shape)}"
        )
    if isinstance(time_kernel, bool) or not isinstance(time_kernel, int) or time_kernel < 1:
        raise BadArgumentError(f"time_kernel must be a positive integer, got {time_kernel!r}")
    return weight_2d.unsqueeze(2).expand(-1, -1, time_kernel, -1, -1) / time_kernel


class ReplicateTimeConv3d(nn.Conv3d):
    """``Conv3d`` that pads time by repeating the clip's first and last frames ``time_padding`` times.

    Space is zero-padded as usual (``padding`` is 0 for time). Input and output ``N x C x T x H x W``.
    With this padding, every frame of an inflated network's output on a constant clip equals the 2D
    network's output on that frame, not only the frames away from the clip's ends.
    """

    def __init__(self, *args: object, time_padding: int, **kwargs: object):
        super().__init__(*args, **kwargs)
        self.time_padding = time_padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.time_padding
        return super().forward(F.pad(x, (0, 0, 0, 0, pad, pad), mode="replicate"))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, time_padding={self.time_padding} (replicate)"


def inflate(
    model_2d: nn.Module,
    time_kernel: TimeKernel = 3,
    time_kernels: TimeKernels | None = None,
    temporal_padding: str = "zeros",
) -> nn.Module:
    """A new 3D network made from a deep copy of ``model_2d`` (which is left untouched).

    Every ``Conv2d`` gets the time kernel ``time_kernels`` gives for its qualified name (as in
    ``named_modules()``; a mapping may leave convolutions out, which then get ``time_kernel``), an
    odd K_t or a pair ``(K_t, time stride)``. ``temporal_padding`` is ``"zeros"`` (I3D, and what
    ``Conv3d`` does) or ``"replicate"`` (``ReplicateTimeConv3d``: the clip's end frames are repeated).
    Trainability (``requires_grad``) and train/eval mode of each layer carry over.
    """
    if temporal_padding not in TEMPORAL_PADDINGS:
        raise BadArgumentError(
            f"temporal_padding must be one of {', '.join(TEMPORAL_PADDINGS)}, got {temporal_padding!r}"
        )
    _time_kernel(time_kernel, "time_kernel")
    if isinstance(time_kernels, Mapping):
        convs = [name for name, module in model_2d.named_modules() if isinstance(module, nn.Conv2d)]
        unknown = sorted(set(time_kernels) - set(convs))
        if unknown:
            raise BadArgumentError(
                f"time_kernels names {', '.join(map(repr, unknown))}, which are not Conv2d layers of the model; "
                f"its Conv2d layers are: {_some(convs)}"
            )

    def time_kernel_of(name: str, conv: nn.Conv2d) -> tuple[int, int]:
        if time_kernels is None:
            value = time_kernel
        elif isinstance(time_kernels, Mapping):
            value = time_kernels.get(name, time_kernel)
        else:
            value = time_kernels(name, conv)
        return _time_kernel(value, f"the time kernel of {name or '(model)'}")

    def convert(name: str, module: nn.Module) -> nn.Module:
        shown = name or "(model)"
        if isinstance(module, nn.Conv2d):
            _require_plain(shown, module, nn.Conv2d)
            return _inflate_conv(shown, module, *time_kernel_of(name, module), temporal_padding)
        return _inflate_layer(shown, module)

    model = copy.deepcopy(model_2d)
    root = convert("", model)
    if root is not model:
        return root
    converted: dict[int, nn.Module] = {}  # keyed by identity, so a module used in two places stays shared
    for parent_name, parent in list(model.named_modules()):
        # _modules rather than named_children(), which lists a module held under two names only once.
        for child_name, child in list(parent._modules.items()):
            if child is None:
                continue
            if id(child) not in converted:
                converted[id(child)] = convert(f"{parent_name}.{child_name}".lstrip("."), child)
            parent._modules[child_name] = converted[id(child)]
    return model


def fit_to_shape(value: torch.Tensor, shape: Sequence[int]) -> torch.Tensor | None:
    """``value`` for a parameter of ``shape``: itself when the shapes agree, inflated
    (``inflate_weight``) when a 2D convolution weight ``O x I x kh x kw`` meets a 3D one
    ``O x I x kt x kh x kw``, ``None`` when it cannot be mapped."""
    shape_2d, shape_3d = tuple(value.shape), tuple(shape)
    if shape_2d == shape_3d:
        return value
    if len(shape_2d) == 4 and len(shape_3d) == 5 and shape_3d[:2] + shape_3d[3:] == shape_2d:
        return inflate_weight(value, shape_3d[2])
    return None


def inflate_state_dict(
    state_dict_2d: Mapping[str, torch.Tensor], model_3d: nn.Module, exclude: Sequence[str] = ()
) -> dict[str, torch.Tensor]:
    """The 2D network's state dict, mapped onto ``model_3d`` (its inflated architecture): a state dict
    for ``model_3d.load_state_dict``.

    Keys must be the same. A 4D convolution weight whose 3D counterpart has an extra time axis is
    inflated to that layer's K_t (``inflate_weight``); every other entry must have the 3D model's
    shape and is passed on as it is (the same tensor). Keys starting with a prefix in ``exclude``
    are left out on both sides (e.g. ``exclude=("fc.",)`` to start a new classifier for other
    classes; then load with ``strict=False``). Missing or unexpected keys and shapes that do not
    match raise ``BadArgumentError`` naming them.
    """
    target = model_3d.state_dict()
    prefixes = tuple(exclude)
    missing = [key for key in target if key not in state_dict_2d and not key.startswith(prefixes)]
    unexpected = [key for key in state_dict_2d if key not in target and not key.startswith(prefixes)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} keys of the 3D model are not in the 2D state dict: {_some(missing)}")
    if unexpected:
        problems.append(
            f"{len(unexpected)} keys of the 2D state dict are not in the 3D model: {_some(unexpected)}"
        )
    inflated = {}
    for key, value in state_dict_2d.items():
        if key not in target or key.startswith(prefixes):
            continue
        fitted = fit_to_shape(value, target[key].shape)
        if fitted is None:
            problems.append(
                f"{key} has shape {tuple(value.shape)} in the 2D state dict, which cannot become {tuple(target[key].shape)}"
            )
        else:
            inflated[key] = fitted
    if problems:
        raise BadArgumentError(
            "cannot map the 2D state dict onto the 3D model: "
            + "; ".join(problems)
            + " (to leave layers out, e.g. a classifier for other classes, pass exclude=('fc.',))"
        )
    return inflated


def _time_kernel(value: object, what: str) -> tuple[int, int]:
    """``3 -> (3, 1)``; ``(3, 2) -> (3, 2)``; anything else raises ``BadArgumentError``."""
    kernel, stride = value if isinstance(value, (tuple, list)) and len(value) == 2 else (value, 1)
    for number in (kernel, stride):
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise BadArgumentError(
                f"{what} must be a positive integer K_t or a pair (K_t, time stride), got {value!r}"
            )
    if kernel % 2 == 0:
        # Padding K_t // 2 on both sides keeps T (at time stride 1) and the clip centred only for odd K_t.
        raise BadArgumentError(f"{what} must be odd, got {kernel}")
    return kernel, stride


def _inflate_conv(name: str, conv: nn.Conv2d, kernel: int, stride: int, temporal_padding: str) -> nn.Conv3d:
    if conv.padding_mode != "zeros":
        raise BadArgumentError(
            f"{name}: padding_mode={conv.padding_mode!r} is not supported; inflate pads space with zeros "
            "and time as temporal_padding says"
        )
    options = dict(
        in_channels=conv.in_channels,
        out_channels=conv.out_channels,
        kernel_size=(kernel, *conv.kernel_size),
        stride=(stride, *conv.stride),
        dilation=(1, *conv.dilation),
        groups=conv.groups,
        bias=conv.bias is not None,
        # Built without initialising weights that are replaced right away (ResNet-50 has 28 M of them).
        device="meta",
    )
    space_padding = _space_padding(name, conv)
    if temporal_padding == "replicate":
        conv3d = ReplicateTimeConv3d(**options, padding=(0, *space_padding), time_padding=kernel // 2)
    else:
        conv3d = nn.Conv3d(**options, padding=(kernel // 2, *space_padding))
    conv3d.weight = nn.Parameter(inflate_weight(conv.weight.detach(), kernel))
    if conv.bias is not None:
        conv3d.bias = nn.Parameter(conv.bias.detach())
    return _carry_over(conv, conv3d)


def _space_padding(name: str, conv: nn.Conv2d) -> tuple[int, int]:
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        totals = [dilation * (size - 1) for dilation, size in zip(conv.dilation, conv.kernel_size)]
        if any(total % 2 for total in totals):
            raise BadArgumentError(
                f"{name}: padding='same' with an even kernel pads unevenly, which Conv3d cannot express"
            )
        return tuple(total // 2 for total in totals)
    return tuple(conv.padding)


def _inflate_layer(name: str, module: nn.Module) -> nn.Module:
    """The 3D version of a non-convolution layer, or the module itself if it works on any number of dimensions."""
    if isinstance(module, nn.BatchNorm2d):
        _require_plain(name, module, nn.BatchNorm2d)
        norm = nn.BatchNorm3d(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            device="meta",
        )
        # The 2D layer belongs to inflate's own copy of the network, so its tensors can be taken over.
        norm.load_state_dict(module.state_dict(), assign=True)
        return _carry_over(module, norm)
    if isinstance(module, nn.MaxPool2d):
        _require_plain(name, module, nn.MaxPool2d)
        _reject_indices(name, module)
        return nn.MaxPool3d(
            (1, *_pair(module.kernel_size)),
            (1, *_pair(module.stride)),
            (0, *_pair(module.padding)),
            (1, *_pair(module.dilation)),
            ceil_mode=module.ceil_mode,
        )
    if isinstance(module, nn.AvgPool2d):
        _require_plain(name, module, nn.AvgPool2d)
        return nn.AvgPool3d(
            (1, *_pair(module.kernel_size)),
            (1, *_pair(module.stride)),
            (0, *_pair(module.padding)),
            module.ceil_mode,
            module.count_include_pad,
            module.divisor_override,
        )
    if isinstance(module, nn.AdaptiveAvgPool2d):
        _require_plain(name, module, nn.AdaptiveAvgPool2d)
        return nn.AdaptiveAvgPool3d((1, *_pair(module.output_size)))
    if isinstance(module, nn.AdaptiveMaxPool2d):
        _require_plain(name, module, nn.AdaptiveMaxPool2d)
        _reject_indices(name, module)
        return nn.AdaptiveMaxPool3d((1, *_pair(module.output_size)))
    if isinstance(module, nn.Dropout2d):
        _require_plain(name, module, nn.Dropout2d)
        return _carry_over(module, nn.Dropout3d(module.p))
    is_leaf = next(module.children(), None) is None
    if isinstance(module, _NOT_INFLATABLE) or (is_leaf and "2d" in type(module).__name__.lower()):
        raise BadArgumentError(
            f"{name}: inflate has no 3D version of {type(module).__name__}, a layer for N x C x H x W inputs; "
            "replace it, or inflate the parts of the network around it"
        )
    return module


def _require_plain(name: str, module: nn.Module, base: type[nn.Module]) -> None:
    """Reject subclasses that change what the layer computes: the 3D layer would not do the same."""
    kind = type(module)
    overridden = [
        method
        for method in ("forward", "_conv_forward")
        if getattr(kind, method, None) is not getattr(base, method, None)
    ]
    if overridden:
        raise BadArgumentError(
            f"{name}: {kind.__name__} subclasses {base.__name__} and overrides {', '.join(overridden)}; "
            "inflate cannot know what its 3D version should compute"
        )


def _reject_indices(name: str, pool: nn.Module) -> None:
    if pool.return_indices:
        raise BadArgumentError(
            f"{name}: pooling with return_indices=True gives 2D indices; inflate does not convert it"
        )


def _carry_over(layer_2d: nn.Module, layer_3d: nn.Module) -> nn.Module:
    """Give ``layer_3d`` the train/eval mode and the frozen parameters of ``layer_2d``."""
    for name, parameter in layer_3d.named_parameters():
        parameter.requires_grad_(layer_2d.get_parameter(name).requires_grad)
    return layer_3d.train(layer_2d.training)


def _pair(value: int | Sequence[int | None] | None) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _some(names: Sequence[str], shown: int = 8) -> str:
    """The first ``shown`` names, comma-separated, and how many more there are."""
    more = f", ... ({len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
