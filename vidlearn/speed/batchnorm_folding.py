"""Folding each BatchNorm into the convolution before it, for inference.

In eval mode a BatchNorm is an affine map per channel, so ``bn(conv(x))`` is one convolution with
a scaled weight and a shifted bias: the network has one layer (and one pass over memory) fewer per
pair, and the result is the same up to rounding (folded in float64).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from vidlearn.errors import UnsupportedLayerError
from vidlearn.speed.conv_gradients import is_plain_conv
from vidlearn.speed.layout import memory_format_of


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
        if is_plain_conv(child):
            return module, name
        return _last_conv(child)
    return None


def fold_bn(conv: nn.Module, bn: _BatchNorm) -> nn.Module:
    """A copy of ``conv`` whose output equals ``bn(conv(x))`` with ``bn`` in eval mode (running
    statistics): ``w' = w * g / sqrt(v + eps)``, ``b' = (b - m) * g / sqrt(v + eps) + beta``, folded in
    float64 and stored in the weight's dtype."""
    if not is_plain_conv(conv) or not _is_foldable_bn(bn) or conv.out_channels != bn.num_features:
        raise UnsupportedLayerError(
            f"cannot fold {type(bn).__name__} into {type(conv).__name__}: needs a plain convolution and a "
            f"BatchNorm with running statistics and one feature per output channel"
        )
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
    fused.weight = nn.Parameter(
        new_weight.contiguous(memory_format=memory_format_of(weight)), conv.weight.requires_grad
    )
    fused.bias = nn.Parameter(new_bias, conv.weight.requires_grad)
    return fused


def _fuse_in_place(module: nn.Module) -> int:
    folded = 0
    for child in module.children():
        folded += _fuse_in_place(child)
    if isinstance(module, nn.Sequential):
        items = list(module._modules.items())
        for (_, before), (name, bn) in zip(items, items[1:]):
            if not _is_foldable_bn(bn):
                continue
            where = (module, None) if is_plain_conv(before) else _last_conv(before)
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
