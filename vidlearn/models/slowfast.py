"""SlowFast networks (Feichtenhofer, Fan, Malik and He, "SlowFast Networks for Video Recognition",
ICCV 2019).

Two ResNet-50 pathways look at the same clip. The slow pathway sees few frames (every alpha-th)
with many channels and models appearance; it uses temporal convolutions only in res4 and res5. The
fast pathway sees every frame with beta = 1/8 of the channels and temporal kernels everywhere, so
it models motion cheaply. Lateral connections carry fast features into the slow pathway after
pool1, res2, res3 and res4; each pathway is pooled globally and the two are concatenated for the
classifier.

The model takes one clip ``B x C x T x H x W`` (T = the fast pathway's frames) and picks the slow
pathway's frames itself, so it trains with the ordinary single-clip data pipeline. PyTorchVideo
does this outside the model (its ``PackPathway`` transform, with evenly spread indices: 0, 10, 20,
31 of 32 frames); here the slow pathway takes ``x[:, :, ::alpha]`` (0, 8, 16, 24), exactly the frames
the time-strided lateral convolutions are centred on.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import Residual, check_clip, init_he, require_dropout, require_positive
from vidlearn.models.registry import register_model

SLOWFAST_INPUT = (3, 32, 224, 224)
RES_STAGES = ("res2", "res3", "res4", "res5")
RESNET50_BLOCKS = (3, 4, 6, 3)
# Slow pathway widths of ResNet-50 (the fast pathway's are beta times these): the bottleneck's
# inner width per stage; a stage outputs four times as many channels.
INNER_WIDTHS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4
STEM_WIDTH = 64
# The paper's Table 1: the slow pathway has temporal kernels (3x1x1 in the bottleneck's first
# convolution) only in res4 and res5: with its large frame stride, features of neighbouring frames
# are correlated only once the spatial receptive field is large (paper, Sec. 3.1); the fast pathway
# has them everywhere.
SLOW_TEMPORAL_KERNELS = {"stem": 1, "res2": 1, "res3": 1, "res4": 3, "res5": 3}
FAST_TEMPORAL_KERNELS = {"stem": 5, "res2": 3, "res3": 3, "res4": 3, "res5": 3}
# Variants "T x tau": the slow pathway's frames x their stride in the raw video (both span 64 raw
# frames); the fast pathway takes alpha times as many (32, stride 2). The lateral kernel follows
# the released PySlowFast configs (configs/Kinetics/SLOWFAST_4x16_R50.yaml: FUSION_KERNEL_SZ 5,
# SLOWFAST_8x8_R50.yaml: 7); the paper names 5 for both.
VARIANTS = {"4x16": {"alpha": 8, "lateral_kernel": 5}, "8x8": {"alpha": 4, "lateral_kernel": 7}}


class Bottleneck(Residual):
    """ResNet bottleneck of both pathways: ``Tx1x1`` to ``inner``, ``1x3x3`` (spatial ``stride``),
    ``1x1x1`` to ``out``, batch norm after each, ReLU after the first two and after the residual sum.

    ``B x C_in x T x H x W`` -> ``B x C_out x T x H/stride x W/stride``; time is never strided.
    """

    def __init__(
        self, in_channels: int, inner: int, out_channels: int, temporal_kernel: int, stride: int = 1
    ):
        branch = nn.Sequential(
            OrderedDict(
                conv_a=nn.Conv3d(
                    in_channels,
                    inner,
                    (temporal_kernel, 1, 1),
                    padding=(temporal_kernel // 2, 0, 0),
                    bias=False,
                ),
                bn_a=nn.BatchNorm3d(inner),
                relu_a=nn.ReLU(),
                conv_b=nn.Conv3d(
                    inner, inner, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False
                ),
                bn_b=nn.BatchNorm3d(inner),
                relu_b=nn.ReLU(),
                conv_c=nn.Conv3d(inner, out_channels, 1, bias=False),
                bn_c=nn.BatchNorm3d(out_channels),
            )
        )
        super().__init__(branch, in_channels, out_channels, stride)


def res_stage(in_channels: int, inner: int, blocks: int, temporal_kernel: int, stride: int) -> nn.Sequential:
    """``blocks`` bottlenecks; the first changes the width and strides H and W by ``stride``."""
    out_channels = inner * BOTTLENECK_EXPANSION
    layers = [Bottleneck(in_channels, inner, out_channels, temporal_kernel, stride)]
    layers += [Bottleneck(out_channels, inner, out_channels, temporal_kernel) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class Stem(nn.Sequential):
    """conv1 (``Tx7x7``, stride 1x2x2), batch norm, ReLU, pool1 (1x3x3 max, stride 1x2x2): H and W / 4."""

    def __init__(self, in_channels: int, out_channels: int, temporal_kernel: int):
        super().__init__(
            nn.Conv3d(
                in_channels,
                out_channels,
                (temporal_kernel, 7, 7),
                stride=(1, 2, 2),
                padding=(temporal_kernel // 2, 3, 3),
                bias=False,
            ),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )


class Lateral(nn.Sequential):
    """Fast -> slow connection: a time-strided convolution (``k x 1 x 1``, stride ``alpha`` in T) to
    twice the fast width, batch norm, ReLU.

    ``B x C x T x H x W`` -> ``B x 2C x ceil(T / alpha) x H x W``: output step ``i`` is centred on
    fast frame ``i * alpha``, the frame the slow pathway took (``x[:, :, ::alpha]``), for any T.
    """

    def __init__(self, fast_channels: int, alpha: int, kernel: int):
        super().__init__(
            nn.Conv3d(
                fast_channels,
                2 * fast_channels,
                (kernel, 1, 1),
                stride=(alpha, 1, 1),
                padding=(kernel // 2, 0, 0),
                bias=False,
            ),
            nn.BatchNorm3d(2 * fast_channels),
            nn.ReLU(),
        )


class SlowFast(nn.Module):
    """SlowFast ResNet-50: slow and fast pathways with lateral connections, one clip in.

    Input ``B x C x T x H x W``; the slow pathway gets ``x[:, :, ::alpha]`` (``ceil(T / alpha)``
    frames), the fast pathway all T. Slow pathway widths 64 (stem), 256, 512, 1024, 2048 (res2-5);
    fast pathway widths ``beta`` (= 1 / ``beta_inv``) times those. After the stem (pool1), res2, res3
    and res4 a ``Lateral`` turns the fast features into ``2 beta C`` channels at the slow frame rate,
    concatenated to the slow ones. H and W shrink by 32 (224 -> 7), T is kept. ``features``:
    ``B x (2048 + 2048 beta)`` (2304 for beta 1/8), global average pools of both pathways concatenated;
    output ``B x K``. ``slow`` and ``fast`` hold each pathway's ``stem``, ``res2`` ... ``res5``;
    ``lateral`` holds the connections, keyed by the stage they follow.
    """

    def __init__(
        self,
        num_classes: int,
        alpha: int = 8,
        beta_inv: int = 8,
        lateral_kernel: int = 5,
        in_channels: int = 3,
        dropout: float = 0.5,
    ):
        super().__init__()
        require_positive(
            num_classes=num_classes,
            alpha=alpha,
            beta_inv=beta_inv,
            lateral_kernel=lateral_kernel,
            in_channels=in_channels,
        )
        if lateral_kernel % 2 == 0:
            raise BadArgumentError(
                f"lateral_kernel must be odd (centred on the slow frames), got {lateral_kernel}"
            )
        if STEM_WIDTH % beta_inv:
            raise BadArgumentError(f"beta_inv must divide the stem width {STEM_WIDTH}, got {beta_inv}")
        require_dropout(dropout)
        self.in_channels = in_channels
        self.alpha = alpha
        fast_in = STEM_WIDTH // beta_inv
        self.slow = nn.ModuleDict({"stem": Stem(in_channels, STEM_WIDTH, SLOW_TEMPORAL_KERNELS["stem"])})
        self.fast = nn.ModuleDict({"stem": Stem(in_channels, fast_in, FAST_TEMPORAL_KERNELS["stem"])})
        self.lateral = nn.ModuleDict({"stem": Lateral(fast_in, alpha, lateral_kernel)})
        slow_in = STEM_WIDTH + 2 * fast_in
        for index, (stage, inner, blocks) in enumerate(zip(RES_STAGES, INNER_WIDTHS, RESNET50_BLOCKS)):
            stride = 1 if index == 0 else 2
            self.slow[stage] = res_stage(slow_in, inner, blocks, SLOW_TEMPORAL_KERNELS[stage], stride)
            self.fast[stage] = res_stage(
                fast_in, inner // beta_inv, blocks, FAST_TEMPORAL_KERNELS[stage], stride
            )
            slow_out, fast_in = inner * BOTTLENECK_EXPANSION, inner * BOTTLENECK_EXPANSION // beta_inv
            if stage != RES_STAGES[-1]:
                self.lateral[stage] = Lateral(fast_in, alpha, lateral_kernel)
                slow_in = slow_out + 2 * fast_in
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(slow_out + fast_in, num_classes)
        init_he(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x 2304`` (slow 2048, then fast 256, for beta 1/8)."""
        check_clip(x, self.in_channels)
        slow, fast = x[:, :, :: self.alpha], x
        for stage in self.slow:
            slow, fast = self.slow[stage](slow), self.fast[stage](fast)
            if stage in self.lateral:
                slow = torch.cat([slow, self.lateral[stage](fast)], dim=1)
        return torch.cat([self.pool(slow).flatten(1), self.pool(fast).flatten(1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> logits ``B x K``."""
        return self.fc(self.dropout(self.features(x)))


@register_model(
    "slowfast_r50",
    default_input=SLOWFAST_INPUT,
    description="SlowFast ResNet-50: slow (every alpha-th frame) and fast (all frames, 1/8 width) pathways",
)
def slowfast_r50(
    num_classes: int, variant: str = "4x16", in_channels: int = 3, dropout: float = 0.5
) -> SlowFast:
    """``variant`` "4x16" (alpha 8: 4 slow frames of a 32-frame clip) or "8x8" (alpha 4: 8 of 32)."""
    if variant not in VARIANTS:
        raise BadArgumentError(f"unknown SlowFast variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return SlowFast(num_classes, **VARIANTS[variant], in_channels=in_channels, dropout=dropout)
