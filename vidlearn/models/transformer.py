"""Pieces shared by the video transformers (TimeSformer, ViViT, the VideoMAE ViT).

The factoring follows timm's ``vision_transformer.py``: ``Attention`` (multi-head self-attention
through ``scaled_dot_product_attention``, so PyTorch picks a fused kernel where it has one),
``Mlp`` and the pre-norm ``Block`` (``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``), with the
same parameter names (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``).
Video models differ in *which tokens attend to which*: ``attend_in_groups`` regroups a token
sequence with an einops pattern (all frames at one position, all positions in one frame, ...)
and runs a pre-norm attention within each group.

Token layout: ``B x L x D``; patches of a clip are ordered frame by frame, ``L = T' * N`` with
``N = (H / p) * (W / p)`` patches per frame (``(t n)`` in einops terms), after any class token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import as_pair, check_clip, require_positive

# timm, the official TimeSformer and VideoMAE code, and ViViT (Flax) all use this epsilon.
LAYER_NORM_EPS = 1e-6
INIT_STD = 0.02


@dataclass(frozen=True)
class TransformerSize:
    """Width ``dim``, ``depth`` blocks of ``heads`` heads, MLP hidden width ``mlp_ratio * dim``.

    ``temporal_depth`` is the depth of ViViT's temporal encoder (factorised encoder only); the
    ``decoder_*`` fields are VideoMAE's narrower pre-training decoder.
    """

    dim: int
    depth: int
    heads: int
    temporal_depth: int
    decoder_dim: int
    decoder_depth: int
    decoder_heads: int
    mlp_ratio: int = 4


# base is ViT-B (Dosovitskiy et al. 2021), small ViT-S (DeiT-S, as in VideoMAE); ViViT-B's temporal
# encoder has 4 layers (Arnab et al. 2021); VideoMAE's decoders are 384 x 4 (6 heads) for ViT-B and
# 192 x 4 (3 heads) for ViT-S (Tong et al. 2022). tiny is ours: small enough to train on a CPU.
TRANSFORMER_SIZES = {
    "tiny": TransformerSize(192, 4, 3, temporal_depth=2, decoder_dim=96, decoder_depth=2, decoder_heads=3),
    "small": TransformerSize(384, 12, 6, temporal_depth=4, decoder_dim=192, decoder_depth=4, decoder_heads=3),
    "base": TransformerSize(768, 12, 12, temporal_depth=4, decoder_dim=384, decoder_depth=4, decoder_heads=6),
}


def transformer_size(name: str) -> TransformerSize:
    """The size called ``name`` (tiny, small, base)."""
    if name not in TRANSFORMER_SIZES:
        raise BadArgumentError(
            f"unknown transformer size {name!r}; choose one of {', '.join(TRANSFORMER_SIZES)}"
        )
    return TRANSFORMER_SIZES[name]


def layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=LAYER_NORM_EPS)


def learned_embedding(*shape: int) -> nn.Parameter:
    """A class token or position embedding, initialised as timm's (truncated normal, std 0.02)."""
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(*shape), std=INIT_STD))


