"""C3D, "the VGG of 3D CNNs" (Tran et al., "Learning Spatiotemporal Features with 3D
Convolutional Networks", ICCV 2015), as the course's layer table gives it.

Every convolution is 3x3x3 with padding 1 (sizes kept); every pool is 2x2x2 except pool1, 1x2x2,
which keeps all frames early on. Shapes (C x T x H x W) for a 3 x 16 x 112 x 112 clip:

=======  ====================  ==========================
layer    output                GFLOPs (multiply-adds)
=======  ====================  ==========================
conv1    64 x 16 x 112 x 112   1.04
pool1    64 x 16 x 56 x 56
conv2    128 x 16 x 56 x 56    11.10
pool2    128 x 8 x 28 x 28
conv3a   256 x 8 x 28 x 28     5.55
conv3b   256 x 8 x 28 x 28     11.10
pool3    256 x 4 x 14 x 14
conv4a   512 x 4 x 14 x 14     2.77
conv4b   512 x 4 x 14 x 14     5.55
pool4    512 x 2 x 7 x 7
conv5a   512 x 2 x 7 x 7       0.69
conv5b   512 x 2 x 7 x 7       0.69
pool5    512 x 1 x 4 x 4
fc6      4096
fc7      4096
fc8      K
=======  ====================  ==========================

The course's table lists pool5 as 512 x 1 x 3 x 3; the original C3D pads pool5 by one pixel in H
and W, giving 512 x 1 x 4 x 4 = 8192 features for fc6. We follow the original, so every weight has
the shape of the released Sports-1M model's (layer names as in the table, convolutions under ``convs.``).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import check_clip, init_he, require_positive
from vidlearn.models.registry import register_model

C3D_INPUT = (3, 16, 112, 112)

# (name, output channels) for a convolution, (name, kernel = stride) for a max-pool; in table order.
C3D_LAYERS: tuple[tuple[str, int | tuple[int, int, int]], ...] = (
    ("conv1", 64),
    ("pool1", (1, 2, 2)),
    ("conv2", 128),
    ("pool2", (2, 2, 2)),
    ("conv3a", 256),
    ("conv3b", 256),
    ("pool3", (2, 2, 2)),
    ("conv4a", 512),
    ("conv4b", 512),
    ("pool4", (2, 2, 2)),
    ("conv5a", 512),
    ("conv5b", 512),
    ("pool5", (2, 2, 2)),
)
POOL5_SHAPE = (512, 1, 4, 4)
C3D_SMALL_WIDTH = 0.125


def fully_connected(in_features: int, out_features: int, dropout: float, batch_norm: bool) -> nn.Sequential:
    """Linear, (LayerNorm), ReLU, Dropout: C3D's fc6 and fc7; index 0 is the linear layer. The
    normalisation centres each clip's pre-activations, so about half the ReLUs stay active; a
    LayerNorm rather than a BatchNorm1d so that a batch of one still trains."""
    linear = nn.Linear(in_features, out_features, bias=not batch_norm)
    normal = [nn.LayerNorm(out_features)] if batch_norm else []
    return nn.Sequential(linear, *normal, nn.ReLU(), nn.Dropout(dropout))


class C3D(nn.Module):
    """C3D: eight 3x3x3 convolutions, five max-pools, fc6/fc7 (4096, dropout), fc8 classifier.

    Input ``B x C x 16 x 112 x 112`` (or any clip whose pool5 output has the shape the network was
    built for: with the defaults 512 x 1 x 4 x 4, i.e. T 16-31, H and W 96-127); the convolutions and
    pools are in ``convs``, named as in the table (each convolution followed by a ReLU); ``features``
    gives fc7's ``B x fc_width``; output ``B x K``.

    ``width`` scales every convolution's channels and ``fc_width`` sets fc6/fc7; ``clip_shape``
    (T, H, W) is the input the fc6 layer is sized for; ``batch_norm`` puts a BatchNorm3d after every
    convolution (``bn1``, ``bn2``, ... as later re-implementations do) and a LayerNorm after the
    fc6 and fc7 linear layers (without it, c3d_small's fc6 ReLUs died in training: 0.4% active
    after 10 epochs on SynthActions, the loss stuck at chance). The defaults are the paper's network.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        dropout: float = 0.5,
        width: float = 1.0,
        fc_width: int = 4096,
        clip_shape: tuple[int, int, int] = C3D_INPUT[1:],
        batch_norm: bool = False,
    ):
        super().__init__()
        require_positive(num_classes=num_classes, in_channels=in_channels, fc_width=fc_width)
        if width <= 0:
            raise BadArgumentError(f"width must be positive, got {width}")
        self.in_channels = in_channels
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = in_channels
        for name, spec in C3D_LAYERS:
            if name.startswith("conv"):
                out_channels = max(1, round(spec * width))
                layers[name] = nn.Conv3d(
                    channels, out_channels, kernel_size=3, padding=1, bias=not batch_norm
                )
                if batch_norm:
                    layers[name.replace("conv", "bn")] = nn.BatchNorm3d(out_channels)
                layers[name.replace("conv", "relu")] = nn.ReLU()
                channels = out_channels
            else:
                # pool5's padding (original C3D) turns 7 x 7 into 4 x 4 rather than 3 x 3.
                padding = (0, 1, 1) if name == "pool5" else 0
                layers[name] = nn.MaxPool3d(spec, padding=padding)
        self.convs = nn.Sequential(layers)
        self.pool5_shape = self._pool5_shape(clip_shape)
        self.fc6 = fully_connected(math.prod(self.pool5_shape), fc_width, dropout, batch_norm)
        self.fc7 = fully_connected(fc_width, fc_width, dropout, batch_norm)
        self.fc8 = nn.Linear(fc_width, num_classes)
        # He initialisation of the convolutions, as torchvision's VGG: without normalisation layers,
        # PyTorch's default init shrinks activations layer after layer (measured: 8 convolutions of a
        # narrow C3D end at a third of the input's scale).
        init_he(self, linear_std=None)

    def _pool5_shape(self, clip_shape: tuple[int, int, int]) -> tuple[int, ...]:
        """pool5's output shape for a clip of ``clip_shape``: convolutions keep sizes, each max-pool
        gives ``floor((n + 2 * padding - kernel) / kernel) + 1`` per axis."""
        sizes = list(clip_shape)
        channels = self.in_channels
        for module in self.convs:
            if isinstance(module, nn.Conv3d):
                channels = module.out_channels
            elif isinstance(module, nn.MaxPool3d):
                kernels, paddings = (
                    v if isinstance(v, tuple) else (v,) * 3 for v in (module.kernel_size, module.padding)
                )
                sizes = [(n + 2 * p - k) // k + 1 for n, k, p in zip(sizes, kernels, paddings)]
        if min(sizes) < 1:
            raise BadArgumentError(f"c3d: a {tuple(clip_shape)} clip is too small for five poolings")
        return (channels, *sizes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> fc7 activations ``B x 4096`` (the classic C3D feature)."""
        check_clip(x, self.in_channels)
        wrong_size = f"this c3d was built for clips whose pool5 output is {self.pool5_shape}"
        try:
            pooled = self.convs(x)
        except RuntimeError as err:  # a pool's output would be empty: the clip is far too small
            raise BadArgumentError(f"{wrong_size}; a {tuple(x.shape[2:])} clip is too small: {err}") from err
        if tuple(pooled.shape[1:]) != self.pool5_shape:
            raise BadArgumentError(
                f"{wrong_size}; a {tuple(x.shape[2:])} clip gives {tuple(pooled.shape[1:])}"
            )
        return self.fc7(self.fc6(pooled.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.fc8(self.features(x))


@register_model(
    "c3d",
    default_input=C3D_INPUT,
    description="C3D (Tran et al. 2015): 3x3x3 convs throughout, the VGG of 3D CNNs",
)
def c3d(num_classes: int, in_channels: int = 3, dropout: float = 0.5) -> C3D:
    return C3D(num_classes, in_channels, dropout)


@register_model(
    "c3d_small",
    default_input=(3, 16, 64, 64),
    description="C3D's layer pattern at 1/8 width, batch norm, 256-wide fc6/fc7, sized for the clip: a C3D-style net for CPU demos",
)
def c3d_small(
    num_classes: int,
    num_frames: int = 16,
    frame_size: tuple[int, int] = (64, 64),
    in_channels: int = 3,
    dropout: float = 0.5,
) -> C3D:
    return C3D(
        num_classes,
        in_channels,
        dropout,
        width=C3D_SMALL_WIDTH,
        fc_width=256,
        clip_shape=(num_frames, *frame_size),
        batch_norm=True,
    )
