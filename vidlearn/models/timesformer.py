"""TimeSformer (Bertasius, Wang and Torresani, "Is Space-Time Attention All You Need for Video
Understanding?", ICML 2021): a ViT on the 16 x 16 patches of every frame, with three of the paper's
attention schemes.

- ``divided``: each block runs temporal attention (every patch attends to the patches at the same
  position in the other frames), projected by ``temporal_fc``, then spatial attention (within each
  frame, with the class token), each with its residual, then the MLP. Per block a token meets
  ``T + N + 1`` others instead of ``T * N + 1``.
- ``joint``: every one of the ``1 + T * N`` tokens attends to every other (quadratic in ``T * N``).
- ``space``: the space-only baseline, an image ViT on each frame (its own copy of the class token);
  the frames' class tokens are averaged at the end. No time embedding.

Parameter names follow the official code (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
``time_embed``, ``blocks.i.temporal_norm1`` / ``temporal_attn`` / ``temporal_fc`` / ``norm1`` /
``attn`` / ``norm2`` / ``mlp``, ``norm``, ``head``); its ``patch_embed.proj`` is a Conv2d, ours the
equivalent 1 x 16 x 16 Conv3d.
"""

from __future__ import annotations

import torch
from einops import rearrange, reduce, repeat
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import require_positive
from vidlearn.models.registry import register_model
from vidlearn.models.transformer import (
    Attention,
    Block,
    Mlp,
    TubeletEmbedding,
    attend_in_groups,
    init_linear_layers,
    layer_norm,
    learned_embedding,
    transformer_size,
)

TIMESFORMER_INPUT = (3, 8, 224, 224)
ATTENTION_SCHEMES = ("divided", "joint", "space")


class DividedSpaceTimeBlock(nn.Module):
    """Temporal attention, then spatial attention, then the MLP, each pre-norm with a residual.

    Tokens ``B x (1 + T N) x D``: the class token, then the patches frame by frame. The class token
    takes no part in temporal attention; in spatial attention every frame gets a copy of it, and the
    copies' updates are averaged (as in the official code).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int, num_frames: int):
        super().__init__()
        self.num_frames = num_frames
        self.temporal_norm1 = layer_norm(dim)
        self.temporal_attn = Attention(dim, heads)
        self.temporal_fc = nn.Linear(dim, dim)
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.num_frames
        cls, patches = x[:, :1], x[:, 1:]
        n = patches.shape[1] // t
        over_time = attend_in_groups(
            patches, self.temporal_norm1, self.temporal_attn, "b (t n) d -> (b n) t d", t=t, n=n
        )
        patches = patches + self.temporal_fc(over_time)
        cls_per_frame = repeat(cls, "b 1 d -> (b t) 1 d", t=t)
        frames = torch.cat([cls_per_frame, rearrange(patches, "b (t n) d -> (b t) n d", t=t)], dim=1)
        over_space = self.attn(self.norm1(frames))
        cls = cls + reduce(over_space[:, :1], "(b t) 1 d -> b 1 d", "mean", t=t)
        patches = patches + rearrange(over_space[:, 1:], "(b t) n d -> b (t n) d", t=t)
        x = torch.cat([cls, patches], dim=1)
        return x + self.mlp(self.norm2(x))


class TimeSformer(nn.Module):
    """TimeSformer with ``attention`` = ``divided``, ``joint`` or ``space`` (see the module docstring).

    Input ``B x C x T x H x W`` with T = ``num_frames`` and H x W = ``frame_size`` (the learned
    embeddings depend on them; H, W multiples of ``patch_size``). Patches get a learned space
    position embedding (shared by all frames) plus, unless ``space``, a learned time embedding
    (shared by all positions; zero at first, as in the official code); the class token gets the
    position embedding's first entry. ``features``: the final LayerNorm of the class token,
    ``B x D``; output ``B x K``.
    """

    def __init__(
        self,
        num_classes: int,
        attention: str = "divided",
        size: str = "base",
        patch_size: int = 16,
        num_frames: int = TIMESFORMER_INPUT[1],
        frame_size: int | tuple[int, int] = TIMESFORMER_INPUT[2:],
        in_channels: int = 3,
    ):
        super().__init__()
        if attention not in ATTENTION_SCHEMES:
            raise BadArgumentError(
                f"unknown attention {attention!r}; choose one of {', '.join(ATTENTION_SCHEMES)}"
            )
        require_positive(num_classes=num_classes)
        spec = transformer_size(size)
        self.attention = attention
        self.patch_embed = TubeletEmbedding(
            in_channels, spec.dim, (1, patch_size, patch_size), num_frames, frame_size, "timesformer"
        )
        self.cls_token = learned_embedding(1, 1, spec.dim)
        self.pos_embed = learned_embedding(1, 1 + self.patch_embed.patches_per_frame, spec.dim)
        if attention != "space":
            self.time_embed = nn.Parameter(torch.zeros(1, num_frames, spec.dim))
        if attention == "divided":
            blocks = [
                DividedSpaceTimeBlock(spec.dim, spec.heads, spec.mlp_ratio, num_frames)
                for _ in range(spec.depth)
            ]
        else:
            blocks = [Block(spec.dim, spec.heads, spec.mlp_ratio) for _ in range(spec.depth)]
        self.blocks = nn.Sequential(*blocks)
        self.norm = layer_norm(spec.dim)
        self.head = nn.Linear(spec.dim, num_classes)
        init_linear_layers(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x D``."""
        patches = self.patch_embed(x) + self.pos_embed[:, None, 1:]
        batch, frames = patches.shape[:2]
        cls = self.cls_token + self.pos_embed[:, :1]
        if self.attention == "space":
            tokens = torch.cat(
                [cls.expand(batch * frames, -1, -1), rearrange(patches, "b t n d -> (b t) n d")], 1
            )
            cls_per_frame = self.blocks(tokens)[:, 0]
            return self.norm(reduce(cls_per_frame, "(b t) d -> b d", "mean", b=batch))
        patches = patches + self.time_embed[:, :, None]
        tokens = torch.cat([cls.expand(batch, -1, -1), rearrange(patches, "b t n d -> b (t n) d")], 1)
        return self.norm(self.blocks(tokens)[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.head(self.features(x))


register_model(
    "timesformer",
    default_input=TIMESFORMER_INPUT,
    description="TimeSformer (ViT on frame patches); attention=divided|joint|space, size=tiny|small|base",
)(TimeSformer)
