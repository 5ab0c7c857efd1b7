"""The two entry points of the CPU speed paths, each tested equal to the plain model.

The plain models (``vidlearn.models``: ``resnet3d.py``, ``mvit.py``, ...) stay plain: standard layers,
default (contiguous) layout, no fused operations, so that hooks, analysis and saliency see every
layer, and they know nothing of this package. The functions here give the same model, faster,
for the two places speed matters:

- ``optimize_for_inference(model)``: an eval-mode **copy** for evaluation and prediction. Every
  BatchNorm that follows a convolution is folded into it (``fuse_conv_bn``, ``batchnorm_folding.py``),
  weights and activations are channels-last (``B x C x T x H x W`` tensors stored ``B, T, H, W, C``), and each
  convolution runs as one oneDNN call with its bias, the following ReLU and, in a residual block,
  the shortcut addition and final ReLU fused in (``FusedConv``; weights reordered once, not at
  every call); stride-1 ``kt x 3 x 3`` convolutions run as Winograd F(4x4, 3x3) convolutions where
  that pays (``winograd.py``: 4x fewer multiplications). MViT's attention pools its tokens
  channels-last straight from the token layout and writes its relative-position logits into the
  attention mask (``FastMultiscaleAttention``, ``mvit_attention.py``).
- ``optimize_for_training(model)``: the **same** model, converted in place (the parameters, their
  values, the state-dict keys and the optimiser's view of them do not change). Weights and
  activations are channels-last; every 3D convolution computes its weight gradient with the method
  that is fastest for its shape (``FastConv3d``, ``weight_grad_plan``: matrix products for
  ``kt x 1 x 1`` and ``1 x 1 x 1`` kernels, 2D kernels over the frames for ``1 x kh x kw`` ones,
  chunked im2col on small grids, oneDNN's own otherwise) or, for stride-1 ``kt x 3 x 3`` kernels on
  grids of 14 x 14 and more, runs forward and backward as a Winograd convolution; depthwise ones
  (MViT's pooling) compute their input and weight gradients without oneDNN's slow depthwise
  backward (``FastDepthwiseConv3d``; ``conv_gradients.py``). MViT's attention runs as one autograd
  function with its own backward (``_PoolingAttentionFunction``).
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

import torch
from torch import nn

from vidlearn.speed.batchnorm_folding import fuse_conv_bn
from vidlearn.speed.conv_gradients import fast_training_convs_in_place
from vidlearn.speed.fused_inference import fuse_convolutions_in_place, mkldnn_fusion_available
from vidlearn.speed.layout import channels_last
from vidlearn.speed.mvit_attention import fast_mvit_in_place

# Tolerance the tests hold every fast path to: max |fast - plain| <= FAST_TOLERANCE * max(1, max |plain|).
FAST_TOLERANCE = 1e-4


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
        fuse_convolutions_in_place(fast)
    fast_mvit_in_place(fast)
    fast.requires_grad_(False)
    if compile:
        fast = torch.compile(fast)
    return fast


def optimize_for_training(
    model: nn.Module, *, fast_weight_grad: bool = True, compile: bool = False
) -> nn.Module:
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
        fast_training_convs_in_place(model)
    fast_mvit_in_place(model)
    return torch.compile(model) if compile else model
