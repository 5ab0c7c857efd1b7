"""2D ResNets for images (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016), the
networks that ``vidlearn.models.inflate`` turns into video networks (I3D).

ResNet-18 is built from ``BasicBlock`` (two 3x3 convolutions), ResNet-50 from ``Bottleneck`` (1x1,
3x3, 1x1) with a stage's stride in the 3x3 convolution ("ResNet v1.5"), as torchvision builds them.
The module tree and state-dict keys are torchvision's ``models/resnet.py`` (``conv1``, ``bn1``,
``relu``, ``maxpool``, ``layer1`` ... ``layer4``, ``avgpool``, ``fc``; ``layer2.0.downsample.0.weight``,
...), so torchvision's ImageNet checkpoints load with ``model.load_state_dict(state_dict)``.

These are image models: input ``N x C x H x W``. They are not registered as video models; the
registry holds their inflated versions (``vidlearn.models.i3d``).
"""

from __future__ import annotations

import torch
from torch import nn

from vidlearn.models.blocks import init_he, require_positive

STAGE_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection (ResNet-18/34).

    ``stride`` (first convolution) and ``downsample`` (projection of the shortcut) shrink the map
    and change the width at a stage's first block. ``N x inplanes x H x W`` -> ``N x planes x H/s x W/s``.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand to ``4 * planes``, and a residual connection.

    ``N x inplanes x H x W`` -> ``N x 4*planes x H/s x W/s`` (ResNet-50/101/152, torchvision's v1.5).
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + shortcut)


class ResNet(nn.Module):
    """Stem (7x7 conv, stride 2; 3x3 max pool, stride 2), four stages, global average pool, ``fc``.

    Stages 2-4 halve H and W in their first block. Input ``N x C x H x W``; ``features`` ``N x D``
    (D = 512 x ``block.expansion``); output ``N x K``. For 224 x 224, ``layer4`` gives D x 7 x 7.
    The forward uses module calls only, so the inflated network (``inflate(resnet)``) runs the
    same code on clips ``B x C x T x H x W``.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks_per_stage: tuple[int, int, int, int],
        num_classes: int = 1000,
        in_channels: int = 3,
    ):
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels)
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for index, (planes, blocks) in enumerate(zip(STAGE_WIDTHS, blocks_per_stage)):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes * block.expansion),
                )
            stage = [block(inplanes, planes, stride, downsample)]
            inplanes = planes * block.expansion
            stage += [block(inplanes, planes) for _ in range(1, blocks)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)
        init_he(self, linear_std=None)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``N x C x H x W`` -> ``N x D``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``N x C x H x W`` -> logits ``N x K``."""
        return self.fc(self.features(x))


def resnet18(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-18: ``BasicBlock`` x (2, 2, 2, 2), 512 features."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels)


def resnet50(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-50: ``Bottleneck`` x (3, 4, 6, 3), 2048 features."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels)
