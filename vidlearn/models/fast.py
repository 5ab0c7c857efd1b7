"""Fast paths for vidlearn's models on a CPU, each tested equal to the plain model.

The plain models (``resnet3d.py``, ``mvit.py``, ...) stay plain: standard layers, default
(contiguous) layout, no fused operations, so that hooks, analysis and saliency see every layer.
The functions here give the same model, faster, for the two places speed matters:

- ``optimize_for_inference(model)``: an eval-mode **copy** for evaluation and prediction. Every
  BatchNorm that follows a convolution is folded into it (``fuse_conv_bn``), weights and
  activations are channels-last (``B x C x T x H x W`` tensors stored ``B, T, H, W, C``), and each
  convolution runs as one oneDNN call with its bias, the following ReLU and, in a residual block,
  the shortcut addition and final ReLU fused in (``FusedConv``; weights reordered once, not at
  every call); stride-1 ``kt x 3 x 3`` convolutions run as Winograd F(4x4, 3x3) convolutions where
  that pays (``winograd.py``: 4x fewer multiplications). MViT's attention pools its tokens
  channels-last straight from the token layout and writes its relative-position logits into the
  attention mask (``FastMultiscaleAttention``).
- ``optimize_for_training(model)``: the **same** model, converted in place (the parameters, their
  values, the state-dict keys and the optimiser's view of them do not change). Weights and
  activations are channels-last; every 3D convolution computes its weight gradient with the method
  that is fastest for its shape (``FastConv3d``, ``weight_grad_plan``: matrix products for
  ``kt x 1 x 1`` and ``1 x 1 x 1`` kernels, 2D kernels over the frames for ``1 x kh x kw`` ones,
  chunked im2col on small grids, oneDNN's own otherwise) or, for stride-1 ``kt x 3 x 3`` kernels on
  grids of 14 x 14 and more, runs forward and backward as a Winograd convolution; depthwise ones
  (MViT's pooling) compute their input and weight gradients without oneDNN's slow depthwise
  backward (``FastDepthwiseConv3d``). MViT's attention runs as one autograd function with its own
  backward (``_PoolingAttentionFunction``).
  BatchNorm keeps training (batch statistics, running averages updated as before).
  ``compile=True`` adds ``torch.compile`` (opt-in: minutes of compilation for 5-10%).

What "the same" means (``tests/test_fast_models.py`` checks every path): float32 outputs, losses,
running statistics and each fast convolution's gradients equal the plain model's up to rounding,
``max |fast - plain| <= FAST_TOLERANCE x max(1, max |plain|)`` with ``FAST_TOLERANCE = 1e-4``
(observed: about 1e-6 relative; fused, re-ordered and Winograd-transformed sums round
differently, nothing is approximated); whole-network gradients are compared in float64 (float32 gradients of ReLU
networks flip where an input rounds across 0, in the plain model too).

Layouts: clips are ``B x C x T x H x W`` everywhere; "channels-last" changes only the order in
memory (``torch.channels_last_3d``), never the shape or the values. Measurements, what was kept
and what was not: ``docs/model-speed.md``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

from vidlearn.models import winograd
from vidlearn.models.mvit import AttentionPool, MultiscaleAttention, MultiscaleBlock
from vidlearn.models.resnet3d import BasicBlock

# Tolerance the tests hold every fast path to: max |fast - plain| <= FAST_TOLERANCE * max(1, max |plain|).
FAST_TOLERANCE = 1e-4

_ATEN = torch.ops.aten


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """A 5D ``B x C x T x H x W`` tensor stored channels-last (``torch.channels_last_3d``), a 4D
    ``B x C x H x W`` one as ``torch.channels_last``; other tensors unchanged. Same shape and values."""
    if x.dim() == 5:
        return x.contiguous(memory_format=torch.channels_last_3d)
    if x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def channels_last(model: nn.Module, dims: tuple[int, ...] = (4, 5)) -> nn.Module:
    """Store every parameter and buffer of ``model`` with ``dims`` dimensions (5: 3D convolution
    weights, 4: 2D ones) channels-last, in place; returns ``model``. Values, shapes and state-dict
    keys are unchanged; a convolution whose weight is channels-last gives a channels-last output
    whatever the layout of its input."""
    for module in model.modules():
        for store in (module._parameters, module._buffers):
            for tensor in store.values():
                if tensor is not None and tensor.dim() in dims:
                    tensor.data = to_channels_last(tensor.data)
    return model


# ---------------------------------------------------------------------------------------------
# Folding BatchNorm into the convolution before it
# ---------------------------------------------------------------------------------------------


def _is_plain_conv(module: nn.Module) -> bool:
    """A non-transposed Conv1d/2d/3d, or a subclass that keeps its forward (``FastConv3d`` too):
    ``y = conv(x) + b``."""
    if not isinstance(module, _ConvNd) or module.transposed:
        return False
    base = next((cls for cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d) if isinstance(module, cls)), None)
    return (
        base is not None
        and type(module).forward in (base.forward, FastConv3d.forward, FastDepthwiseConv3d.forward)
        and type(module)._conv_forward is base._conv_forward
    )


def _is_foldable_bn(module: nn.Module) -> bool:
    return isinstance(module, _BatchNorm) and module.track_running_stats and module.running_mean is not None


def _last_conv(module: nn.Module) -> tuple[nn.Module, str] | None:
    """The convolution whose output is ``module``'s output, as ``(parent, attribute name)``: the
    module itself is handled by the caller; here ``module`` is a Sequential whose last child (after
    any Identity, e.g. an already folded BatchNorm) is a plain convolution or such a Sequential."""
    if not isinstance(module, nn.Sequential):
        return None
    for name, child in reversed(list(module._modules.items())):
        if isinstance(child, nn.Identity):
            continue
        if _is_plain_conv(child):
            return module, name
        return _last_conv(child)
    return None


def fold_bn(conv: nn.Module, bn: _BatchNorm) -> nn.Module:
    """A copy of ``conv`` whose output equals ``bn(conv(x))`` with ``bn`` in eval mode (running
    statistics): ``w' = w * g / sqrt(v + eps)``, ``b' = (b - m) * g / sqrt(v + eps) + beta``, folded in
    float64 and stored in the weight's dtype."""
    if not _is_plain_conv(conv) or not _is_foldable_bn(bn) or conv.out_channels != bn.num_features:
        raise ValueError(f"cannot fold {type(bn).__name__} into {type(conv).__name__}")
    fused = copy.deepcopy(conv)
    weight = conv.weight.detach()
    with torch.no_grad():
        std = (bn.running_var.double() + bn.eps).sqrt()
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(std)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(std)
        scale = gamma / std
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(std)
        new_weight = (weight.double() * scale.view(-1, *([1] * (weight.dim() - 1)))).to(weight.dtype)
        new_bias = ((bias - bn.running_mean.double()) * scale + beta).to(weight.dtype)
    fused.weight = nn.Parameter(new_weight.contiguous(memory_format=_memory_format(weight)), conv.weight.requires_grad)
    fused.bias = nn.Parameter(new_bias, conv.weight.requires_grad)
    return fused


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    if t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d) and not t.is_contiguous():
        return torch.channels_last_3d
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def _fuse_in_place(module: nn.Module) -> int:
    folded = 0
    for child in module.children():
        folded += _fuse_in_place(child)
    if isinstance(module, nn.Sequential):
        items = list(module._modules.items())
        for (_, before), (name, bn) in zip(items, items[1:]):
            if not _is_foldable_bn(bn):
                continue
            where = (module, None) if _is_plain_conv(before) else _last_conv(before)
            if where is None:
                continue
            parent, key = where
            if key is None:  # ``before`` is the convolution itself, a direct sibling
                key = next(k for k, m in module._modules.items() if m is before)
            conv = parent._modules[key]
            if conv.out_channels != bn.num_features:
                continue
            parent._modules[key] = fold_bn(conv, bn)
            module._modules[name] = nn.Identity()
            folded += 1
            items = list(module._modules.items())
    return folded


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every BatchNorm folded into the convolution before it.

    Pairs are found structurally, not by name: in any ``nn.Sequential``, a BatchNorm (with running
    statistics) whose previous sibling is a plain Conv1d/2d/3d, or a Sequential ending in one (as in
    R(2+1)D's ``Sequential(Conv2Plus1D(conv, bn, relu, conv), bn, relu)``), replaces that
    convolution's weight and bias and becomes ``nn.Identity``. Other BatchNorms (after a pooling, in
    a module that calls them from its own ``forward``) are left alone. ``model`` is not changed.
    Outputs equal ``model.eval()(x)`` up to rounding.
    """
    fused = copy.deepcopy(model).eval()
    _fuse_in_place(fused)
    return fused


# ---------------------------------------------------------------------------------------------
# Inference: one oneDNN call per convolution (bias, ReLU, residual addition fused)
# ---------------------------------------------------------------------------------------------


def mkldnn_fusion_available() -> bool:
    """Whether this torch build has oneDNN's fused convolution operators (CPU builds on x86/ARM)."""
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops, "mkldnn")
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


