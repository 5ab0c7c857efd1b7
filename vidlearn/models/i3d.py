"""I3D: image networks inflated into video networks (Carreira and Zisserman, "Quo Vadis, Action
Recognition? A New Model and the Kinetics Dataset", CVPR 2017), built with ``vidlearn.models.inflate``.

- ``i3d_r50``: ResNet-50 inflated in the I3D configuration of PySlowFast and PyTorchVideo (their
  Kinetics-400 model zoos' "I3D R50 8x8", after Wang et al., "Non-local Neural Networks", CVPR 2018):
  a 5x7x7 stem, a 3x1x1 or 1x1x1 first convolution in each bottleneck, every other convolution
  1 x K x K, and a 2x1x1 max pool halving T after the first stage. Its parameter names are
  torchvision's ResNet-50's, so ``inflate_state_dict(resnet50_state_dict, model)`` starts it from an
  ImageNet model.
- ``i3d_tower``: the course's single-frame baseline (``single_frame``) inflated: the same 2D tower
  with every 3x3 convolution made 3x3x3, a global average pool over T x H x W and the same
  classifier, with the same parameter names, so a trained ``single_frame`` checkpoint maps onto it.
"""

from __future__ import annotations

import torch
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import TOWER_WIDTHS, check_clip, frame_encoder, require_dropout
from vidlearn.models.fusion import FUSION_INPUT
from vidlearn.models.inflation import inflate
from vidlearn.models.registry import register_model
from vidlearn.models.resnet2d import ResNet, resnet50

I3D_INPUT = (3, 8, 224, 224)

# PySlowFast's "i3d" architecture (slowfast/models/video_model_builder.py: _TEMPORAL_KERNEL_BASIS["i3d"]
# and _POOL1["i3d"]; PyTorchVideo's i3d_r50 is the same network). The stem convolution is 5x7x7. In
# each stage, the first (1x1) convolution of block b is K_t x 1 x 1 with K_t = pattern[b % len(pattern)]
# (res2: 3 3 3; res3: 3 1 3 1; res4: 3 1 3 1 3 1; res5: 1 3 1); every other convolution keeps K_t = 1.
STEM_TIME_KERNEL = 5
STAGE_TIME_KERNELS = ((3,), (3, 1), (3, 1), (1, 3))
# After res2 (layer1), a 2x1x1 max pool with stride 2x1x1 halves T: 8 frames -> 4 for res3-res5.
TEMPORAL_POOL = 2


def i3d_time_kernels(resnet: ResNet) -> dict[str, int]:
    """I3D's time kernel for the stem and each block's first convolution of a 2D ``ResNet``, by layer name."""
    kernels = {"conv1": STEM_TIME_KERNEL}
    for stage, pattern in enumerate(STAGE_TIME_KERNELS, start=1):
        for block in range(len(getattr(resnet, f"layer{stage}"))):
            kernels[f"layer{stage}.{block}.conv1"] = pattern[block % len(pattern)]
    return kernels


class I3DResNet(nn.Module):
    """An inflated ``ResNet`` with I3D's temporal max pool after its first stage, dropout and ``fc``.

    ``resnet`` is a ``vidlearn.models.resnet2d.ResNet`` already inflated (``inflate``); its modules
    are taken over under their names, so the state-dict keys are the 2D network's. Input
    ``B x C x T x H x W`` with T >= 2: stem (conv, batch norm, ReLU, 1x3x3 max pool) and ``layer1`` at T,
    ``temporal_pool`` to T // 2, ``layer2`` ... ``layer4``, global average pool over T x H x W,
    ``features`` ``B x D``, dropout, ``fc`` -> ``B x K``. For 8 x 224 x 224, ``layer4`` of ResNet-50
    gives 2048 x 4 x 7 x 7.
    """

    def __init__(self, resnet: ResNet, dropout: float = 0.5):
        super().__init__()
        self.in_channels = resnet.conv1.in_channels
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1 = resnet.layer1
        self.temporal_pool = nn.MaxPool3d((TEMPORAL_POOL, 1, 1), stride=(TEMPORAL_POOL, 1, 1))
        self.layer2, self.layer3, self.layer4 = resnet.layer2, resnet.layer3, resnet.layer4
        self.avgpool = resnet.avgpool
        self.dropout = nn.Dropout(dropout)
        self.fc = resnet.fc

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x D``."""
        check_clip(x, self.in_channels)
        if x.shape[2] < TEMPORAL_POOL:
            raise BadArgumentError(
                f"I3D halves T after its first stage, so clips need at least {TEMPORAL_POOL} frames, got {x.shape[2]}"
            )
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.temporal_pool(self.layer1(x))
        x = self.layer4(self.layer3(self.layer2(x)))
        return self.avgpool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.fc(self.dropout(self.features(x)))


class InflatedClassifier(nn.Module):
    """A frame classifier's encoder inflated into a clip encoder, followed by a linear classifier.

    ``encoder`` maps clips ``B x C x T x H x W`` to ``B x feature_dim`` (an inflated ``SingleFrame``
    encoder ends in a global average pool over T x H x W). The parameter names (``encoder.*``,
    ``classifier.*``) are ``SingleFrame``'s, so a trained single-frame state dict maps onto this model
    with ``inflate_state_dict``. ``features`` ``B x D``; output logits ``B x K``.
    """

    def __init__(self, num_classes: int, encoder: nn.Module, feature_dim: int, in_channels: int = 3):
        super().__init__()
        self.in_channels = in_channels
        self.encoder = encoder
        self.classifier = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x D``."""
        check_clip(x, self.in_channels)
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.classifier(self.features(x))


@register_model(
    "i3d_r50",
    default_input=I3D_INPUT,
    description="ImageNet-style ResNet-50 inflated as I3D (PySlowFast/PyTorchVideo I3D R50 8x8 configuration)",
)
def i3d_r50(
    num_classes: int, in_channels: int = 3, dropout: float = 0.5, temporal_padding: str = "zeros"
) -> I3DResNet:
    require_dropout(dropout)
    resnet = resnet50(num_classes, in_channels)
    return I3DResNet(inflate(resnet, 1, i3d_time_kernels(resnet), temporal_padding), dropout)


@register_model(
    "i3d_tower",
    default_input=FUSION_INPUT,
    description="single_frame's 2D tower inflated to 3x3x3 convolutions; single_frame checkpoints inflate onto it",
)
def i3d_tower(
    num_classes: int, in_channels: int = 3, time_kernel: int = 3, temporal_padding: str = "zeros"
) -> InflatedClassifier:
    encoder = inflate(frame_encoder(in_channels), time_kernel, temporal_padding=temporal_padding)
    return InflatedClassifier(num_classes, encoder, TOWER_WIDTHS[-1], in_channels)
