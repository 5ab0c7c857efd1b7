"""X3D (Feichtenhofer, "X3D: Expanding Architectures for Efficient Video Recognition", CVPR 2020).

X3D starts from a tiny 2D-like ResNet and expands it, one axis at a time, along whichever of frame
rate, frame count, resolution, width, bottleneck width and depth buys the most accuracy per FLOP.
The expanded networks XS, S and M are one network (3.79 M parameters for 400 classes; 3.76 M
without batch norm's, as the paper counts) trained and evaluated on different clips:

| model | input (T x H x W) | frame stride (raw video) |
|---|---|---|
| XS | 4 x 160 x 160 | 12 |
| S | 13 x 160 x 160 | 6 |
| M | 16 x 224 x 224 | 5 |

The network: a stem (1x3x3 convolution, then a depthwise 5x1x1 temporal one), four stages of
bottlenecks whose middle convolution is a depthwise (channel-wise) 3x3x3 one, with
squeeze-excitation on every other block and Swish after the depthwise convolution, then conv5
(1x1x1 to 432), global average pooling, a 2048-unit layer and the classifier, block for block as
PySlowFast's ``X3D`` (``X3DTransform``, ``X3DHead``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from vidlearn.models.blocks import Residual, check_clip, init_he, require_dropout, require_positive
from vidlearn.models.registry import register_model

STEM_WIDTH = 24
STAGE_WIDTHS = (24, 48, 96, 192)
STAGE_DEPTHS = (3, 5, 11, 7)
# The depthwise 3x3x3 convolution works at 2.25 times the stage width: 54, 108, 216, 432.
BOTTLENECK_EXPANSION = 2.25
CONV5_WIDTH = 432
HEAD_WIDTH = 2048
STEM_TEMPORAL_KERNEL = 5
SE_RATIO = 1 / 16


def squeeze_excite_width(channels: int) -> int:
    """Hidden width of a squeeze-excitation unit: ``channels / 16`` rounded to a multiple of 8, at
    least 8 and at least 90 % of ``channels / 16`` (PySlowFast's ``SE._round_width``): 8, 8, 16, 32
    for 54, 108, 216, 432 channels."""
    width = channels * SE_RATIO
    rounded = max(8, int(width + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * width else rounded


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al. 2018): ``x * sigmoid(fc2(relu(fc1(mean over T, H, W of x))))``.

    ``B x C x T x H x W`` in and out; ``fc1`` and ``fc2`` are 1x1x1 convolutions with biases on the
    ``B x C x 1 x 1 x 1`` pooled clip.
    """

    def __init__(self, channels: int):
        super().__init__()
        hidden = squeeze_excite_width(channels)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc1 = nn.Conv3d(channels, hidden, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv3d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class X3DBottleneck(Residual):
    """1x1x1 to ``inner``, BN, ReLU; depthwise 3x3x3 (spatial ``stride``), BN, optional
    squeeze-excitation, Swish; 1x1x1 to ``out``, BN; residual sum and ReLU.

    ``B x C_in x T x H x W`` -> ``B x C_out x T x H/stride x W/stride``; time is never strided.
    """

    def __init__(self, in_channels: int, inner: int, out_channels: int, stride: int, squeeze_excite: bool):
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv_a=nn.Conv3d(in_channels, inner, 1, bias=False),
            bn_a=nn.BatchNorm3d(inner),
            relu_a=nn.ReLU(),
            conv_b=nn.Conv3d(
                inner, inner, 3, stride=(1, stride, stride), padding=1, groups=inner, bias=False
            ),
            bn_b=nn.BatchNorm3d(inner),
        )
        if squeeze_excite:
            layers["se"] = SqueezeExcite(inner)
        layers["swish"] = nn.SiLU()
        layers["conv_c"] = nn.Conv3d(inner, out_channels, 1, bias=False)
        layers["bn_c"] = nn.BatchNorm3d(out_channels)
        super().__init__(nn.Sequential(layers), in_channels, out_channels, stride)


class X3D(nn.Module):
    """X3D-XS/S/M network (they differ only in their input); any T, H, W.

    Input ``B x C x T x H x W``. ``stem``: 1x3x3 convolution (stride 1x2x2) to 24 channels, depthwise
    5x1x1, BN, ReLU. ``res2`` ... ``res5``: 3, 5, 11, 7 ``X3DBottleneck``s of widths 24, 48, 96, 192
    (inner 54, 108, 216, 432), each stage halving H and W in its first block; squeeze-excitation on
    the 1st, 3rd, 5th, ... block of each stage. H and W shrink by 32 (160 -> 5), T is kept.
    ``conv5``: 1x1x1 to 432, BN, ReLU. Head: global average pool, ``fc1`` (a 1x1x1 convolution on
    the pooled ``B x 432 x 1 x 1 x 1``, no bias, no BN) to 2048 and ReLU (``features``:
    ``B x 2048``), dropout, ``fc`` to ``B x K``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        require_dropout(dropout)
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            OrderedDict(
                conv_xy=nn.Conv3d(
                    in_channels, STEM_WIDTH, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False
                ),
                conv_t=nn.Conv3d(
                    STEM_WIDTH,
                    STEM_WIDTH,
                    (STEM_TEMPORAL_KERNEL, 1, 1),
                    padding=(STEM_TEMPORAL_KERNEL // 2, 0, 0),
                    groups=STEM_WIDTH,
                    bias=False,
                ),
                bn=nn.BatchNorm3d(STEM_WIDTH),
                relu=nn.ReLU(),
            )
        )
        width = STEM_WIDTH
        for index, (out_channels, depth) in enumerate(zip(STAGE_WIDTHS, STAGE_DEPTHS)):
            inner = int(BOTTLENECK_EXPANSION * out_channels)
            blocks = [
                X3DBottleneck(
                    width if i == 0 else out_channels,
                    inner,
                    out_channels,
                    stride=2 if i == 0 else 1,
                    squeeze_excite=i % 2 == 0,
                )
                for i in range(depth)
            ]
            self.add_module(f"res{index + 2}", nn.Sequential(*blocks))
            width = out_channels
        self.conv5 = nn.Sequential(
            nn.Conv3d(width, CONV5_WIDTH, 1, bias=False), nn.BatchNorm3d(CONV5_WIDTH), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool3d(1)
        # A 1x1x1 convolution, as in PySlowFast's X3DHead, so that it gets the convolutions' He
        # initialisation (it is followed by a ReLU) rather than the classifier's.
        self.fc1 = nn.Sequential(nn.Conv3d(CONV5_WIDTH, HEAD_WIDTH, 1, bias=False), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(HEAD_WIDTH, num_classes)
        init_he(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x 2048``."""
        check_clip(x, self.in_channels)
        x = self.res5(self.res4(self.res3(self.res2(self.stem(x)))))
        return self.fc1(self.pool(self.conv5(x))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.fc(self.dropout(self.features(x)))


# X3D-S and X3D-M are X3D-XS's network on larger clips: one class, three names and default inputs.
register_model(
    "x3d_xs",
    default_input=(3, 4, 160, 160),
    description="X3D-XS: efficient 3D CNN (depthwise 3x3x3, squeeze-excitation), 4 x 160 x 160 clips",
)(X3D)
register_model(
    "x3d_s",
    default_input=(3, 13, 160, 160),
    description="X3D-S: X3D-XS's network on 13 x 160 x 160 clips",
)(X3D)
register_model(
    "x3d_m",
    default_input=(3, 16, 224, 224),
    description="X3D-M: X3D-XS's network on 16 x 224 x 224 clips",
)(X3D)
