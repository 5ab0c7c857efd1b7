"""MViTv2 (Li et al., "MViTv2: Improved Multiscale Vision Transformers for Classification and
Detection", CVPR 2022): a video transformer whose stages, like a CNN's, trade tokens for channels.

What the course says: a pooling module reduces the number of tokens. Every attention block pools
its queries, keys and values (a depthwise 3x3x3 convolution, then LayerNorm) before attending:

- keys and values are pooled hard, with strides that shrink with the grid (1x8x8 in the first
  stage, then 1x4x4, 1x2x2, 1x1x1), so that queries attend to a T x 7 x 7 grid of keys (T x 14 x 14
  in a stage's first block): in the first stage attention costs ``N x N / 64`` instead of ``N x N``;
- queries are pooled with stride 1x2x2 at the first block of each new stage, which halves H and W
  of the token grid, while that block's attention doubles the channels (``dim_mul_in_att``).

MViTv2 adds decomposed relative position embeddings (the attention logit of query ``q`` at
``(t, h, w)`` for a key at ``(t', h', w')`` gets ``q . (R_t[t, t'] + R_h[h, h'] + R_w[w, w'])``) and a
residual pooling connection (the pooled query is added to the attention output).

The module tree and parameter names follow torchvision's ``models/video/mvit.py`` (``conv_proj``,
``pos_encoding.class_token``, ``blocks.N.attn.qkv``, ``blocks.N.attn.pool_q.pool``, ...,
``head.1``), so that its Kinetics-400 ``mvit_v2_s`` checkpoint can load; this could not be checked
against torchvision here (see ``docs/mvit.md``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import as_pair, check_clip, require_dropout, require_positive
from vidlearn.models.registry import register_model

MVIT_INPUT = (3, 16, 224, 224)
PATCH_STRIDE = (2, 4, 4)
LayerNorm = partial(nn.LayerNorm, eps=1e-6)  # the paper's code and torchvision use 1e-6
Grid = tuple[int, int, int]


@dataclass(frozen=True)
class MViTSize:
    """Per stage: channels, number of blocks, attention heads. Each stage after the first halves H
    and W of the token grid."""

    dims: tuple[int, ...]
    blocks: tuple[int, ...]
    heads: tuple[int, ...]


SIZES = {
    # MViTv2-S (the paper's Table 1 and torchvision's mvit_v2_s): 16 blocks.
    "s": MViTSize(dims=(96, 192, 384, 768), blocks=(1, 2, 11, 2), heads=(1, 2, 4, 8)),
    # A CPU demo: same structure, three stages, 6 blocks, 32-channel heads.
    "tiny": MViTSize(dims=(32, 64, 128), blocks=(1, 2, 3), heads=(1, 2, 4)),
}


def strided(grid: tuple[int, ...], stride: tuple[int, ...]) -> Grid:
    """Token grid after a layer of ``stride`` whose padding is half its kernel (every pooling and the
    patch embedding here): ``ceil(n / stride)`` along each axis."""
    return tuple(-(-n // s) for n, s in zip(grid, stride))


def pool_tokens(tokens: torch.Tensor, pool: nn.Module, grid: Grid) -> torch.Tensor:
    """``B x N x (1 + T*H*W) x C`` -> ``B x N x (1 + T'*H'*W') x C``: ``pool`` (a 3D layer on
    ``C x T x H x W``) applied to the grid's tokens of each of the ``N`` heads; the class token (first)
    is passed through."""
    t, h, w = grid
    maps = rearrange(tokens[:, :, 1:], "b n (t h w) c -> (b n) c t h w", t=t, h=h, w=w)
    pooled = rearrange(pool(maps), "(b n) c t h w -> b n (t h w) c", b=tokens.shape[0])
    return torch.cat((tokens[:, :, :1], pooled), dim=2)


def relative_index(q_size: int, k_size: int, device: torch.device) -> torch.Tensor:
    """``q_size x k_size`` rows of a relative position table: the distance from query ``i`` to key
    ``j`` along one axis, measured on the finer of the two grids and offset to start at 0."""
    q_scale = max(k_size / q_size, 1.0)
    k_scale = max(q_size / k_size, 1.0)
    queries = torch.arange(q_size, device=device)[:, None] * q_scale
    keys = (torch.arange(k_size, device=device)[None, :] - (k_size - 1)) * k_scale
    return (queries - keys).long()


class AttentionPool(nn.Module):
    """Pooling of queries, keys or values: a depthwise 3x3x3 convolution of each head's token grid,
    then LayerNorm. ``B x heads x (1 + T*H*W) x d`` -> ``B x heads x (1 + T'*H'*W') x d``."""

    def __init__(self, head_dim: int, stride: tuple[int, int, int]):
        super().__init__()
        self.pool = nn.Conv3d(head_dim, head_dim, 3, stride=stride, padding=1, groups=head_dim, bias=False)
        # A Sequential called norm_act: torchvision's checkpoint keys (pool_q.norm_act.0.weight).
        self.norm_act = nn.Sequential(LayerNorm(head_dim))

    def forward(self, tokens: torch.Tensor, grid: Grid) -> torch.Tensor:
        return self.norm_act(pool_tokens(tokens, self.pool, grid))


class MultiscaleAttention(nn.Module):
    """Pooling attention with relative positions and residual pooling.

    Tokens ``B x (1 + T*H*W) x dim_in`` on the ``grid`` ``(T, H, W)`` -> ``B x (1 + T*H'*W') x dim_out``
    on ``q_grid``, queries pooled with stride ``(1, q_stride, q_stride)``, keys and values with
    ``(1, kv_stride, kv_stride)``. The class token is never pooled and has no position.
    """

    def __init__(self, dim_in: int, dim_out: int, heads: int, grid: Grid, q_stride: int, kv_stride: int):
        super().__init__()
        head_dim = dim_out // heads
        self.heads = heads
        self.grid = grid
        self.q_grid = strided(grid, (1, q_stride, q_stride))
        self.kv_grid = strided(grid, (1, kv_stride, kv_stride))
        self.qkv = nn.Linear(dim_in, 3 * dim_out)
        # A Sequential: torchvision's checkpoint keys (attn.project.0.weight).
        self.project = nn.Sequential(nn.Linear(dim_out, dim_out))
        self.pool_q = AttentionPool(head_dim, (1, q_stride, q_stride))
        self.pool_k = AttentionPool(head_dim, (1, kv_stride, kv_stride))
        self.pool_v = AttentionPool(head_dim, (1, kv_stride, kv_stride))
        # One row per relative distance along the axis between the query and the key grid built for.
        (q_t, q_h, q_w), (k_t, k_h, k_w) = self.q_grid, self.kv_grid
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * max(q_h, k_h) - 1, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * max(q_w, k_w) - 1, head_dim))
        self.rel_pos_t = nn.Parameter(torch.zeros(2 * max(q_t, k_t) - 1, head_dim))

    def relative_logits(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three axes' terms of the relative-position logits of pooled queries
        ``B x heads x (1 + Nq) x d``: ``q . R_axis[q_axis, k_axis]`` for the grid queries,
        ``B x heads x Tq x Hq x Wq x k_axis`` each (``k_t``, ``k_h``, ``k_w`` keys along the axis)."""
        (q_t, q_h, q_w), (k_t, k_h, k_w) = self.q_grid, self.kv_grid
        grid_q = rearrange(q[:, :, 1:], "b n (t h w) d -> b n t h w d", t=q_t, h=q_h, w=q_w)
        table_t = self.rel_pos_t[relative_index(q_t, k_t, q.device)]  # q_t x k_t x d
        table_h = self.rel_pos_h[relative_index(q_h, k_h, q.device)]
        table_w = self.rel_pos_w[relative_index(q_w, k_w, q.device)]
        return (
            torch.einsum("bnthwd,tkd->bnthwk", grid_q, table_t),
            torch.einsum("bnthwd,hkd->bnthwk", grid_q, table_h),
            torch.einsum("bnthwd,wkd->bnthwk", grid_q, table_w),
        )

    def relative_position_bias(self, q: torch.Tensor) -> torch.Tensor:
        """Pooled queries ``B x heads x (1 + Nq) x d`` -> additive logits ``B x heads x (1 + Nq) x (1 + Nk)``:
        ``q . (R_t + R_h + R_w)``, decomposed along the axes; 0 in the class token's row and column."""
        along_t, along_h, along_w = self.relative_logits(q)
        bias = along_t[..., :, None, None] + along_h[..., None, :, None] + along_w[..., None, None, :]
        bias = rearrange(bias, "b n t h w kt kh kw -> b n (t h w) (kt kh kw)")
        return F.pad(bias, (1, 0, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = rearrange(self.qkv(x), "b n (three heads d) -> three b heads n d", three=3, heads=self.heads)
        q, k, v = qkv.unbind(0)
        q, k, v = self.pool_q(q, self.grid), self.pool_k(k, self.grid), self.pool_v(v, self.grid)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.relative_position_bias(q))
        # Residual pooling; as in torchvision's mvit_v2_s, the class token does not get it.
        out = torch.cat((out[:, :, :1], out[:, :, 1:] + q[:, :, 1:]), dim=2)
        return self.project(rearrange(out, "b heads n d -> b n (heads d)"))


def mlp(dim: int, hidden: int) -> nn.Sequential:
    """Linear, GELU, linear; ``... x dim`` -> ``... x dim``."""
    # Keys 0 and 3 as in torchvision, whose MLP holds zero-probability dropouts at 2 and 4.
    return nn.Sequential(
        OrderedDict([("0", nn.Linear(dim, hidden)), ("1", nn.GELU()), ("3", nn.Linear(hidden, dim))])
    )


class MultiscaleBlock(nn.Module):
    """Pre-norm transformer block around ``MultiscaleAttention``, MLP ratio 4.

    ``B x (1 + T*H*W) x dim_in`` -> ``B x (1 + T*H'*W') x dim_out``. When the block pools queries,
    its shortcut is max-pooled (3x3, stride 2) to the same grid; when it changes the width, the
    shortcut is a linear projection of the normalised input.
    """

    def __init__(self, dim_in: int, dim_out: int, heads: int, grid: Grid, q_stride: int, kv_stride: int):
        super().__init__()
        self.grid = grid
        self.norm1 = LayerNorm(dim_in)
        self.attn = MultiscaleAttention(dim_in, dim_out, heads, grid, q_stride, kv_stride)
        self.project = nn.Linear(dim_in, dim_out) if dim_in != dim_out else None
        self.pool_skip = nn.MaxPool3d((1, 3, 3), (1, q_stride, q_stride), (0, 1, 1)) if q_stride > 1 else None
        self.norm2 = LayerNorm(dim_out)
        self.mlp = mlp(dim_out, 4 * dim_out)

    def pool_shortcut(self, tokens: torch.Tensor) -> torch.Tensor:
        """``B x (1 + T*H*W) x C`` -> ``B x (1 + T*H'*W') x C``: max-pooled onto the queries' grid."""
        return pool_tokens(tokens.unsqueeze(1), self.pool_skip, self.grid).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(x)
        shortcut = x if self.project is None else self.project(normed)
        if self.pool_skip is not None:
            shortcut = self.pool_shortcut(shortcut)
        x = shortcut + self.attn(normed)
        return x + self.mlp(self.norm2(x))


class ClassToken(nn.Module):
    """Prepends a learned class token: ``B x N x C`` -> ``B x (1 + N) x C``. (MViTv2 has no absolute
    position embedding; positions enter through the attention's relative embeddings.)"""

    def __init__(self, dim: int):
        super().__init__()
        self.class_token = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.class_token.expand(x.shape[0], 1, -1), x), dim=1)


