"""Training 3D convolutions on a CPU: weight gradients by the method fastest for each shape.

oneDNN's backward-weights kernel for 3D convolutions is slow on many shapes that video networks
use (``kt x 1 x 1``, ``1 x 1 x 1``, small grids, depthwise). ``FastConv3d`` keeps ``nn.Conv3d``'s
parameters and output and computes the weight gradient as ``weight_grad_plan`` says (matrix
products, 2D kernels over the frames, chunked im2col, Winograd on large grids, or oneDNN's own);
``FastDepthwiseConv3d`` does the same for depthwise convolutions (MViT's token pooling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.conv import _ConvNd

from vidlearn.speed import winograd
from vidlearn.speed.layout import memory_format_of, to_channels_last

_ATEN = torch.ops.aten


def is_plain_conv(module: nn.Module) -> bool:
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


SMALL_CONV_MACS = 100_000_000  # below this many multiply-adds a weight gradient stays PyTorch's own


def weight_grad_plan(
    weight_shape: tuple[int, ...],
    stride,
    padding,
    dilation,
    groups: int,
    out_grid: tuple[int, int, int],
    batch: int = 1,
) -> str:
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


def _weight_grad_temporal(
    x: torch.Tensor, grad: torch.Tensor, kt: int, stride: int, pad: int
) -> torch.Tensor:
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


def conv3d_weight_grad(
    x: torch.Tensor,
    grad: torch.Tensor,
    weight_shape,
    stride,
    padding,
    dilation,
    groups: int,
    plan: str | None = None,
) -> torch.Tensor:
    """Gradient of ``conv3d(x, w, stride, padding, dilation, groups)`` with respect to ``w`` given the
    output gradient ``grad``: ``Co x C x kt x kh x kw``. ``x`` is ``B x C x T x H x W`` and ``grad``
    ``B x Co x T' x H' x W'``, both converted to channels-last; ``plan`` as ``weight_grad_plan``."""
    co, c, kt, kh, kw = weight_shape
    stride, padding, dilation = tuple(stride), tuple(padding), tuple(dilation)
    plan = plan or weight_grad_plan(
        weight_shape, stride, padding, dilation, groups, tuple(grad.shape[2:]), grad.shape[0]
    )
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
            g2,
            x2,
            w2,
            None,
            list(stride[1:]),
            list(padding[1:]),
            [1, 1],
            False,
            [0, 0],
            1,
            [False, True, False],
        )[1]
        return dw.unsqueeze(2)
    if plan == "im2col":
        out = _weight_grad_im2col(x, grad, (kt, kh, kw), stride, padding)  # (kt kh kw C) x Co
        return out.t().reshape(co, kt, kh, kw, c).permute(0, 4, 1, 2, 3)
    w = torch.empty(weight_shape, dtype=x.dtype).contiguous(memory_format=torch.channels_last_3d)
    return _ATEN.convolution_backward(
        grad,
        x,
        w,
        None,
        list(stride),
        list(padding),
        list(dilation),
        False,
        [0, 0, 0],
        groups,
        [False, True, False],
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
                grad,
                x,
                weight,
                None,
                list(stride),
                list(padding),
                list(dilation),
                False,
                [0, 0, 0],
                groups,
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
            grad_w = grad_w.contiguous(memory_format=memory_format_of(weight))
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
        if winograd.applies(
            self.kernel_size, self.stride, self.padding, self.dilation, self.groups
        ) and winograd.winograd_pays(
            self.in_channels, self.out_channels, self.kernel_size[0], *x.shape[3:], training=True
        ):
            return _winograd_conv3d(x, self.weight, self.bias)
        # The input is saved as it comes (a clip in the default layout is not duplicated for the
        # backward pass); the convolution's output is channels-last because its weight is.
        return _Conv3dFunction.apply(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


_DEPTHWISE_ATEN_GRID = 8 * 14 * 14  # larger output grids with no stride: oneDNN's own weight gradient


def _depthwise_input_grad(grad: torch.Tensor, weight: torch.Tensor, stride, padding, size) -> torch.Tensor:
    """Input gradient of a depthwise convolution with odd kernels and ``padding = k // 2``: the output
    gradient zero-stuffed onto the input grid (every ``stride``-th position), then a forward depthwise
    convolution with the flipped kernel (oneDNN's forward kernel is 5-8x faster than its backward)."""
    channels = weight.shape[0]
    if any(s > 1 for s in stride):
        full = [max(n, (o - 1) * s + 1) for n, o, s in zip(size[2:], grad.shape[2:], stride)]
        stuffed = grad.new_zeros((grad.shape[0], channels, *full)).contiguous(
            memory_format=torch.channels_last_3d
        )
        stuffed[:, :, :: stride[0], :: stride[1], :: stride[2]] = grad
        grad = stuffed
    out = F.conv3d(grad, weight.flip(2, 3, 4), None, 1, padding, 1, channels)
    return out[:, :, : size[2], : size[3], : size[4]]


def _depthwise_weight_grad(
    x: torch.Tensor, grad: torch.Tensor, weight_shape, stride, padding
) -> torch.Tensor:
    """Weight gradient of a depthwise convolution: per kernel offset, the channel-wise sum of the
    output gradient times the shifted (strided) input, both channels-last. Large unstrided grids use
    oneDNN's own kernel, which is faster there."""
    channels, _, kt, kh, kw = weight_shape
    out_grid = grad.shape[2:]
    if all(s == 1 for s in stride) and out_grid[0] * out_grid[1] * out_grid[2] > _DEPTHWISE_ATEN_GRID:
        w = torch.empty(weight_shape, dtype=x.dtype).contiguous(memory_format=torch.channels_last_3d)
        return _ATEN.convolution_backward(
            grad,
            x,
            w,
            None,
            list(stride),
            list(padding),
            [1, 1, 1],
            False,
            [0, 0, 0],
            channels,
            [False, True, False],
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
                window = xl[
                    :,
                    dt : dt + (to - 1) * st + 1 : st,
                    dh : dh + (ho - 1) * sh + 1 : sh,
                    dw : dw + (wo - 1) * sw + 1 : sw,
                ]
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
        grad_x = (
            _depthwise_input_grad(grad, weight, stride, padding, size) if ctx.needs_input_grad[0] else None
        )
        grad_w = (
            _depthwise_weight_grad(x, grad, weight.shape, stride, padding)
            if ctx.needs_input_grad[1]
            else None
        )
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
        return _DepthwiseConv3dFunction.apply(
            to_channels_last(x), self.weight, self.bias, self.stride, self.padding
        )


def _is_plain_depthwise(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv3d)
        and is_plain_conv(module)
        and module.groups == module.in_channels == module.out_channels
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
        and tuple(module.dilation) == (1, 1, 1)
        and all(k % 2 == 1 and p == k // 2 for k, p in zip(module.kernel_size, module.padding))
    )


def fast_training_convs_in_place(model: nn.Module) -> int:
    """Make every plain ``nn.Conv3d`` of ``model`` a ``FastConv3d`` and every plain depthwise one a
    ``FastDepthwiseConv3d``, in place (same parameters); returns how many were changed."""
    swapped = 0
    for module in model.modules():
        if type(module) in (FastConv3d, FastDepthwiseConv3d):
            continue
        if _is_plain_depthwise(module):
            module.__class__ = FastDepthwiseConv3d
            swapped += 1
        elif isinstance(module, nn.Conv3d) and is_plain_conv(module) and module.groups == 1:
            module.__class__ = FastConv3d
            swapped += 1
    return swapped
