"""Where to fuse time: single frame, late fusion (FC or pooling), early fusion, slow fusion.

The course (after Karpathy et al., "Large-scale Video Classification with Convolutional Neural
Networks", CVPR 2014) compares networks that see the same frames and differ only in *when*
information from different frames meets:

- single frame: never; a 2D CNN classifies every frame, probabilities are averaged over frames;
- late fusion: at the end; per-frame 2D CNN features are concatenated (then an MLP) or pooled;
- early fusion: at the first layer; its 2D convolution sees all T frames stacked as channels;
- slow fusion: throughout; 3D convolutions and pooling shrink time gradually.

The classes below take their backbone as an argument; all take their arguments in one order:
``num_classes``, the backbone, its ``feature_dim``, then ``num_frames`` and ``frame_size`` where the
model depends on them, the model's own options, and ``in_channels`` last. The registered builders give the first four
the same 2D ``ConvTower`` and slow fusion its 3D twin with the same widths, so the models differ
only in where time is fused. All take ``B x C x T x H x W`` float clips.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import (
    TOWER_WIDTHS,
    ConvTower,
    as_pair,
    check_clip,
    check_num_frames,
    frame_encoder,
    output_shape,
    require_positive,
)
from vidlearn.models.registry import register_model

FUSION_INPUT = (3, 16, 112, 112)


class SingleFrame(nn.Module):
    """Classify every frame on its own; the clip's probabilities are the mean over its frames.

    ``frame_encoder`` maps frames ``N x C x H x W`` to vectors ``N x feature_dim``.
    Input ``B x C x T x H x W``. ``frame_logits`` gives ``B x T x K``; ``forward`` gives
    ``B x K`` = log of the frame-averaged softmax, so ``softmax(forward(x))`` is the course's
    test-time rule (average predicted probabilities). Training on ``forward`` with cross-entropy
    fits the averaged probabilities; to train frame by frame as the course does, use
    ``frame_logits`` with the clip's label repeated over T.
    """

    def __init__(self, num_classes: int, frame_encoder: nn.Module, feature_dim: int, in_channels: int = 3):
        super().__init__()
        self.in_channels = in_channels
        self.encoder = frame_encoder
        self.classifier = nn.Linear(feature_dim, num_classes)

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x T x D``: each frame encoded independently."""
        check_clip(x, self.in_channels)
        # Folding time into the batch is what makes the 2D network see frames independently.
        frames = rearrange(x, "b c t h w -> (b t) c h w")
        return rearrange(self.encoder(frames), "(b t) d -> b t d", b=x.shape[0])

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x T x K``: one prediction per frame."""
        return self.classifier(self.frame_features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x D``: the per-frame features averaged over frames."""
        return self.frame_features(x).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x K`` log of the mean over frames of the per-frame softmax."""
        log_probs = self.frame_logits(x).log_softmax(dim=-1)
        # log(mean_t p_t) computed stably as logsumexp_t(log p_t) - log T.
        return torch.logsumexp(log_probs, dim=1) - math.log(x.shape[2])


class LateFusionFC(nn.Module):
    """Per-frame 2D CNN feature maps, concatenated over time and space, then an MLP.

    ``frame_backbone`` maps frames ``N x C x H x W`` to maps ``N x D x h x w``; built for clips of
    ``num_frames`` frames of ``frame_size``, because the MLP's first layer takes all
    ``T * D * h * w`` values. Input ``B x C x T x H x W``; ``features`` ``B x hidden``; output ``B x K``.
    """

    def __init__(
        self,
        num_classes: int,
        frame_backbone: nn.Module,
        num_frames: int,
        frame_size: int | tuple[int, int],
        hidden: int = 256,
        dropout: float = 0.5,
        in_channels: int = 3,
    ):
        super().__init__()
        require_positive(num_frames=num_frames, hidden=hidden)
        self.in_channels = in_channels
        self.num_frames = num_frames
        self.frame_map_shape = output_shape(frame_backbone, (in_channels, *as_pair(frame_size, "frame_size")))
        self.backbone = frame_backbone
        self.mlp = nn.Sequential(
            nn.Linear(num_frames * math.prod(self.frame_map_shape), hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x hidden``."""
        check_clip(x, self.in_channels)
        check_num_frames(x, self.num_frames, "late_fusion_fc")
        maps = self.backbone(rearrange(x, "b c t h w -> (b t) c h w"))
        if tuple(maps.shape[1:]) != self.frame_map_shape:
            raise BadArgumentError(
                f"late_fusion_fc was built for frames giving {self.frame_map_shape} feature maps, "
                f"frames of {tuple(x.shape[-2:])} give {tuple(maps.shape[1:])}; build it with "
                f"frame_size={tuple(x.shape[-2:])}"
            )
        return self.mlp(rearrange(maps, "(b t) d h w -> b (t d h w)", b=x.shape[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.classifier(self.features(x))


class LateFusionPool(nn.Module):
    """Per-frame 2D CNN feature maps, averaged over space and time, then a linear classifier.

    ``frame_backbone`` maps frames ``N x C x H x W`` to maps ``N x D x h x w``. Input
    ``B x C x T x H x W`` (any T, H, W the backbone takes); ``features`` ``B x D``; output ``B x K``.
    """

    def __init__(self, num_classes: int, frame_backbone: nn.Module, feature_dim: int, in_channels: int = 3):
        super().__init__()
        self.in_channels = in_channels
        self.backbone = frame_backbone
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x D``."""
        check_clip(x, self.in_channels)
        maps = self.backbone(rearrange(x, "b c t h w -> (b t) c h w"))
        # Put time back beside space so that one pooling layer averages over T, h and w.
        maps = rearrange(maps, "(b t) d h w -> b d t h w", b=x.shape[0])
        return self.pool(maps).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.classifier(self.features(x))


class EarlyFusion(nn.Module):
    """All frames stacked as channels, so the first 2D convolution sees the whole clip.

    ``backbone`` is a 2D network whose first convolution takes ``C * num_frames`` channels, ordered
    frame by frame (``b c t h w -> b (t c) h w``: channels 0..C-1 are frame 0). Input
    ``B x C x T x H x W`` with T = ``num_frames``; ``features`` ``B x D`` (global average pool);
    output ``B x K``.
    """

    def __init__(
        self, num_classes: int, backbone: nn.Module, feature_dim: int, num_frames: int, in_channels: int = 3
    ):
        super().__init__()
        require_positive(num_frames=num_frames)
        self.in_channels = in_channels
        self.num_frames = num_frames
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x D``."""
        check_clip(x, self.in_channels)
        check_num_frames(x, self.num_frames, "early fusion")
        return self.pool(self.backbone(rearrange(x, "b c t h w -> b (t c) h w"))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.classifier(self.features(x))


class SlowFusion(nn.Module):
    """A 3D CNN: 3D convolutions and pooling fuse time gradually, then a global average pool.

    ``backbone`` maps ``B x C x T x H x W`` to ``B x D x T' x h x w``. Input ``B x C x T x H x W``
    (any T, H, W the backbone takes); ``features`` ``B x D``; output ``B x K``.
    """

    def __init__(self, num_classes: int, backbone: nn.Module, feature_dim: int, in_channels: int = 3):
        super().__init__()
        self.in_channels = in_channels
        self.backbone = backbone
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x D``."""
        check_clip(x, self.in_channels)
        return self.pool(self.backbone(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.classifier(self.features(x))


@register_model(
    "single_frame",
    default_input=FUSION_INPUT,
    description="2D CNN on every frame, frame-averaged probabilities (course baseline)",
)
def single_frame(num_classes: int, in_channels: int = 3) -> SingleFrame:
    return SingleFrame(num_classes, frame_encoder(in_channels), TOWER_WIDTHS[-1], in_channels)


@register_model(
    "late_fusion_fc",
    default_input=FUSION_INPUT,
    description="per-frame 2D CNN maps concatenated over time, then an MLP (fixed T and frame size)",
)
def late_fusion_fc(
    num_classes: int,
    num_frames: int = FUSION_INPUT[1],
    frame_size: int | tuple[int, int] = FUSION_INPUT[2:],
    hidden: int = 256,
    in_channels: int = 3,
) -> LateFusionFC:
    return LateFusionFC(
        num_classes, ConvTower(in_channels), num_frames, frame_size, hidden=hidden, in_channels=in_channels
    )


@register_model(
    "late_fusion_pool",
    default_input=FUSION_INPUT,
    description="per-frame 2D CNN maps averaged over space and time, then a linear layer",
)
def late_fusion_pool(num_classes: int, in_channels: int = 3) -> LateFusionPool:
    return LateFusionPool(num_classes, ConvTower(in_channels), TOWER_WIDTHS[-1], in_channels)


@register_model(
    "early_fusion",
    default_input=FUSION_INPUT,
    description="first 2D convolution sees all T frames stacked as channels (fixed T)",
)
def early_fusion(num_classes: int, num_frames: int = FUSION_INPUT[1], in_channels: int = 3) -> EarlyFusion:
    require_positive(num_frames=num_frames, in_channels=in_channels)
    return EarlyFusion(
        num_classes, ConvTower(in_channels * num_frames), TOWER_WIDTHS[-1], num_frames, in_channels
    )


@register_model(
    "slow_fusion",
    default_input=FUSION_INPUT,
    description="small 3D CNN: 3D convolutions and pooling reduce time gradually",
)
def slow_fusion(num_classes: int, in_channels: int = 3) -> SlowFusion:
    # Keep all frames through the stem and first pool, then halve T with space: 16 -> 16 -> 8 -> 4.
    tower = ConvTower(
        in_channels, dims=3, stem_stride=(1, 2, 2), pool_sizes=((1, 2, 2), (2, 2, 2), (2, 2, 2))
    )
    return SlowFusion(num_classes, tower, TOWER_WIDTHS[-1], in_channels)
