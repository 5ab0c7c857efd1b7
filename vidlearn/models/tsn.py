"""Temporal Segment Networks (Wang et al., "Temporal Segment Networks: Towards Good Practices for
Deep Action Recognition", ECCV 2016).

The course: sample frames or segments sparsely across the entire video and aggregate their
predictions to model long-range structure. The video is split into K segments of equal length and
one frame (a snippet) is taken from each (``vidlearn.data.samplers.tsn_segments``), so K frames span
the whole video however long it is. A shared 2D network scores every snippet and a segmental
consensus combines the K class-score vectors into the video's scores; the loss is applied to the
consensus, so training sees the whole video at the cost of K frames.
"""

from __future__ import annotations

import torch
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import TOWER_WIDTHS, frame_encoder
from vidlearn.models.fusion import SingleFrame
from vidlearn.models.registry import register_model

# K = 3 segments, as in the paper's experiments.
TSN_INPUT = (3, 3, 112, 112)
CONSENSUS = ("average", "max")


class TSN(SingleFrame):
    """A shared 2D network scores each segment's frame; a consensus over segments gives the clip's scores.

    Input ``B x C x K x H x W``: the K frames are one per segment (sample them with
    ``tsn_segments``). ``frame_logits``: per-segment class scores ``B x K x classes``; ``forward``:
    their ``consensus`` over segments, ``"average"`` (the paper's default) or ``"max"``, as logits
    ``B x classes`` to train with cross-entropy. ``features``: segment features averaged,
    ``B x feature_dim``.

    Unlike ``single_frame`` (probabilities of consecutive frames of a short clip averaged at test
    time), the consensus is taken over class *scores* (logits) of frames that span the whole video,
    and it is what the loss is applied to during training.
    """

    def __init__(
        self,
        num_classes: int,
        frame_encoder: nn.Module,
        feature_dim: int,
        consensus: str = "average",
        in_channels: int = 3,
    ):
        if consensus not in CONSENSUS:
            raise BadArgumentError(f"consensus must be one of {', '.join(CONSENSUS)}, got {consensus!r}")
        super().__init__(num_classes, frame_encoder, feature_dim, in_channels)
        self.consensus = consensus

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x K x H x W`` -> consensus logits ``B x classes``."""
        scores = self.frame_logits(x)
        return scores.mean(dim=1) if self.consensus == "average" else scores.amax(dim=1)


@register_model(
    "tsn",
    default_input=TSN_INPUT,
    description="Wang 2016 temporal segment network: 2D CNN on one frame per segment, consensus of scores",
)
def tsn(num_classes: int, consensus: str = "average", in_channels: int = 3) -> TSN:
    return TSN(num_classes, frame_encoder(in_channels), TOWER_WIDTHS[-1], consensus, in_channels)
