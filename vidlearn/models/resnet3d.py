"""The 18-layer video ResNets: R3D, MC3 and R(2+1)D (Tran et al., "A Closer Look at
Spatiotemporal Convolutions for Action Recognition", CVPR 2018).

One ``VideoResNet`` is parameterised by its stem and by the convolution used in each of its four
stages; the three models differ only in those blocks:

- ``r3d_18``: full 3x3x3 convolutions everywhere;
- ``mc3_18`` ("mixed convolutions"): 3x3x3 in the first stage, 1x3x3 (2D per frame) after;
- ``r2plus1d_18``: every 3x3x3 convolution factored into a 1x3x3 spatial one and a 3x1x1 temporal
  one, with the middle width chosen so the pair has (about) the parameters of the 3x3x3 one.

The module tree and parameter names follow torchvision's ``models/video/resnet.py`` (``stem.0.weight``,
``layer1.0.conv1.0.weight``, ``layer2.0.downsample.0.weight``, ..., ``fc.weight``), so its Kinetics-400
checkpoints load with ``model.load_state_dict(state_dict)`` (inputs then normalised with its mean
(0.43216, 0.394666, 0.37645) and std (0.22803, 0.22145, 0.216989)).
"""

from __future__ import annotations

import torch
from torch import nn

from vidlearn.models.blocks import check_clip, init_he, require_positive
from vidlearn.models.registry import register_model

RESNET3D_INPUT = (3, 16, 112, 112)
STAGE_WIDTHS = (64, 128, 256, 512)


class Conv3DSimple(nn.Conv3d):
    """3x3x3 convolution, stride ``stride`` in T, H and W (R3D)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1):
        super().__init__(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)

    @staticmethod
    def downsample_stride(stride: int) -> tuple[int, int, int]:
        return (stride, stride, stride)


class Conv3DNoTemporal(nn.Conv3d):
    """1x3x3 convolution: a 2D convolution on each frame; never strides in time (MC3's upper stages)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1):
        super().__init__(
            in_planes,
            out_planes,
            kernel_size=(1, 3, 3),
            stride=(1, stride, stride),
            padding=(0, 1, 1),
            bias=False,
        )

    @staticmethod
    def downsample_stride(stride: int) -> tuple[int, int, int]:
        return (1, stride, stride)


class Conv2Plus1D(nn.Sequential):
    """(2+1)D convolution: 1x3x3 spatial to ``midplanes``, batch norm, ReLU, then 3x1x1 temporal."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1):
        super().__init__(
            nn.Conv3d(
                in_planes, midplanes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False
            ),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(),
            nn.Conv3d(midplanes, out_planes, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
        )

    @staticmethod
    def downsample_stride(stride: int) -> tuple[int, int, int]:
        return (stride, stride, stride)


ConvBuilder = type[Conv3DSimple] | type[Conv3DNoTemporal] | type[Conv2Plus1D]


class BasicBlock(nn.Module):
    """Two convolutions with batch norm and a residual connection; ``B x C x T x H x W`` in and out.

    ``stride`` (first convolution) and ``downsample`` (1x1x1 projection of the shortcut) shrink
    the clip and change the width at a stage's first block.
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        conv_builder: ConvBuilder,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        # (2+1)D middle width: the 1x3x3 + 3x1x1 pair gets the parameters of one 3x3x3 inplanes->planes
        # convolution, t*d^2*N_in*N_out / (d^2*N_in + t*N_out) (Tran et al. 2018, Section 3.5).
        midplanes = (inplanes * planes * 3 * 3 * 3) // (inplanes * 3 * 3 + 3 * planes)
        self.conv1 = nn.Sequential(
            conv_builder(inplanes, planes, midplanes, stride), nn.BatchNorm3d(planes), nn.ReLU()
        )
        self.conv2 = nn.Sequential(conv_builder(planes, planes, midplanes), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


class BasicStem(nn.Sequential):
    """3x7x7 convolution to 64 channels, stride (1, 2, 2), batch norm, ReLU (R3D, MC3)."""

    def __init__(self, in_channels: int = 3):
        super().__init__(
            nn.Conv3d(in_channels, 64, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(),
        )


class R2Plus1dStem(nn.Sequential):
    """(2+1)D stem: 1x7x7 convolution to 45 channels (stride 1, 2, 2), then 3x1x1 to 64."""

    def __init__(self, in_channels: int = 3):
        super().__init__(
            nn.Conv3d(in_channels, 45, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(45),
            nn.ReLU(),
            nn.Conv3d(45, 64, (3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(),
        )


class VideoResNet(nn.Module):
    """18-layer video ResNet: stem, four stages of two ``BasicBlock``s, global average pool, ``fc``.

    ``conv_builders`` gives the convolution of each stage. Stages 2-4 halve H and W and, unless
    their convolution never strides in time, T. Input ``B x C x T x H x W`` (any sizes);
    ``features`` ``B x 512``; output ``B x K``. For 16 x 112 x 112, stage 4 of R3D gives
    512 x 2 x 7 x 7.
    """

    def __init__(
        self,
        stem: type[BasicStem] | type[R2Plus1dStem],
        conv_builders: tuple[ConvBuilder, ConvBuilder, ConvBuilder, ConvBuilder],
        num_classes: int,
        blocks_per_stage: tuple[int, int, int, int] = (2, 2, 2, 2),
        in_channels: int = 3,
    ):
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        self.in_channels = in_channels
        self.stem = stem(in_channels)
        inplanes = 64
        for index, (conv_builder, planes, blocks) in enumerate(
            zip(conv_builders, STAGE_WIDTHS, blocks_per_stage)
        ):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes:
                downsample = nn.Sequential(
                    nn.Conv3d(inplanes, planes, 1, stride=conv_builder.downsample_stride(stride), bias=False),
                    nn.BatchNorm3d(planes),
                )
            stage = [BasicBlock(inplanes, planes, conv_builder, stride, downsample)]
            stage += [BasicBlock(planes, planes, conv_builder) for _ in range(1, blocks)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(STAGE_WIDTHS[-1], num_classes)
        init_he(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x 512``."""
        check_clip(x, self.in_channels)
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.fc(self.features(x))


@register_model(
    "r3d_18",
    default_input=RESNET3D_INPUT,
    description="18-layer 3D ResNet, 3x3x3 convolutions throughout (torchvision layout)",
)
def r3d_18(num_classes: int, in_channels: int = 3) -> VideoResNet:
    return VideoResNet(BasicStem, (Conv3DSimple,) * 4, num_classes, in_channels=in_channels)


@register_model(
    "mc3_18",
    default_input=RESNET3D_INPUT,
    description="18-layer mixed-convolution ResNet: 3D first stage, 2D (1x3x3) after (torchvision layout)",
)
def mc3_18(num_classes: int, in_channels: int = 3) -> VideoResNet:
    return VideoResNet(
        BasicStem, (Conv3DSimple,) + (Conv3DNoTemporal,) * 3, num_classes, in_channels=in_channels
    )


@register_model(
    "r2plus1d_18",
    default_input=RESNET3D_INPUT,
    description="18-layer R(2+1)D ResNet: each 3x3x3 conv factored into 1x3x3 then 3x1x1 (torchvision layout)",
)
def r2plus1d_18(num_classes: int, in_channels: int = 3) -> VideoResNet:
    return VideoResNet(R2Plus1dStem, (Conv2Plus1D,) * 4, num_classes, in_channels=in_channels)
