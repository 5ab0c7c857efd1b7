"""Channels-last storage of clips and weights: same shapes and values, another order in memory.

Clips are ``B x C x T x H x W`` everywhere; channels-last (``torch.channels_last_3d``) stores them
``B, T, H, W, C``, which is the layout oneDNN's fast kernels and the Winograd transforms read.
"""

from __future__ import annotations

import torch
from torch import nn


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


def memory_format_of(t: torch.Tensor) -> torch.memory_format:
    """The memory format ``t`` is stored in: channels-last (3D or 2D) where it is that and not also
    contiguous, else contiguous; for making a new tensor (a folded weight, a gradient) like ``t``."""
    if t.dim() == 5 and t.is_contiguous(memory_format=torch.channels_last_3d) and not t.is_contiguous():
        return torch.channels_last_3d
    if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