class FusedConv(nn.Module):
    """Inference convolution: ``relu?(conv(x) + bias (+ residual))`` in one oneDNN call.

    Built from a plain Conv3d (or Conv2d) whose BatchNorm is already folded in. Input and output
    ``B x C x T x H x W`` (channels-last in memory; a contiguous input is converted once). The
    weight is reordered into oneDNN's blocked layout at the first call (and again if the input
    shape changes), not at every call. ``kt x 3 x 3`` kernels with stride 1 run as Winograd
    convolutions (``winograd.conv3d``, weight transformed once) where ``winograd.winograd_pays``
    for the layer. CPU float32 only: other devices or dtypes run the plain ``F.conv3d`` path (same
    result).
    """

    def __init__(self, conv: nn.Module, relu: bool = False):
        super().__init__()
        if not _is_plain_conv(conv) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("FusedConv needs a plain convolution with numeric zero padding")
        self.dims = conv.weight.dim() - 2
        weight = conv.weight.detach()
        self.weight = nn.Parameter(to_channels_last(weight), requires_grad=False)
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=weight.dtype)
        self.bias = nn.Parameter(bias.clone(), requires_grad=False)
        self.stride, self.padding, self.dilation = list(conv.stride), list(conv.padding), list(conv.dilation)
        self.groups = conv.groups
        self.relu = relu
        self.winograd = self.dims == 3 and winograd.applies(weight.shape[2:], self.stride, self.padding, self.dilation, self.groups)
        self._packed: tuple[tuple[int, ...], torch.Tensor] | None = None
        self._winograd_weight: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, stride={tuple(self.stride)}, padding={tuple(self.padding)}, relu={self.relu}"

    def __getstate__(self) -> dict:  # copies and pickles drop the reordered weight (rebuilt at the next call)
        state = self.__dict__.copy()
        state["_packed"] = state["_winograd_weight"] = None
        return state

    def _fast(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
            and mkldnn_fusion_available()
        )

    def _packed_weight(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if self._packed is None or self._packed[0] != shape:
            packed = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight, self.padding, self.stride, self.dilation, self.groups, list(shape)
            )
            self._packed = (shape, packed)
        return self._packed[1]

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if not self._fast(x):
            conv = F.conv3d if self.dims == 3 else F.conv2d
            out = conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
            if residual is not None:
                out = out + residual
            return torch.relu(out) if self.relu else out
        if self.winograd and winograd.winograd_pays(self.weight.shape[1], self.weight.shape[0], self.weight.shape[2], *x.shape[3:]):
            if self._winograd_weight is None:
                self._winograd_weight = winograd.transform_weight(self.weight)
            return winograd.conv3d(x, self._winograd_weight, self.bias, residual, self.relu)
        x = to_channels_last(x)
        weight = self._packed_weight(x)
        if residual is None:
            return torch.ops.mkldnn._convolution_pointwise(
                x, weight, self.bias, self.padding, self.stride, self.dilation, self.groups,
                "relu" if self.relu else "none", [], "",
            )
        return torch.ops.mkldnn._convolution_pointwise(
            x, to_channels_last(residual), weight, self.bias, self.padding, self.stride, self.dilation,
            self.groups, "add", 1.0, "relu" if self.relu else None, [], "",
        )