class MViT(nn.Module):
    """Multiscale vision transformer v2 for clips of ``num_frames`` x ``frame_size``.

    Input ``B x C x T x H x W``; the patch embedding (3x7x7 convolution, stride 2x4x4) gives a token
    grid ``ceil(T/2) x ceil(H/4) x ceil(W/4)`` (8 x 56 x 56 for 16 x 224 x 224) plus a class token; each stage after the
    first halves H and W; ``features`` is the normalised class token, ``B x dims[-1]``; output
    ``B x K``. The relative position tables are sized for the token grid of the clip size built for;
    clips giving another token grid raise ``BadArgumentError``.
    """

    def __init__(
        self,
        num_classes: int,
        size: MViTSize = SIZES["s"],
        num_frames: int = MVIT_INPUT[1],
        frame_size: int | tuple[int, int] = MVIT_INPUT[2:],
        in_channels: int = 3,
        dropout: float = 0.5,
    ):
        super().__init__()
        require_positive(num_classes=num_classes, num_frames=num_frames, in_channels=in_channels)
        require_dropout(dropout)
        self.in_channels = in_channels
        self.clip_size = (num_frames, *as_pair(frame_size, "frame_size"))
        self.token_grid = strided(self.clip_size, PATCH_STRIDE)
        self.conv_proj = nn.Conv3d(
            in_channels, size.dims[0], (3, 7, 7), stride=PATCH_STRIDE, padding=(1, 3, 3)
        )
        # Named as torchvision's checkpoint keys (pos_encoding.class_token).
        self.pos_encoding = ClassToken(size.dims[0])
        # The paper's adaptive key/value strides pool keys and values to about the last stage's H x W:
        # 1x8x8 at first (for four stages), divided by each query pooling.
        kv_stride = 2 ** (len(size.dims) - 1)
        grid, dim_in = self.token_grid, size.dims[0]
        self.blocks = nn.ModuleList()
        for stage, (dim, depth, heads) in enumerate(zip(size.dims, size.blocks, size.heads)):
            for index in range(depth):
                q_stride = 2 if stage > 0 and index == 0 else 1
                kv_stride = max(kv_stride // q_stride, 1)
                self.blocks.append(MultiscaleBlock(dim_in, dim, heads, grid, q_stride, kv_stride))
                grid, dim_in = strided(grid, (1, q_stride, q_stride)), dim
        self.norm = LayerNorm(size.dims[-1])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(size.dims[-1], num_classes))
        self._init_weights()

    def _init_weights(self) -> None:
        # As torchvision (and the paper's code): truncated normal, std 0.02, for linear layers, the
        # class token and the position tables; convolutions keep PyTorch's default.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, MultiscaleAttention):
                for table in (module.rel_pos_h, module.rel_pos_w, module.rel_pos_t):
                    nn.init.trunc_normal_(table, std=0.02)
        nn.init.trunc_normal_(self.pos_encoding.class_token, std=0.02)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x dims[-1]``."""
        check_clip(x, self.in_channels)
        grid = strided(tuple(x.shape[2:]), PATCH_STRIDE)
        if grid != self.token_grid:
            t, h, w = x.shape[2:]
            raise BadArgumentError(
                f"MViT was built for clips of {_times(self.clip_size)} (a token grid of {_times(self.token_grid)}, "
                f"which its relative position tables are sized for); clips of {t} x {h} x {w} give {_times(grid)}; "
                f"build it with num_frames={t}, frame_size=({h}, {w})"
            )
        x = self.pos_encoding(rearrange(self.conv_proj(x), "b c t h w -> b (t h w) c"))
        for block in self.blocks:
            x = block(x)
        # LayerNorm is per token, so normalising the class token alone equals torchvision's norm-then-select.
        return self.norm(x[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.head(self.features(x))


def _times(sizes: tuple[int, ...]) -> str:
    return " x ".join(map(str, sizes))


@register_model(
    "mvit_v2_s",
    default_input=MVIT_INPUT,
    description="MViTv2-S: transformer with pooling attention, 16 blocks (torchvision layout); size='tiny' for CPU",
)
def mvit_v2_s(
    num_classes: int,
    num_frames: int = MVIT_INPUT[1],
    frame_size: int | tuple[int, int] = MVIT_INPUT[2:],
    in_channels: int = 3,
    dropout: float = 0.5,
    size: str = "s",
) -> MViT:
    if size not in SIZES:
        raise BadArgumentError(f"size must be one of {', '.join(map(repr, SIZES))}, got {size!r}")
    return MViT(num_classes, SIZES[size], num_frames, frame_size, in_channels, dropout)
