"""CPU speed paths for vidlearn's models, each tested equal to the plain model.

A layer above ``vidlearn.models``: the models stay plain ``nn.Module``s, and this package turns
them, from outside, into faster equal forms for the two places speed matters. Entry points:
``optimize_for_inference(model)`` (an eval-mode copy for evaluation and prediction) and
``optimize_for_training(model)`` (the same model, converted in place); both in ``optimize.py``,
which says what each does and what "equal" means (``FAST_TOLERANCE``).

By concern: ``batchnorm_folding.py`` (BatchNorm folded into convolutions), ``fused_inference.py``
(one oneDNN call per convolution with bias, ReLU and residual addition), ``conv_gradients.py``
(per-shape weight gradients for training), ``mvit_attention.py`` (MViT's pooling attention),
``winograd.py`` (Winograd F(4x4, 3x3) convolutions), ``layout.py`` (channels-last storage),
``workspace.py`` (scratch memory reused across layers). Measurements: ``docs/model-speed.md``.
"""

from vidlearn.speed import winograd
from vidlearn.speed.batchnorm_folding import fold_bn, fuse_conv_bn
from vidlearn.speed.conv_gradients import (
    FastConv3d,
    FastDepthwiseConv3d,
    conv3d_weight_grad,
    weight_grad_plan,
)
from vidlearn.speed.fused_inference import FusedBasicBlock, FusedConv, mkldnn_fusion_available
from vidlearn.speed.layout import channels_last, to_channels_last
from vidlearn.speed.mvit_attention import FastAttentionPool, FastMultiscaleAttention, FastMultiscaleBlock
from vidlearn.speed.optimize import FAST_TOLERANCE, optimize_for_inference, optimize_for_training
from vidlearn.speed.winograd import winograd_pays

__all__ = [
    "FAST_TOLERANCE",
    "FastAttentionPool",
    "FastConv3d",
    "FastDepthwiseConv3d",
    "FastMultiscaleAttention",
    "FastMultiscaleBlock",
    "FusedBasicBlock",
    "FusedConv",
    "channels_last",
    "conv3d_weight_grad",
    "fold_bn",
    "fuse_conv_bn",
    "mkldnn_fusion_available",
    "optimize_for_inference",
    "optimize_for_training",
    "to_channels_last",
    "weight_grad_plan",
    "winograd",
    "winograd_pays",
]
