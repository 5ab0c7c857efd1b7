"""MViT's pooling attention with fewer passes over memory, for inference and training.

``mvit.py`` computes attention as the paper writes it: token grids rearranged into maps for each
pooling, the relative-position logits built as a padded tensor, then ``F.scaled_dot_product_attention``.
Here the same arithmetic reads the tokens in place: pooling runs on a channels-last view of the
token grid, the relative-position logits are written straight into the attention logits, and in
training the attention is one autograd function with its own backward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidlearn.models.mvit import AttentionPool, Grid, MultiscaleAttention, MultiscaleBlock
from vidlearn.speed.layout import to_channels_last
from vidlearn.speed.workspace import WORKSPACE

_ATEN = torch.ops.aten


def pool_tokens_channels_last(
    tokens: torch.Tensor, pool: nn.Module, grid: tuple[int, int, int]
) -> torch.Tensor:
    """Same as ``mvit.pool_tokens``: ``B x N x (1 + T*H*W) x C`` -> ``B x N x (1 + T'*H'*W') x C``, but
    the token grid is handed to ``pool`` as a channels-last view (tokens are already ``t h w c`` in
    memory) and its channels-last output is read back as tokens without a copy."""
    b, n, _, c = tokens.shape
    t, h, w = grid
    maps = tokens[:, :, 1:].reshape(b * n, t, h, w, c).permute(0, 4, 1, 2, 3)
    pooled = to_channels_last(pool(to_channels_last(maps)))
    pooled = pooled.permute(0, 2, 3, 4, 1).reshape(b, n, -1, c)
    return torch.cat((tokens[:, :, :1], pooled), dim=2)


class FastAttentionPool(AttentionPool):
    """``mvit.AttentionPool`` (same parameters) pooling channels-last: see ``pool_tokens_channels_last``."""

    def forward(self, tokens: torch.Tensor, grid: Grid) -> torch.Tensor:
        return self.norm_act(pool_tokens_channels_last(tokens, self.pool, grid))


class FastMultiscaleBlock(MultiscaleBlock):
    """``mvit.MultiscaleBlock`` (same parameters) whose shortcut max-pooling runs channels-last."""

    def pool_shortcut(self, tokens: torch.Tensor) -> torch.Tensor:
        return pool_tokens_channels_last(tokens.unsqueeze(1), self.pool_skip, self.grid).squeeze(1)


def _fill_relative_bias(mask: torch.Tensor, along: tuple[torch.Tensor, ...], q_grid, kv_grid) -> None:
    """Write MViT's decomposed relative-position logits into ``mask`` (``B x heads x (1 + Nq) x (1 + Nk)``):
    ``along_t[..., kt] + along_h[..., kh] + along_w[..., kw]`` for grid queries and keys, 0 in the class
    token's row and column. Two passes over the mask."""
    batch, heads = mask.shape[:2]
    along_t, along_h, along_w = along
    mask[:, :, 0].zero_()
    mask[:, :, 1:, 0].zero_()
    body = mask[:, :, 1:, 1:].view(batch, heads, *q_grid, *kv_grid)
    body.copy_(along_t[..., :, None, None] + along_h[..., None, :, None])  # small sum, broadcast over kw
    body.add_(along_w[..., None, None, :])


class _PoolingAttentionFunction(torch.autograd.Function):
    """MViT's attention with relative positions and residual pooling, for training:
    ``softmax(q k^T / sqrt(d) + bias) v + q`` (the residual skips the class token), where ``bias`` is
    written from ``along = (along_t, along_h, along_w)`` (``B x heads x Tq x Hq x Wq x k_axis``).
    ``q``: ``B x heads x (1 + Nq) x d``, ``k``, ``v``: ``B x heads x (1 + Nk) x d``.

    Same result as ``F.scaled_dot_product_attention`` with the bias as a mask, with fewer passes:
    the logits are accumulated into the bias in place, and the backward pass gives the bias its
    gradient as three sums instead of autograd's copies of the whole mask for every in-place write.
    Saves the attention probabilities, as PyTorch's own (math) path does."""

    @staticmethod
    def forward(ctx, q, k, v, along_t, along_h, along_w, q_grid, kv_grid):
        batch, heads, queries, dim = q.shape
        keys = k.shape[2]
        scale = dim**-0.5
        logits = q.new_empty(batch, heads, queries, keys)
        _fill_relative_bias(logits, (along_t, along_h, along_w), q_grid, kv_grid)
        flat = logits.view(batch * heads, queries, keys)
        flat.baddbmm_(
            q.reshape(batch * heads, queries, dim),
            k.reshape(batch * heads, keys, dim).transpose(1, 2),
            alpha=scale,
        )
        probabilities = _ATEN._softmax.out(flat, -1, False, out=flat)  # in place (tested equal)
        out = torch.bmm(probabilities, v.reshape(batch * heads, keys, dim)).view(batch, heads, queries, dim)
        out[:, :, 1:] += q[:, :, 1:]
        ctx.save_for_backward(q, k, v, probabilities)
        ctx.grids = (q_grid, kv_grid)
        return out

    @staticmethod
    def backward(ctx, grad):
        q, k, v, probabilities = ctx.saved_tensors
        q_grid, kv_grid = ctx.grids
        batch, heads, queries, dim = q.shape
        keys = k.shape[2]
        scale = dim**-0.5
        grad = grad.reshape(batch * heads, queries, dim)
        grad_v = torch.bmm(probabilities.transpose(1, 2), grad).view(batch, heads, keys, dim)
        # The logits' gradient is a temporary of the size of the attention: in the shared workspace.
        grad_logits = WORKSPACE.take("attention", probabilities.shape, probabilities.dtype)
        torch.bmm(grad, v.reshape(batch * heads, keys, dim).transpose(1, 2), out=grad_logits)
        _ATEN._softmax_backward_data.out(
            grad_logits, probabilities, -1, probabilities.dtype, grad_input=grad_logits
        )
        grad_q = torch.bmm(grad_logits, k.reshape(batch * heads, keys, dim)).mul_(scale)
        grad_q = grad_q.view(batch, heads, queries, dim)
        grad_q[:, :, 1:] += grad.view(batch, heads, queries, dim)[:, :, 1:]
        grad_k = torch.bmm(grad_logits.transpose(1, 2), q.reshape(batch * heads, queries, dim)).mul_(scale)
        body = (
            grad_logits.view(batch, heads, queries, keys)[:, :, 1:, 1:]
            .unflatten(3, kv_grid)
            .unflatten(2, q_grid)
        )
        over_w = body.sum(-1)  # B heads Tq Hq Wq kt kh
        grad_t, grad_h = over_w.sum(-1), over_w.sum(-2)
        grad_w = body.sum((-3, -2))
        return grad_q, grad_k.view(batch, heads, keys, dim), grad_v, grad_t, grad_h, grad_w, None, None


class FastMultiscaleAttention(MultiscaleAttention):
    """``mvit.MultiscaleAttention`` (same parameters, same result) with fewer passes over memory: the
    relative-position logits are written straight into the attention logits (no padded copy), the
    residual pooling is added in place, and in training the attention runs as
    ``_PoolingAttentionFunction`` (explicit backward). Its token pooling runs channels-last
    (``FastAttentionPool``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k, v = self.pool_q(q, self.grid), self.pool_k(k, self.grid), self.pool_v(v, self.grid)
        along = self.relative_logits(q)
        if torch.is_grad_enabled():
            out = _PoolingAttentionFunction.apply(q, k, v, *along, self.q_grid, self.kv_grid)
        else:
            mask = q.new_empty(*q.shape[:3], k.shape[2])
            _fill_relative_bias(mask, along, self.q_grid, self.kv_grid)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            out[:, :, 1:] += q[:, :, 1:]
        return self.project(out.transpose(1, 2).reshape(batch, out.shape[2], -1))


def fast_mvit_in_place(model: nn.Module) -> None:
    """Make MViT's attention, token pooling and blocks in ``model`` their fast forms, in place (same
    parameters and state-dict keys)."""
    for module in model.modules():
        if type(module) is AttentionPool:
            module.__class__ = FastAttentionPool
        elif type(module) is MultiscaleBlock:
            module.__class__ = FastMultiscaleBlock
        elif type(module) is MultiscaleAttention:
            module.__class__ = FastMultiscaleAttention
