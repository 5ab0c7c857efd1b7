"""Two-stream networks (Simonyan and Zisserman, NeurIPS 2014): appearance and motion apart.

The course's picture: a spatial stream sees one RGB frame (``3 x H x W``), a temporal stream sees
a stack of optical flow fields (``2(T-1) x H x W``, fused at its first convolution, i.e. early
fusion), and the two streams' class scores are fused. Here:

- ``spatial_stream``: a 2D CNN on the middle frame of an RGB clip ``B x 3 x T x H x W``;
- ``flow_stream``: the temporal stream alone, on a flow clip ``B x 2 x (T-1) x H x W`` (see
  ``vidlearn.motion.dataset``: channel 0 dx, 1 dy), stacked ``b c t h w -> b (t c) h w`` so the
  first convolution's input channels are ``dx_0, dy_0, dx_1, dy_1, ...``;
- ``two_stream``: both, on one tensor ``B x 5 x T x H x W`` (RGB in channels 0-2, flow in 3-4,
  its last time step empty), with score fusion by weighted averaging of the streams' class
  probabilities (``fusion="average"``, weight ``spatial_weight`` on the spatial stream) or a
  learned linear map of the stacked class scores (``fusion="learned"``, initialised to the
  plain average; the paper used an SVM on the stacked scores).

Both streams use the project's small 2D tower (``vidlearn.models.blocks.ConvTower``), so their
costs compare with the fusion models of ``vidlearn.models.fusion``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import TOWER_WIDTHS, ConvTower, check_clip, frame_encoder, require_positive
from vidlearn.models.fusion import EarlyFusion
from vidlearn.models.registry import register_model

TWO_STREAM_INPUT = (5, 16, 112, 112)
FUSIONS = ("average", "learned")


class SpatialStream(nn.Module):
    """A 2D CNN on one frame of the clip: input ``B x C x T x H x W``, uses frame ``T // 2``."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.in_channels = in_channels
        self.encoder = frame_encoder(in_channels)
        self.classifier = nn.Linear(TOWER_WIDTHS[-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x D`` from the middle frame."""
        check_clip(x, self.in_channels)
        return self.encoder(x[:, :, x.shape[2] // 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def temporal_stream(num_classes: int, num_flow_frames: int) -> EarlyFusion:
    """The temporal stream: early fusion of ``num_flow_frames`` flow fields (``2 * num_flow_frames`` channels)."""
    return EarlyFusion(
        num_classes, ConvTower(2 * num_flow_frames), TOWER_WIDTHS[-1], num_flow_frames, in_channels=2
    )


class TwoStream(nn.Module):
    """Spatial and temporal streams with score fusion; input ``B x 5 x T x H x W`` (RGB + flow).

    ``forward`` returns log fused probabilities for ``fusion="average"`` (so that softmax gives
    ``w * p_spatial + (1 - w) * p_temporal``) and the fused scores for ``fusion="learned"``;
    ``stream_logits`` gives each stream's own logits ``(B x K, B x K)``.
    """

    def __init__(
        self,
        num_classes: int,
        num_frames: int = TWO_STREAM_INPUT[1],
        fusion: str = "average",
        spatial_weight: float = 0.5,
    ):
        super().__init__()
        require_positive(num_frames=num_frames)
        if num_frames < 2:
            raise BadArgumentError(
                f"two_stream needs clips of at least 2 frames (T-1 flow fields), got {num_frames}"
            )
        if fusion not in FUSIONS:
            raise BadArgumentError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        if not 0.0 <= spatial_weight <= 1.0:
            raise BadArgumentError(f"spatial_weight must be in [0, 1], got {spatial_weight!r}")
        self.in_channels = 5
        self.fusion = fusion
        self.spatial_weight = spatial_weight
        self.spatial = SpatialStream(num_classes)
        self.temporal = temporal_stream(num_classes, num_frames - 1)
        if fusion == "learned":
            self.fuse = nn.Linear(2 * num_classes, num_classes)
            with torch.no_grad():
                eye = torch.eye(num_classes)
                self.fuse.weight.copy_(torch.cat([spatial_weight * eye, (1 - spatial_weight) * eye], dim=1))
                self.fuse.bias.zero_()

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_clip(x, self.in_channels)
        return x[:, :3], x[:, 3:, :-1]

    def stream_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``B x 5 x T x H x W`` -> (spatial logits, temporal logits), each ``B x K``."""
        rgb, flow = self._split(x)
        return self.spatial(rgb), self.temporal(flow)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x 2D``: the two streams' features side by side."""
        rgb, flow = self._split(x)
        return torch.cat([self.spatial.features(rgb), self.temporal.features(flow)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial, temporal = self.stream_logits(x)
        if self.fusion == "learned":
            return self.fuse(torch.cat([spatial, temporal], dim=1))
        return fuse_probabilities(spatial, temporal, self.spatial_weight)


def fuse_probabilities(
    spatial_logits: torch.Tensor, temporal_logits: torch.Tensor, spatial_weight: float
) -> torch.Tensor:
    """``log(w * softmax(s) + (1 - w) * softmax(t))``, computed stably in log space."""
    weights = torch.tensor(
        [spatial_weight, 1.0 - spatial_weight], dtype=spatial_logits.dtype, device=spatial_logits.device
    )
    log_probs = torch.stack([spatial_logits.log_softmax(-1), temporal_logits.log_softmax(-1)])
    # A zero weight would give log(0) = -inf; the mask keeps the other stream's term alone.
    log_weights = torch.where(
        weights > 0, weights.clamp_min(1e-30).log(), torch.full_like(weights, -math.inf)
    )
    return torch.logsumexp(log_probs + log_weights[:, None, None], dim=0)


register_model(
    "spatial_stream",
    default_input=(3, 16, 112, 112),
    description="two-stream's spatial stream: 2D CNN on the middle RGB frame",
)(SpatialStream)


@register_model(
    "flow_stream",
    default_input=(2, 15, 112, 112),
    description="two-stream's temporal stream: 2(T-1) stacked flow channels fused at the first conv",
)
def flow_stream(num_classes: int, num_frames: int = 16) -> EarlyFusion:
    """``num_frames`` is the clip's T (RGB frames); the stream takes its T-1 flow fields."""
    if num_frames < 2:
        raise BadArgumentError(
            f"flow_stream needs clips of at least 2 frames (T-1 flow fields), got {num_frames}"
        )
    return temporal_stream(num_classes, num_frames - 1)


register_model(
    "two_stream",
    default_input=TWO_STREAM_INPUT,
    description="spatial (RGB frame) + temporal (flow stack) streams with score fusion; input RGB+flow",
)(TwoStream)
