"""The plain video ViT that VideoMAE pre-trains and fine-tunes (Tong et al., "VideoMAE: Masked
Autoencoders are Data-Efficient Learners for Self-Supervised Video Pre-Training", NeurIPS 2022).

``2 x 16 x 16`` tubelets (a Conv3d), a fixed sine-cosine position table over the token index, joint
space-time attention among all ``T' N`` tokens, no class token; the tokens are averaged, normalised
(``fc_norm``) and classified (``head``). ViT-B on 16 x 224 x 224 clips has 1568 tokens.

``VideoViTBackbone`` (embedding + blocks) is shared with ``vidlearn.ssl.videomae.VideoMAE``, whose
encoder is one, so a pre-trained encoder's ``state_dict`` loads into ``VideoViT`` with only
``fc_norm`` and ``head`` missing. Parameter names follow the official fine-tuning model
(``patch_embed.proj``, ``blocks.i.norm1`` / ``attn.qkv`` / ``attn.proj`` / ``norm2`` / ``mlp.fc1`` /
``mlp.fc2``, ``fc_norm``, ``head``); the official attention has no key bias (it cannot change
softmax attention), so its ``q_bias`` and ``v_bias`` load as ``attn.qkv.bias = cat(q_bias, 0, v_bias)``.
"""

from __future__ import annotations

import torch
from torch import nn

from vidlearn.models.blocks import require_positive
from vidlearn.models.registry import register_model
from vidlearn.models.transformer import (
    TubeletEmbedding,
    init_linear_layers,
    layer_norm,
    sincos_position_table,
    transformer_blocks,
    transformer_size,
)

VIT_VIDEO_INPUT = (3, 16, 224, 224)


class VideoViTBackbone(nn.Module):
    """Tubelet embedding, fixed sine-cosine positions and ``depth`` joint space-time blocks.

    ``embed``: clips ``B x C x T x H x W`` -> tokens ``B x (T' N) x D`` (tubelets in (t, h, w)
    order, positions added); ``forward``: the blocks' output for all tokens, ``B x (T' N) x D``.
    Built for clips of ``num_frames x frame_size`` (the position table has one row per token).
    """

    def __init__(
        self,
        size: str = "base",
        patch_size: int = 16,
        tubelet_size: int = 2,
        num_frames: int = VIT_VIDEO_INPUT[1],
        frame_size: int | tuple[int, int] = VIT_VIDEO_INPUT[2:],
        in_channels: int = 3,
    ):
        super().__init__()
        spec = transformer_size(size)
        self.dim = spec.dim
        self.patch_embed = TubeletEmbedding(
            in_channels, spec.dim, (tubelet_size, patch_size, patch_size), num_frames, frame_size, "vit_video"
        )
        num_tokens = self.patch_embed.grid[0] * self.patch_embed.patches_per_frame
        # Fixed, not learned, and rebuilt from the sizes: not part of the state dict.
        self.register_buffer("pos_embed", sincos_position_table(num_tokens, spec.dim)[None], persistent=False)
        self.blocks = transformer_blocks(spec.dim, spec.depth, spec.heads, spec.mlp_ratio)
        init_linear_layers(self)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x (T' N) x D``: tubelet embeddings plus their positions."""
        return self.patch_embed(x).flatten(1, 2) + self.pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x (T' N) x D``."""
        return self.blocks(self.embed(x))


class VideoViT(VideoViTBackbone):
    """``VideoViTBackbone``, then the mean over tokens, ``fc_norm`` (LayerNorm) and ``head``.

    ``features``: ``B x D``; output ``B x K``.
    """

    def __init__(
        self,
        num_classes: int,
        size: str = "base",
        patch_size: int = 16,
        tubelet_size: int = 2,
        num_frames: int = VIT_VIDEO_INPUT[1],
        frame_size: int | tuple[int, int] = VIT_VIDEO_INPUT[2:],
        in_channels: int = 3,
    ):
        super().__init__(size, patch_size, tubelet_size, num_frames, frame_size, in_channels)
        require_positive(num_classes=num_classes)
        self.fc_norm = layer_norm(self.dim)
        self.head = nn.Linear(self.dim, num_classes)
        init_linear_layers(self.head)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x D``."""
        return self.fc_norm(super().forward(x).mean(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.head(self.features(x))


register_model(
    "vit_video",
    default_input=VIT_VIDEO_INPUT,
    description="VideoMAE's ViT: 2x16x16 tubelets, sine-cosine positions, joint space-time attention, mean pool",
)(VideoViT)
