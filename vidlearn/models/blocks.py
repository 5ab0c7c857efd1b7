"""Building blocks shared by the model families: input checks and a small 2D/3D conv tower.

The tower is one class for both dimensionalities so that the course's fusion variants
(single frame, late, early, slow fusion) can use the very same layers and differ only in
where time is fused.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from vidlearn.errors import BadArgumentError

# Moderate widths: a 16 x 112 x 112 clip costs about 0.2 GFLOPs through the 2D tower frame
# by frame and about 0.4 GFLOPs through the 3D tower, so every fusion model trains on a CPU.
TOWER_WIDTHS = (16, 32, 64, 128)

# Layer types per number of spatio-temporal dimensions: 2 for frames, 3 for clips.
_LAYERS = {
    2: (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d),
    3: (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d),
}


def check_clip(x: torch.Tensor, channels: int) -> None:
    """Raise ``BadArgumentError`` unless ``x`` is a float ``B x channels x T x H x W`` clip batch."""
    if x.ndim != 5 or x.shape[1] != channels or not x.is_floating_point():
        raise BadArgumentError(
            f"expected a float clip batch B x {channels} x T x H x W, "
            f"got a {x.dtype} tensor of shape {tuple(x.shape)}"
        )


def check_num_frames(x: torch.Tensor, num_frames: int, model: str) -> None:
    """Raise ``BadArgumentError`` unless the clip batch ``x`` has exactly ``num_frames`` frames."""
    if x.shape[2] != num_frames:
        raise BadArgumentError(
            f"{model} was built for clips of {num_frames} frames (its layers depend on T), "
            f"got {x.shape[2]}; build it with num_frames={x.shape[2]}"
        )


def require_positive(**values: int) -> None:
    """Raise ``BadArgumentError`` naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadArgumentError(f"{name} must be a positive integer, got {value!r}")


def as_pair(size: int | tuple[int, int], name: str) -> tuple[int, int]:
    """``112 -> (112, 112)``; a pair is checked and returned as a tuple."""
    if isinstance(size, int):
        pair = (size, size)
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        pair = tuple(size)
    else:
        raise BadArgumentError(f"{name} must be an int or an (H, W) pair, got {size!r}")
    require_positive(**{f"{name} height": pair[0], f"{name} width": pair[1]})
    return pair


def output_shape(module: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape (without the batch) that ``module`` gives for one input of ``input_shape``.

    Runs a copy on the meta device: nothing is computed and no running statistics change.
    """
    probe = copy.deepcopy(module).to("meta")
    try:
        with torch.no_grad():
            out = probe(torch.empty(1, *input_shape, device="meta"))
    except RuntimeError as err:
        raise BadArgumentError(f"input of shape {tuple(input_shape)} is too small for this network: {err}") from err
    return tuple(out.shape[1:])


def conv_bn_relu(dims: int, in_channels: int, out_channels: int, stride: int | tuple[int, ...] = 1) -> nn.Sequential:
    """3 (x3 (x3)) convolution with padding 1, batch norm, ReLU; ``dims`` is 2 or 3."""
    conv, norm, _ = _LAYERS[dims]
    return nn.Sequential(
        # No bias: the batch norm right after it has one.
        conv(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        norm(out_channels),
        nn.ReLU(),
    )


class ConvTower(nn.Sequential):
    """Small VGG-like CNN: a strided stem convolution, then stages of (max-pool, conv-BN-ReLU).

    ``dims=2``: input ``N x C x H x W`` -> ``N x widths[-1] x H/16 x W/16`` (stem stride 2, pools 2).
    ``dims=3``: input ``N x C x T x H x W`` -> ``N x widths[-1] x T' x H/16 x W/16``; the stem stride and
    the pool sizes are per (T, H, W), so time can be kept at first and reduced later (slow fusion).
    Sizes round down at every pool; H and W must be at least 16 (and T at least the product of the
    temporal pool sizes).
    """

    def __init__(
        self,
        in_channels: int,
        widths: tuple[int, ...] = TOWER_WIDTHS,
        dims: int = 2,
        stem_stride: int | tuple[int, ...] = 2,
        pool_sizes: tuple[int | tuple[int, ...], ...] = (2, 2, 2),
    ):
        if dims not in _LAYERS:
            raise BadArgumentError(f"dims must be 2 (frames) or 3 (clips), got {dims!r}")
        if len(pool_sizes) != len(widths) - 1:
            raise BadArgumentError(
                f"a tower with {len(widths)} widths needs {len(widths) - 1} pool sizes, got {len(pool_sizes)}"
            )
        require_positive(in_channels=in_channels, **{f"width {i}": w for i, w in enumerate(widths)})
        _, _, pool = _LAYERS[dims]
        layers: OrderedDict[str, nn.Module] = OrderedDict(stem=conv_bn_relu(dims, in_channels, widths[0], stem_stride))
        for stage, (size, c_in, c_out) in enumerate(zip(pool_sizes, widths, widths[1:]), start=1):
            layers[f"pool{stage}"] = pool(size)
            layers[f"block{stage}"] = conv_bn_relu(dims, c_in, c_out)
        super().__init__(layers)
        self.out_channels = widths[-1]
