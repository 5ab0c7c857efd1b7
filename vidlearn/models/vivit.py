"""ViViT (Arnab et al., "ViViT: A Video Vision Transformer", ICCV 2021): two of its factorised models.

The clip is cut into ``t x p x p`` tubelets (``tubelet=(2, 16, 16)``, the paper's "tubelet
embedding", a Conv3d; ``(1, 16, 16)`` gives ViT's per-frame patches), ``T' = T / t`` temporal
indices of ``N = (H / p) * (W / p)`` tokens each.

- ``factorised_encoder`` (model 2, late fusion): a spatial transformer encodes each temporal index
  on its own, with its own class token; the ``T'`` per-frame class tokens, with a temporal class
  token, go through a temporal transformer (``temporal_depth`` layers, 4 for ViViT-B).
- ``factorised_self_attention`` (model 3): every block runs spatial self-attention (among the N
  tokens of a temporal index), then temporal self-attention (among the T' tokens at one position),
  then the MLP. No class token (the paper leaves it out "to avoid ambiguities when reshaping"):
  the tokens are averaged after the final LayerNorm.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from einops import rearrange
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import require_positive
from vidlearn.models.registry import register_model
from vidlearn.models.transformer import (
    Attention,
    Mlp,
    TransformerSize,
    TubeletEmbedding,
    attend_in_groups,
    init_linear_layers,
    layer_norm,
    learned_embedding,
    transformer_blocks,
    transformer_size,
)

VIVIT_INPUT = (3, 32, 224, 224)
VIVIT_TUBELET = (2, 16, 16)


class FactorisedSelfAttentionBlock(nn.Module):
    """Spatial attention, then temporal attention, then the MLP, each pre-norm with a residual.

    Tokens ``B x (T' N) x D``, temporal index by temporal index; ``B x (T' N) x D`` out.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int, num_frames: int):
        super().__init__()
        self.num_frames = num_frames
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, heads)
        self.temporal_norm = layer_norm(dim)
        self.temporal_attn = Attention(dim, heads)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.num_frames
        n = x.shape[1] // t
        x = x + attend_in_groups(x, self.norm1, self.attn, "b (t n) d -> (b t) n d", t=t, n=n)
        x = x + attend_in_groups(
            x, self.temporal_norm, self.temporal_attn, "b (t n) d -> (b n) t d", t=t, n=n
        )
        return x + self.mlp(self.norm2(x))


class ViViT(nn.Module, ABC):
    """What both factorised models share: clips ``B x C x T x H x W`` (T = ``num_frames``, H x W =
    ``frame_size``, multiples of the tubelet) cut into tubelet tokens ``B x T' x N x D``, an encoder
    of the tokens (``build_encoder`` and ``features``, per model) ending in ``B x D``, and a linear
    head; output logits ``B x K``."""

    def __init__(
        self,
        num_classes: int,
        size: str = "base",
        tubelet: tuple[int, int, int] = VIVIT_TUBELET,
        num_frames: int = VIVIT_INPUT[1],
        frame_size: int | tuple[int, int] = VIVIT_INPUT[2:],
        in_channels: int = 3,
    ):
        super().__init__()
        require_positive(num_classes=num_classes)
        spec = transformer_size(size)
        self.patch_embed = TubeletEmbedding(in_channels, spec.dim, tubelet, num_frames, frame_size, "vivit")
        embed = self.patch_embed
        self.build_encoder(spec, temporal_tokens=embed.grid[0], spatial_tokens=embed.patches_per_frame)
        self.head = nn.Linear(spec.dim, num_classes)
        init_linear_layers(self)

    @abstractmethod
    def build_encoder(self, spec: TransformerSize, temporal_tokens: int, spatial_tokens: int) -> None:
        """Add the layers between the tubelet embedding and the head (``T'`` x ``N`` tokens)."""

    @abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x D``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.head(self.features(x))


