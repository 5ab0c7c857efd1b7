"""Inference convolutions as one oneDNN call each, with bias, ReLU and residual addition fused.

After BatchNorm folding a convolution, the ReLU after it and, at the end of a residual block, the
shortcut addition and the final ReLU are one pass over memory instead of three: ``FusedConv`` calls
oneDNN's fused operator (weights reordered once into its blocked layout, not at every call) or,
for stride-1 ``kt x 3 x 3`` kernels where that pays, a Winograd convolution (``winograd.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidlearn.errors import UnsupportedLayerError
from vidlearn.models.resnet3d import BasicBlock
from vidlearn.speed import winograd
from vidlearn.speed.conv_gradients import is_plain_conv
from vidlearn.speed.layout import to_channels_last


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
        if not is_plain_conv(conv) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise UnsupportedLayerError(
                f"FusedConv needs a plain convolution with numeric zero padding, got {type(conv).__name__}"
            )
        self.dims = conv.weight.dim() - 2
        weight = conv.weight.detach()
        self.weight = nn.Parameter(to_channels_last(weight), requires_grad=False)
        bias = (
            conv.bias.detach()
            if conv.bias is not None
            else torch.zeros(conv.out_channels, dtype=weight.dtype)
        )
        self.bias = nn.Parameter(bias.clone(), requires_grad=False)
        self.stride, self.padding, self.dilation = list(conv.stride), list(conv.padding), list(conv.dilation)
        self.groups = conv.groups
        self.relu = relu
        self.winograd = self.dims == 3 and winograd.applies(
            weight.shape[2:], self.stride, self.padding, self.dilation, self.groups
        )
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
        if self.winograd and winograd.winograd_pays(
            self.weight.shape[1], self.weight.shape[0], self.weight.shape[2], *x.shape[3:]
        ):
            if self._winograd_weight is None:
                self._winograd_weight = winograd.transform_weight(self.weight)
            return winograd.conv3d(x, self._winograd_weight, self.bias, residual, self.relu)
        x = to_channels_last(x)
        weight = self._packed_weight(x)
        if residual is None:
            return torch.ops.mkldnn._convolution_pointwise(
                x,
                weight,
                self.bias,
                self.padding,
                self.stride,
                self.dilation,
                self.groups,
                "relu" if self.relu else "none",
                [],
                "",
            )
        return torch.ops.mkldnn._convolution_pointwise(
            x,
            to_channels_last(residual),
            weight,
            self.bias,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
            "add",
            1.0,
            "relu" if self.relu else None,
            [],
            "",
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
        if (
            is_plain_conv(child)
            and child.weight.dim() in (4, 5)
            and child.padding_mode == "zeros"
            and not isinstance(child.padding, str)
        ):
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


def fuse_convolutions_in_place(model: nn.Module) -> None:
    """Turn every plain convolution of ``model`` (BatchNorm already folded) into a ``FusedConv``,
    with the ReLU that follows it, and every ``resnet3d.BasicBlock`` into a ``FusedBasicBlock``."""
    _fuse_conv_relu_in_place(model)
    _fuse_residual_blocks_in_place(model)
