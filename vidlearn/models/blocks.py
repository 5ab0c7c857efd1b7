"""Building blocks shared by the model families: input and option checks, the He initialisation
of the convolutional networks, the residual unit of the 3D ResNets, a small 2D/3D conv tower and
the frame encoder built on it.

The tower is one class for both dimensionalities so that the course's fusion variants
(single frame, late, early, slow fusion) can use the very same layers and differ only in
where time is fused; the frame encoder (the 2D tower and a global average pool) is the per-frame
network of ``single_frame``, TSN, LRCN, the spatial stream and ``i3d_tower``.
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


def require_dropout(dropout: float) -> None:
    """Raise ``BadArgumentError`` unless ``dropout`` is a probability in [0, 1)."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise BadArgumentError(f"dropout must be a probability in [0, 1), got {dropout!r}")


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
        raise BadArgumentError(
            f"input of shape {tuple(input_shape)} is too small for this network: {err}"
        ) from err
    return tuple(out.shape[1:])


def conv_bn_relu(
    dims: int, in_channels: int, out_channels: int, stride: int | tuple[int, ...] = 1
) -> nn.Sequential:
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
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            stem=conv_bn_relu(dims, in_channels, widths[0], stem_stride)
        )
        for stage, (size, c_in, c_out) in enumerate(zip(pool_sizes, widths, widths[1:]), start=1):
            layers[f"pool{stage}"] = pool(size)
            layers[f"block{stage}"] = conv_bn_relu(dims, c_in, c_out)
        super().__init__(layers)
        self.out_channels = widths[-1]


def frame_encoder(in_channels: int = 3, widths: tuple[int, ...] = TOWER_WIDTHS) -> nn.Sequential:
    """The 2D tower followed by a global average pool: frames ``N x C x H x W`` -> ``N x widths[-1]``."""
    return nn.Sequential(ConvTower(in_channels, widths), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


class Residual(nn.Module):
    """``relu(branch(x) + shortcut(x))`` for ``B x C x T x H x W`` clips, the residual unit of the
    ResNets here and of X3D. The shortcut is a 1x1x1 projection (stride 1 x ``stride`` x ``stride``)
    with batch norm where the branch changes the width or the size, the identity otherwise.
    """

    def __init__(self, branch: nn.Module, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.branch = branch
        self.shortcut = nn.Identity()
        if in_channels != out_channels or stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 1, stride=(1, stride, stride), bias=False),
                nn.BatchNorm3d(out_channels),
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) + self.shortcut(x))


def init_he(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """He initialisation for ReLU networks, as torchvision and PySlowFast do, so that training from
    scratch behaves as in the papers' code: convolutions (2D and 3D) normal with ``fan_out`` scaling
    and zero biases, batch norms at identity, and linear layers normal with std ``linear_std`` and
    zero biases (``None``: linear layers keep PyTorch's default, as torchvision's ResNet and VGG)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif linear_std is not None and isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, linear_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
