"""The multiresolution fovea/context network of Karpathy et al., "Large-scale Video
Classification with Convolutional Neural Networks", CVPR 2014.

To cut computation without shrinking the input or the network, each frame goes through two
streams at half the resolution:

- context stream: the whole frame downsampled by 2 (H/2 x W/2, low resolution);
- fovea stream: the centre H/2 x W/2 crop at full resolution (where the camera usually looks).

The streams have the same architecture but separate weights; their globally pooled features are
concatenated before the fully connected layers. Like the paper's single-frame multiresolution
model, it works per frame; the clip's prediction averages the frames' probabilities (it is a
``SingleFrame`` whose frame encoder is the two-stream network).
"""

from __future__ import annotations

import torch
from torch import nn

from vidlearn.models.blocks import TOWER_WIDTHS, ConvTower, require_positive
from vidlearn.models.fusion import FUSION_INPUT, SingleFrame
from vidlearn.models.registry import register_model


class FoveaContextEncoder(nn.Module):
    """Two-resolution frame encoder: frames ``N x C x H x W`` -> ``N x hidden``.

    The context stream sees the frame average-pooled 2x2 (``H/2 x W/2``); the fovea stream sees the
    centre ``H/2 x W/2`` crop. Each stream is a ``ConvTower`` plus global average pool; the two
    ``widths[-1]``-vectors are concatenated, then a fully connected layer (ReLU, dropout).
    H and W must be at least 32 (each stream needs 16).
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: tuple[int, ...] = TOWER_WIDTHS,
        hidden: int = 256,
        dropout: float = 0.5,
    ):
        super().__init__()
        require_positive(hidden=hidden)
        self.downsample = nn.AvgPool2d(2)
        self.context = ConvTower(in_channels, widths)
        self.fovea = ConvTower(in_channels, widths)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(2 * widths[-1], hidden), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        height, width = frames.shape[-2:]
        crop_h, crop_w = height // 2, width // 2
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        centre = frames[..., top : top + crop_h, left : left + crop_w]
        context = self.pool(self.context(self.downsample(frames))).flatten(1)
        fovea = self.pool(self.fovea(centre)).flatten(1)
        return self.fc(torch.cat([context, fovea], dim=1))


@register_model(
    "fovea",
    default_input=FUSION_INPUT,
    description="Karpathy 2014 fovea/context streams (half resolution each) per frame, frame-averaged",
)
def fovea(num_classes: int, hidden: int = 256, in_channels: int = 3) -> SingleFrame:
    return SingleFrame(num_classes, FoveaContextEncoder(in_channels, hidden=hidden), hidden, in_channels)