def sincos_position_table(length: int, dim: int) -> torch.Tensor:
    """``length x dim`` fixed positions over a 1D token index, VideoMAE's table: entry ``(i, j)`` is
    ``i / 10000 ** (2 * (j // 2) / dim)``, its sine at even ``j`` and its cosine at odd ``j``."""
    position = torch.arange(length, dtype=torch.float64)[:, None]
    channel = torch.arange(dim)
    angles = position / 10000 ** (2 * (channel // 2) / dim)
    return torch.where(channel % 2 == 0, angles.sin(), angles.cos()).float()


def init_linear_layers(module: nn.Module) -> None:
    """timm's initialisation of a ViT's linear layers: truncated normal weights (std 0.02), zero biases."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.trunc_normal_(layer.weight, std=INIT_STD)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class Attention(nn.Module):
    """Multi-head self-attention among the tokens of each sequence: ``N x L x D`` -> ``N x L x D``.

    One linear layer gives queries, keys and values for all ``heads`` (``qkv``, ``D -> 3D``);
    softmax(Q K^T / sqrt(D / heads)) V runs in ``scaled_dot_product_attention``; ``proj`` mixes the heads.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        require_positive(dim=dim, heads=heads)
        if dim % heads:
            raise BadArgumentError(f"the width {dim} must be a multiple of the number of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "n l (qkv h e) -> qkv n h l e", qkv=3, h=self.heads).unbind(0)
        return self.proj(rearrange(F.scaled_dot_product_attention(q, k, v), "n h l e -> n l (h e)"))


class Mlp(nn.Sequential):
    """``fc1`` (``D -> hidden``), GELU, ``fc2`` (``hidden -> D``), applied to every token."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)


class Block(nn.Module):
    """Pre-norm transformer block over whatever tokens it is given: every token attends to every
    other token of its sequence. ``N x L x D`` in and out."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = layer_norm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = layer_norm(dim)
        self.mlp = Mlp(dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def transformer_blocks(dim: int, depth: int, heads: int, mlp_ratio: int) -> nn.Sequential:
    """``depth`` ``Block``s in a row, named ``0``, ``1``, ... as timm's ``blocks``."""
    return nn.Sequential(*(Block(dim, heads, mlp_ratio) for _ in range(depth)))


def attend_in_groups(
    x: torch.Tensor, norm: nn.Module, attn: nn.Module, grouping: str, **sizes: int
) -> torch.Tensor:
    """``attn(norm(x))`` where a token attends only to the tokens of its group, in ``x``'s layout.

    ``grouping`` is an einops pattern from ``x``'s layout to ``groups x tokens x D``; e.g. with
    ``x`` = ``B x (T N) x D``, ``"b (t n) d -> (b n) t d"`` groups the T tokens at one position
    (attention over time) and ``"b (t n) d -> (b t) n d"`` the N tokens of one frame (over space).
    ``sizes`` name the axes needed to undo the grouping (``t=T, n=N``).
    """
    source, grouped = grouping.split("->")
    out = attn(norm(rearrange(x, grouping, **sizes)))
    return rearrange(out, f"{grouped} -> {source}", **sizes)


class TubeletEmbedding(nn.Module):
    """Cut a clip into non-overlapping ``t x p x p`` tubelets and project each linearly to ``dim``.

    ``proj`` is a Conv3d whose stride is its kernel; ``tubelet = (1, p, p)`` gives ViT's per-frame
    patches. Built for clips of ``num_frames x frame_size`` (the models' position embeddings
    depend on them); each size must be a multiple of the tubelet's. ``B x C x T x H x W`` ->
    ``B x T' x N x D`` with ``T' = T / t`` and ``N = (H / p) * (W / p)`` patches ordered row by row.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        tubelet: tuple[int, int, int],
        num_frames: int,
        frame_size: int | tuple[int, int],
        model: str,
    ):
        super().__init__()
        if not isinstance(tubelet, (tuple, list)) or len(tubelet) != 3:
            raise BadArgumentError(f"a tubelet is (t, h, w), got {tubelet!r}")
        require_positive(
            in_channels=in_channels,
            num_frames=num_frames,
            **{f"tubelet {a}": s for a, s in zip("thw", tubelet)},
        )
        self.clip_size = (num_frames, *as_pair(frame_size, "frame_size"))
        if any(size % step for size, step in zip(self.clip_size, tubelet)):
            raise BadArgumentError(
                f"{model}: clips of {' x '.join(map(str, self.clip_size))} (T x H x W) cannot be cut into "
                f"{' x '.join(map(str, tubelet))} tubelets; each size must be a multiple of the tubelet's"
            )
        self.in_channels = in_channels
        self.model = model
        self.tubelet = tuple(tubelet)
        self.grid = tuple(size // step for size, step in zip(self.clip_size, tubelet))
        self.proj = nn.Conv3d(in_channels, dim, kernel_size=self.tubelet, stride=self.tubelet)

    @property
    def patches_per_frame(self) -> int:
        return self.grid[1] * self.grid[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_clip(x, self.in_channels)
        if tuple(x.shape[2:]) != self.clip_size:
            t, h, w = x.shape[2:]
            raise BadArgumentError(
                f"{self.model} was built for clips of {' x '.join(map(str, self.clip_size))} (T x H x W; its "
                f"position embeddings depend on them), got {t} x {h} x {w}; build it with "
                f"num_frames={t}, frame_size=({h}, {w})"
            )
        return rearrange(self.proj(x), "b d t h w -> b t (h w) d")