class ViViTFactorisedEncoder(ViViT):
    """ViViT model 2: a spatial ViT per temporal index, then a temporal transformer over their class tokens.

    Spatial tokens: ``1 + N`` per temporal index with a learned position embedding shared by all
    indices; temporal tokens: ``1 + T'`` with their own. Both encoders end in a LayerNorm
    (``spatial_norm``, ``norm``). ``features``: the temporal class token, ``B x D``; output ``B x K``.
    """

    def build_encoder(self, spec: TransformerSize, temporal_tokens: int, spatial_tokens: int) -> None:
        self.cls_token = learned_embedding(1, 1, spec.dim)
        self.pos_embed = learned_embedding(1, 1 + spatial_tokens, spec.dim)
        self.spatial_blocks = transformer_blocks(spec.dim, spec.depth, spec.heads, spec.mlp_ratio)
        self.spatial_norm = layer_norm(spec.dim)
        self.temporal_cls_token = learned_embedding(1, 1, spec.dim)
        self.temporal_pos_embed = learned_embedding(1, 1 + temporal_tokens, spec.dim)
        self.temporal_blocks = transformer_blocks(spec.dim, spec.temporal_depth, spec.heads, spec.mlp_ratio)
        self.norm = layer_norm(spec.dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x D``."""
        frames = rearrange(self.patch_embed(x), "b t n d -> (b t) n d")
        frames = torch.cat([self.cls_token.expand(frames.shape[0], -1, -1), frames], 1) + self.pos_embed
        per_frame = rearrange(
            self.spatial_norm(self.spatial_blocks(frames)[:, 0]), "(b t) d -> b t d", b=x.shape[0]
        )
        clip = (
            torch.cat([self.temporal_cls_token.expand(x.shape[0], -1, -1), per_frame], 1)
            + self.temporal_pos_embed
        )
        return self.norm(self.temporal_blocks(clip)[:, 0])


class ViViTFactorisedSelfAttention(ViViT):
    """ViViT model 3: ``depth`` blocks of spatial then temporal self-attention over all ``T' N`` tokens.

    One learned position embedding over the ``T' N`` tokens, no class token; ``features``: the mean
    over tokens after the final LayerNorm, ``B x D``.
    """

    def build_encoder(self, spec: TransformerSize, temporal_tokens: int, spatial_tokens: int) -> None:
        self.pos_embed = learned_embedding(1, temporal_tokens * spatial_tokens, spec.dim)
        self.blocks = nn.Sequential(
            *(
                FactorisedSelfAttentionBlock(spec.dim, spec.heads, spec.mlp_ratio, temporal_tokens)
                for _ in range(spec.depth)
            )
        )
        self.norm = layer_norm(spec.dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x D``."""
        tokens = rearrange(self.patch_embed(x), "b t n d -> b (t n) d") + self.pos_embed
        return self.norm(self.blocks(tokens)).mean(dim=1)


VIVIT_VARIANTS = {
    "factorised_encoder": ViViTFactorisedEncoder,
    "factorised_self_attention": ViViTFactorisedSelfAttention,
}


@register_model(
    "vivit",
    default_input=VIVIT_INPUT,
    description="ViViT, 2x16x16 tubelets; variant=factorised_encoder|factorised_self_attention, size=tiny|small|base",
)
def vivit(
    num_classes: int,
    variant: str = "factorised_encoder",
    size: str = "base",
    tubelet: tuple[int, int, int] = VIVIT_TUBELET,
    num_frames: int = VIVIT_INPUT[1],
    frame_size: int | tuple[int, int] = VIVIT_INPUT[2:],
    in_channels: int = 3,
) -> ViViT:
    if variant not in VIVIT_VARIANTS:
        raise BadArgumentError(
            f"unknown ViViT variant {variant!r}; choose one of {', '.join(VIVIT_VARIANTS)}"
        )
    return VIVIT_VARIANTS[variant](num_classes, size, tubelet, num_frames, frame_size, in_channels)