def _run_with_residual(module: nn.Module, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """``module(x)``, whose last effective layer is a FusedConv, with ``residual`` added (and the
    FusedConv's ReLU applied) inside that convolution."""
    if isinstance(module, FusedConv):
        return module(x, residual)
    children = list(module._modules.values())
    last = max(i for i, child in enumerate(children) if not isinstance(child, nn.Identity))
    for child in children[:last]:
        x = child(x)
    return _run_with_residual(children[last], x, residual)


def _ends_in_fused_conv(module: nn.Module) -> bool:
    if isinstance(module, FusedConv):
        return True
    if not isinstance(module, nn.Sequential):
        return False
    rest = [child for child in module._modules.values() if not isinstance(child, nn.Identity)]
    return bool(rest) and _ends_in_fused_conv(rest[-1])


class FusedBasicBlock(nn.Module):
    """Inference form of ``resnet3d.BasicBlock``: the same children (``conv1``, ``conv2``,
    ``downsample``), with ``relu(conv2(conv1(x)) + shortcut)`` computed inside conv2's last
    convolution (the shortcut is added to its accumulator, then ReLU). ``B x C x T x H x W``."""

    def __init__(self, block: BasicBlock):
        super().__init__()
        self.conv1, self.conv2, self.downsample = block.conv1, block.conv2, block.downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return _run_with_residual(self.conv2, self.conv1(x), shortcut)


def _fuse_conv_relu_in_place(module: nn.Module) -> None:
    """Replace plain convolutions by FusedConv, taking the ReLU that follows one in a Sequential."""
    for name, child in list(module._modules.items()):
        if _is_plain_conv(child) and child.weight.dim() in (4, 5) and child.padding_mode == "zeros" and not isinstance(child.padding, str):
            module._modules[name] = FusedConv(child)
        else:
            _fuse_conv_relu_in_place(child)
    if isinstance(module, nn.Sequential):
        before = None  # the last child that is not an Identity (a folded BatchNorm)
        for name, child in list(module._modules.items()):
            if isinstance(child, nn.ReLU) and before is not None:
                target = _last_fused(before)
                if target is not None and not target.relu:
                    target.relu = True
                    module._modules[name] = nn.Identity()
                    continue
            if not isinstance(child, nn.Identity):
                before = child


def _last_fused(module: nn.Module) -> FusedConv | None:
    if isinstance(module, FusedConv):
        return module
    if not isinstance(module, nn.Sequential):
        return None
    rest = [child for child in module._modules.values() if not isinstance(child, nn.Identity)]
    return _last_fused(rest[-1]) if rest else None


def _fuse_residual_blocks_in_place(module: nn.Module) -> None:
    for name, child in list(module._modules.items()):
        if (
            type(child) is BasicBlock
            and isinstance(child.relu, nn.ReLU)
            and _ends_in_fused_conv(child.conv2)
            and not _last_fused(child.conv2).relu
        ):
            _last_fused(child.conv2).relu = True
            module._modules[name] = FusedBasicBlock(child)
        else:
            _fuse_residual_blocks_in_place(child)


# ---------------------------------------------------------------------------------------------
# MViT: pooling attention without rearrangement copies
# ---------------------------------------------------------------------------------------------


def _pool_tokens_channels_last(tokens: torch.Tensor, pool: nn.Module, grid: tuple[int, int, int]) -> torch.Tensor:
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
    """``mvit.AttentionPool`` (same parameters) pooling channels-last: see ``_pool_tokens_channels_last``."""

    pool_tokens = staticmethod(_pool_tokens_channels_last)


class FastMultiscaleBlock(MultiscaleBlock):
    """``mvit.MultiscaleBlock`` (same parameters) whose shortcut max-pooling runs channels-last."""

    pool_tokens = staticmethod(_pool_tokens_channels_last)


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
        flat.baddbmm_(q.reshape(batch * heads, queries, dim), k.reshape(batch * heads, keys, dim).transpose(1, 2), alpha=scale)
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
        grad_logits = winograd.WORKSPACE.take("attention", probabilities.shape, probabilities.dtype)
        torch.bmm(grad, v.reshape(batch * heads, keys, dim).transpose(1, 2), out=grad_logits)
        _ATEN._softmax_backward_data.out(grad_logits, probabilities, -1, probabilities.dtype, grad_input=grad_logits)
        grad_q = torch.bmm(grad_logits, k.reshape(batch * heads, keys, dim)).mul_(scale)
        grad_q = grad_q.view(batch, heads, queries, dim)
        grad_q[:, :, 1:] += grad.view(batch, heads, queries, dim)[:, :, 1:]
        grad_k = torch.bmm(grad_logits.transpose(1, 2), q.reshape(batch * heads, queries, dim)).mul_(scale)
        body = grad_logits.view(batch, heads, queries, keys)[:, :, 1:, 1:].unflatten(3, kv_grid).unflatten(2, q_grid)
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


def _fast_mvit_in_place(model: nn.Module) -> None:
    for module in model.modules():
        if type(module) is AttentionPool:
            module.__class__ = FastAttentionPool
        elif type(module) is MultiscaleBlock:
            module.__class__ = FastMultiscaleBlock
        elif type(module) is MultiscaleAttention:
            module.__class__ = FastMultiscaleAttention


# ---------------------------------------------------------------------------------------------
# Training: 3D convolutions with a faster weight gradient
# ---------------------------------------------------------------------------------------------


SMALL_CONV_MACS = 100_000_000  # below this many multiply-adds a weight gradient stays PyTorch's own


def weight_grad_plan(weight_shape: tuple[int, ...], stride, padding, dilation, groups: int, out_grid: tuple[int, int, int], batch: int = 1) -> str:
    """How ``FastConv3d`` computes the weight gradient of a 3D convolution with this weight shape
    ``Co x C x kt x kh x kw`` and output grid ``T' x H' x W'`` (rules from measurements on AVX2,
    one and two threads; see ``docs/model-speed.md``):

    - ``"pointwise"``: ``1 x 1 x 1`` kernels: one matrix product ``X^T dY`` (3x oneDNN's);
    - ``"temporal"``: ``kt x 1 x 1`` kernels with spatial stride 1: one matrix product per kernel
      offset and clip, ``dW[:, :, k] = sum_t X(t*s + k - p)^T dY(t)``, read in place from the
      channels-last memory (1.2-3x);
    - ``"frames"``: ``1 x kh x kw`` kernels on large grids (``H' x W'`` over 28 x 28): frames folded
      into the batch and oneDNN's 2D backward-weights kernel (2-3x faster than its 3D one);
    - ``"im2col"``: other kernels on small grids (``H' x W'`` up to 14 x 14) or with a stride: chunked
      patch matrices and matrix products (1.2-5x);
    - ``"aten"``: everything else (grouped, dilated, fewer than 16 input channels as in the stems,
      large grids with 3 x 3 x 3 kernels, fewer than ``SMALL_CONV_MACS`` multiply-adds for the
      ``batch``): PyTorch's own oneDNN kernel.
    """
    co, c, kt, kh, kw = weight_shape
    spatial = out_grid[1] * out_grid[2]
    if groups != 1 or tuple(dilation) != (1, 1, 1):
        return "aten"
    if batch * out_grid[0] * spatial * co * c * kt * kh * kw < SMALL_CONV_MACS:
        return "aten"  # small problems: a few extra calls cost more than they save
    if (kt, kh, kw) == (1, 1, 1) and tuple(padding) == (0, 0, 0):
        return "pointwise"
    if (kh, kw) == (1, 1) and tuple(stride[1:]) == (1, 1) and tuple(padding[1:]) == (0, 0):
        return "temporal"
    if c < 16:
        return "aten"
    if kt == 1 and stride[0] == 1 and padding[0] == 0 and (kh, kw) != (1, 1) and spatial > 28 * 28:
        # (Never for 1 x 1 kernels: oneDNN's channels-last 2D backward-weights kernel gives wrong
        # results for 1 x 1 kernels with stride 2 in torch 2.13/2.14 on AVX2.)
        return "frames"
    if spatial <= 14 * 14 or any(s > 1 for s in stride):
        return "im2col"
    return "aten"


_IM2COL_BYTES = 64 * 2**20  # largest patch matrix built at once


def _weight_grad_temporal(x: torch.Tensor, grad: torch.Tensor, kt: int, stride: int, pad: int) -> torch.Tensor:
    # x: B x C x T x H x W and grad: B x Co x T' x H x W, both channels-last; returns kt x C x Co.
    xl, gl = x.permute(0, 2, 3, 4, 1), grad.permute(0, 2, 3, 4, 1)  # B T H W C, contiguous
    batch, frames, c = xl.shape[0], xl.shape[1], xl.shape[-1]
    out_frames, co = gl.shape[1], gl.shape[-1]
    out = torch.zeros(kt, c, co, dtype=x.dtype)
    for k in range(kt):
        # output frame t reads input frame t * stride + k - pad
        lo = max(0, -((k - pad) // stride))
        hi = min(out_frames, (frames - 1 - k + pad) // stride + 1)
        if hi <= lo:
            continue
        first = lo * stride + k - pad
        if stride == 1 and hi - lo == out_frames == frames:  # every clip whole: one product
            out[k].addmm_(xl.reshape(-1, c).t(), gl.reshape(-1, co))
            continue
        for b in range(batch):
            xs = xl[b, first : first + (hi - lo - 1) * stride + 1 : stride].reshape(-1, c)
            out[k].addmm_(xs.t(), gl[b, lo:hi].reshape(-1, co))
    return out


def _weight_grad_im2col(x: torch.Tensor, grad: torch.Tensor, kernel, stride, padding) -> torch.Tensor:
    # returns (kt*kh*kw*C) x Co, rows ordered (kt, kh, kw, C)
    kt, kh, kw = kernel
    xl = x.permute(0, 2, 3, 4, 1)
    pt, ph, pw = padding
    if pt or ph or pw:
        xl = F.pad(xl, (0, 0, pw, pw, ph, ph, pt, pt))
    gl = grad.permute(0, 2, 3, 4, 1)
    batch, out_frames, out_h, out_w, co = gl.shape
    c = xl.shape[-1]
    patches = xl.unfold(1, kt, stride[0]).unfold(2, kh, stride[1]).unfold(3, kw, stride[2])
    patches = patches.permute(0, 1, 2, 3, 5, 6, 7, 4)  # B T' H' W' kt kh kw C
    k_size = kt * kh * kw * c
    frames_per_chunk = max(1, _IM2COL_BYTES // (out_h * out_w * k_size * x.element_size()))
    out = torch.zeros(k_size, co, dtype=x.dtype)
    for b in range(batch):
        for t0 in range(0, out_frames, frames_per_chunk):
            t1 = min(out_frames, t0 + frames_per_chunk)
            out.addmm_(patches[b, t0:t1].reshape(-1, k_size).t(), gl[b, t0:t1].reshape(-1, co))
    return out


def conv3d_weight_grad(x: torch.Tensor, grad: torch.Tensor, weight_shape, stride, padding, dilation, groups: int, plan: str | None = None) -> torch.Tensor:
    """Gradient of ``conv3d(x, w, stride, padding, dilation, groups)`` with respect to ``w`` given the
    output gradient ``grad``: ``Co x C x kt x kh x kw``. ``x`` is ``B x C x T x H x W`` and ``grad``
    ``B x Co x T' x H' x W'``, both converted to channels-last; ``plan`` as ``weight_grad_plan``."""
    co, c, kt, kh, kw = weight_shape
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
    plan = plan or weight_grad_plan(weight_shape, stride, padding, dilation, groups, tuple(grad.shape[2:]), grad.shape[0])
    x, grad = to_channels_last(x), to_channels_last(grad)
    if plan == "temporal":
        out = _weight_grad_temporal(x, grad, kt, stride[0], padding[0])  # kt C Co
        return out.permute(2, 1, 0).reshape(co, c, kt, 1, 1)
    if plan == "pointwise":
        xs = x[:, :, :: stride[0], :: stride[1], :: stride[2]].permute(0, 2, 3, 4, 1).reshape(-1, c)
        return torch.mm(xs.t(), grad.permute(0, 2, 3, 4, 1).reshape(-1, co)).t().reshape(co, c, 1, 1, 1)
    if plan == "frames":
        batch, frames = x.shape[0], x.shape[2]
        x2 = x.permute(0, 2, 1, 3, 4).reshape(batch * frames, c, *x.shape[3:])
        g2 = grad.permute(0, 2, 1, 3, 4).reshape(batch * grad.shape[2], co, *grad.shape[3:])
        w2 = torch.empty((co, c, kh, kw), dtype=x.dtype).contiguous(memory_format=torch.channels_last)
        dw = _ATEN.convolution_backward(
            g2, x2, w2, None, list(stride[1:]), list(padding[1:]), [1, 1], False, [0, 0], 1, [False, True, False]
        )[1]
        return dw.unsqueeze(2)
    if plan == "im2col":
        out = _weight_grad_im2col(x, grad, (kt, kh, kw), stride, padding)  # (kt kh kw C) x Co
        return out.t().reshape(co, kt, kh, kw, c).permute(0, 4, 1, 2, 3)
    w = torch.empty(weight_shape, dtype=x.dtype).contiguous(memory_format=torch.channels_last_3d)
    return _ATEN.convolution_backward(
        grad, x, w, None, list(stride), list(padding), list(dilation), False, [0, 0, 0], groups, [False, True, False]
    )[1]


class _Conv3dFunction(torch.autograd.Function):
    """``conv3d`` whose backward computes the input gradient with oneDNN and the weight gradient
    with ``conv3d_weight_grad``. Saves the same tensors as PyTorch's convolution (input, weight)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation, groups, bias is not None)
        return F.conv3d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups, has_bias = ctx.conf
        grad = to_channels_last(grad)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            x = to_channels_last(x)
            grad_x = _ATEN.convolution_backward(
                grad, x, weight, None, list(stride), list(padding), list(dilation), False, [0, 0, 0], groups,
                [True, False, False],
            )[0]
        if ctx.needs_input_grad[1]:
            grad_w = conv3d_weight_grad(x, grad, weight.shape, stride, padding, dilation, groups)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3, 4))
        return grad_x, grad_w, grad_b, None, None, None, None


class _WinogradConv3dFunction(torch.autograd.Function):
    """``conv3d`` of a ``kt x 3 x 3`` kernel (stride 1, padding ``(kt // 2, 1, 1)``) by Winograd
    transforms, forward and backward: the input gradient is the same convolution of the output
    gradient with the kernel flipped and its channels swapped, the weight gradient is computed in the
    Winograd domain on large grids (``winograd.weight_grad_pays``) and by ``conv3d_weight_grad``
    otherwise. Saves the input and the weight, as PyTorch's convolution does: the weight gradient
    transforms the input again rather than keep its Winograd form (2.25x the input's memory)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return winograd.conv3d(x, winograd.transform_weight(weight), bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        kt = weight.shape[2]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = winograd.conv3d(grad, winograd.transform_weight(weight, transposed=True))
        if ctx.needs_input_grad[1]:
            if winograd.weight_grad_pays(*x.shape[3:]):
                grad_w = winograd.weight_grad(x, grad, kt)
            else:
                grad_w = conv3d_weight_grad(x, grad, weight.shape, (1, 1, 1), (kt // 2, 1, 1), (1, 1, 1), 1)
            grad_w = grad_w.contiguous(memory_format=_memory_format(weight))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3, 4))
        return grad_x, grad_w, grad_b


# Opaque to torch.compile: traced, the transforms and workspace writes compile to slower code
# (compiled ResNet training steps 0.6-0.9x torchvision, against 1.4-1.6x eager); left out of the
# graph, inductor still fuses what lies between the convolutions (BatchNorm, ReLU).
@torch.compiler.disable
def _winograd_conv3d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return _WinogradConv3dFunction.apply(x, weight, bias)


class FastConv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters, same output) for training on a CPU: channels-last, and a
    weight gradient computed by ``conv3d_weight_grad``; ``kt x 3 x 3`` kernels with stride 1 run
    forward and backward as Winograd convolutions where ``winograd.winograd_pays``. Input ``B x C x T x H x W``, any layout;
    output channels-last. Off a CPU, in dtypes other than float32/float64, without gradients, or
    with non-zero padding modes it is ``nn.Conv3d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type != "cpu"
            or x.dtype not in (torch.float32, torch.float64)
            or self.padding_mode != "zeros"
            or isinstance(self.padding, str)
            or not torch.is_grad_enabled()
            or not self.weight.requires_grad
        ):
            return super().forward(x)
        if winograd.applies(self.kernel_size, self.stride, self.padding, self.dilation, self.groups) and winograd.winograd_pays(
            self.in_channels, self.out_channels, self.kernel_size[0], *x.shape[3:], training=True
        ):
            return _winograd_conv3d(x, self.weight, self.bias)
        # The input is saved as it comes (a clip in the default layout is not duplicated for the
        # backward pass); the convolution's output is channels-last because its weight is.
        return _Conv3dFunction.apply(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


_DEPTHWISE_ATEN_GRID = 8 * 14 * 14  # larger output grids with no stride: oneDNN's own weight gradient


def _depthwise_input_grad(grad: torch.Tensor, weight: torch.Tensor, stride, padding, size) -> torch.Tensor:
    """Input gradient of a depthwise convolution with odd kernels and ``padding = k // 2``: the output
    gradient zero-stuffed onto the input grid (every ``stride``-th position), then a forward depthwise
    convolution with the flipped kernel (oneDNN's forward kernel is 5-8x faster than its backward)."""
    channels = weight.shape[0]
    if any(s > 1 for s in stride):
        full = [max(n, (o - 1) * s + 1) for n, o, s in zip(size[2:], grad.shape[2:], stride)]
        stuffed = grad.new_zeros((grad.shape[0], channels, *full)).contiguous(memory_format=torch.channels_last_3d)
        stuffed[:, :, :: stride[0], :: stride[1], :: stride[2]] = grad
        grad = stuffed
    out = F.conv3d(grad, weight.flip(2, 3, 4), None, 1, padding, 1, channels)
    return out[:, :, : size[2], : size[3], : size[4]]


def _depthwise_weight_grad(x: torch.Tensor, grad: torch.Tensor, weight_shape, stride, padding) -> torch.Tensor:
    """Weight gradient of a depthwise convolution: per kernel offset, the channel-wise sum of the
    output gradient times the shifted (strided) input, both channels-last. Large unstrided grids use
    oneDNN's own kernel, which is faster there."""
    channels, _, kt, kh, kw = weight_shape
    out_grid = grad.shape[2:]
    if all(s == 1 for s in stride) and out_grid[0] * out_grid[1] * out_grid[2] > _DEPTHWISE_ATEN_GRID:
        w = torch.empty(weight_shape, dtype=x.dtype).contiguous(memory_format=torch.channels_last_3d)
        return _ATEN.convolution_backward(
            grad, x, w, None, list(stride), list(padding), [1, 1, 1], False, [0, 0, 0], channels, [False, True, False]
        )[1]
    pt, ph, pw = padding
    xl = F.pad(x.permute(0, 2, 3, 4, 1), (0, 0, pw, pw, ph, ph, pt, pt))
    gl = grad.permute(0, 2, 3, 4, 1)
    to, ho, wo = out_grid
    st, sh, sw = stride
    out = x.new_empty(kt, kh, kw, channels)
    for dt in range(kt):
        for dh in range(kh):
            for dw in range(kw):
                window = xl[:, dt : dt + (to - 1) * st + 1 : st, dh : dh + (ho - 1) * sh + 1 : sh, dw : dw + (wo - 1) * sw + 1 : sw]
                torch.sum(window * gl, (0, 1, 2, 3), out=out[dt, dh, dw])
    return out.permute(3, 0, 1, 2).unsqueeze(1)


class _DepthwiseConv3dFunction(torch.autograd.Function):
    """Depthwise ``conv3d`` (odd kernels, ``padding = k // 2``) with the backward above."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, bias is not None, tuple(x.shape))
        return F.conv3d(x, weight, bias, stride, padding, 1, weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, has_bias, size = ctx.conf
        grad = to_channels_last(grad)
        grad_x = _depthwise_input_grad(grad, weight, stride, padding, size) if ctx.needs_input_grad[0] else None
        grad_w = _depthwise_weight_grad(x, grad, weight.shape, stride, padding) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum((0, 2, 3, 4)) if has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None, None


class FastDepthwiseConv3d(nn.Conv3d):
    """Depthwise ``nn.Conv3d`` (``groups = in = out channels``, odd kernels, ``padding = k // 2``, as
    MViT's token pooling) for training on a CPU: the same parameters and output, channels-last, with
    the input gradient computed by a forward convolution and the weight gradient by shifted sums
    (oneDNN's depthwise backward is 3-10x slower than its forward here). Otherwise ``nn.Conv3d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type != "cpu"
            or x.dtype not in (torch.float32, torch.float64)
            or not torch.is_grad_enabled()
            or not (x.requires_grad or self.weight.requires_grad)
        ):
            return super().forward(x)
        return _DepthwiseConv3dFunction.apply(to_channels_last(x), self.weight, self.bias, self.stride, self.padding)


def _is_plain_depthwise(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv3d)
        and _is_plain_conv(module)
        and module.groups == module.in_channels == module.out_channels
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
        and tuple(module.dilation) == (1, 1, 1)
        and all(k % 2 == 1 and p == k // 2 for k, p in zip(module.kernel_size, module.padding))
    )


def _fast_training_convs_in_place(model: nn.Module) -> int:
    swapped = 0
    for module in model.modules():
        if type(module) in (FastConv3d, FastDepthwiseConv3d):
            continue
        if _is_plain_depthwise(module):
            module.__class__ = FastDepthwiseConv3d
            swapped += 1
        elif isinstance(module, nn.Conv3d) and _is_plain_conv(module) and module.groups == 1:
            module.__class__ = FastConv3d
            swapped += 1
    return swapped


# ---------------------------------------------------------------------------------------------
# The two entry points
# ---------------------------------------------------------------------------------------------


def optimize_for_inference(model: nn.Module, *, fused_ops: bool = True, compile: bool = False) -> nn.Module:
    """An eval-mode copy of ``model`` for evaluation and prediction, faster on a CPU.

    Folds BatchNorm into convolutions (``fuse_conv_bn``), stores weights channels-last, runs every
    convolution as a ``FusedConv`` (one oneDNN call with bias and the following ReLU, and in
    ``resnet3d.BasicBlock`` the residual addition, fused; ``fused_ops=False`` keeps plain
    convolutions), and pools MViT's tokens channels-last. ``compile=True`` wraps the result in
    ``torch.compile`` (minutes of compilation on a small CPU, see ``docs/model-speed.md``). Input
    ``B x C x T x H x W`` in any layout; output as ``model``'s, equal up to rounding
    (``FAST_TOLERANCE``). Parameters are frozen (``requires_grad=False``); ``model`` is not changed.
    """
    fast = fuse_conv_bn(model)
    channels_last(fast)
    if fused_ops and mkldnn_fusion_available():
        _fuse_conv_relu_in_place(fast)
        _fuse_residual_blocks_in_place(fast)
    _fast_mvit_in_place(fast)
    fast.requires_grad_(False)
    if compile:
        fast = torch.compile(fast)
    return fast


def optimize_for_training(model: nn.Module, *, fast_weight_grad: bool = True, compile: bool = False) -> nn.Module:
    """``model`` itself, converted in place for faster training steps on a CPU; returns it.

    Stores 3D convolution weights channels-last (values, shapes and state-dict keys unchanged;
    existing optimisers keep working), makes every plain ``nn.Conv3d`` a ``FastConv3d`` (channels-last
    activations; weight gradients by ``conv3d_weight_grad`` unless ``fast_weight_grad=False``) and
    every depthwise one a ``FastDepthwiseConv3d``, and runs MViT's attention with
    ``FastMultiscaleAttention``. Train-mode outputs, losses and gradients equal the plain model's up
    to rounding (``FAST_TOLERANCE``); BatchNorm statistics are updated as before.

    ``compile=True`` returns ``torch.compile(model)`` (sharing the parameters; ``model`` is still
    converted in place, and its ``state_dict()``, not the wrapper's, is the one to save): inductor
    fuses BatchNorm, ReLU and their gradients, 5-10% faster steps for the ResNets after about two
    minutes of compilation on two cores (``docs/model-speed.md``), so only for long runs.
    """
    # 3D weights only: 2D models gained nothing measured, and oneDNN's channels-last 2D
    # backward-weights kernel is wrong for 1 x 1 kernels with stride 2 (torch 2.13/2.14, AVX2).
    channels_last(model, dims=(5,))
    if fast_weight_grad:
        _fast_training_convs_in_place(model)
    _fast_mvit_in_place(model)
    return torch.compile(model) if compile else model
