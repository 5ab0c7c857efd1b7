"""The course's three small example networks, exactly as its comparison table gives them.

Input ``3 x 20 x 64 x 64``; every version is Conv 3x3 (3 -> 12), Pool 4x4, Conv 3x3 (12 -> 24),
global average pool, then a linear classifier. Only the kind of layer changes:

=============  ============================  =================  ================================
version        first conv                    pool               receptive field after 2nd conv
=============  ============================  =================  ================================
course_late    Conv2D on each frame           Pool2D(4x4)        1 x 14 x 14
course_early   Conv2D on 3*20 stacked chans   Pool2D(4x4)        20 x 14 x 14
course_3d      Conv3D(3x3x3)                  Pool3D(4x4x4)      14 x 14 x 14
=============  ============================  =================  ================================

Layer shapes (C x T x H x W) from the table: late 12x20x64x64, 12x20x16x16, 24x20x16x16,
24x1x1x1; early 12x64x64, 12x16x16, 24x16x16, 24x1x1; 3D 12x20x64x64, 12x5x16x16, 24x5x16x16,
24x1x1x1. In ``course_late`` the 2D layers see frames with time folded into the batch,
``(B*T) x C x H x W``. The table lists no nonlinearity; a ReLU follows each convolution (it changes
no shape or receptive field). The layers are named ``backbone.conv1``, ``backbone.pool``,
``backbone.conv2``, ``pool`` (global) and ``classifier``.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from vidlearn.models.blocks import require_positive
from vidlearn.models.fusion import EarlyFusion, LateFusionPool, SlowFusion
from vidlearn.models.registry import register_model

COURSE_INPUT = (3, 20, 64, 64)
COURSE_WIDTHS = (12, 24)


def course_tower(in_channels: int, dims: int) -> nn.Sequential:
    """Conv 3x3 (-> 12), Pool 4x4, Conv 3x3 (12 -> 24), in 2D (``dims=2``) or 3D (``dims=3``)."""
    conv, pool = (nn.Conv2d, nn.MaxPool2d) if dims == 2 else (nn.Conv3d, nn.MaxPool3d)
    first, second = COURSE_WIDTHS
    return nn.Sequential(
        OrderedDict(
            conv1=conv(in_channels, first, kernel_size=3, padding=1),
            relu1=nn.ReLU(),
            pool=pool(4),
            conv2=conv(first, second, kernel_size=3, padding=1),
            relu2=nn.ReLU(),
        )
    )


@register_model(
    "course_late",
    default_input=COURSE_INPUT,
    description="course example: 2D convs per frame, fused by the global average pool at the end",
)
def course_late(num_classes: int, in_channels: int = 3) -> LateFusionPool:
    return LateFusionPool(num_classes, course_tower(in_channels, dims=2), COURSE_WIDTHS[-1], in_channels)


@register_model(
    "course_early",
    default_input=COURSE_INPUT,
    description="course example: first 2D conv sees all frames stacked (fixed T)",
)
def course_early(num_classes: int, num_frames: int = COURSE_INPUT[1], in_channels: int = 3) -> EarlyFusion:
    require_positive(num_frames=num_frames, in_channels=in_channels)
    tower = course_tower(in_channels * num_frames, dims=2)
    return EarlyFusion(num_classes, tower, COURSE_WIDTHS[-1], num_frames, in_channels)


@register_model(
    "course_3d",
    default_input=COURSE_INPUT,
    description="course example: 3x3x3 convs and 4x4x4 pool fuse time slowly",
)
def course_3d(num_classes: int, in_channels: int = 3) -> SlowFusion:
    return SlowFusion(num_classes, course_tower(in_channels, dims=3), COURSE_WIDTHS[-1], in_channels)
