"""Non-local blocks: spatio-temporal self-attention inside a 3D CNN (Wang et al., "Non-local Neural
Networks", CVPR 2018).

The course: a non-local block lets every position of a ``C x T x H x W`` feature map attend to every
other, across all frames, and it can be added into existing 3D CNN architectures. Its output layer
is initialised so that the block computes the identity, so inserting it leaves a trained network's
outputs unchanged until training moves it.

``NonLocalBlock`` is the paper's embedded Gaussian version; ``insert_non_local`` puts blocks after
named stages of a 3D CNN; ``r3d_18_nl`` and ``slow_fusion_nl`` are registered examples.
"""

from __future__ import annotations

import copy

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import require_positive
from vidlearn.models.fusion import FUSION_INPUT, slow_fusion
from vidlearn.models.registry import register_model
from vidlearn.models.resnet3d import RESNET3D_INPUT, r3d_18


class NonLocalBlock(nn.Module):
    """Embedded Gaussian non-local block: ``z = x + BN(W_z y)``, ``y_i = sum_j softmax_j(theta_i . phi_j) g_j``.

    ``x``: ``B x channels x T x H x W``, and so is ``z``. ``theta``, ``phi`` and ``g`` are 1x1x1
    convolutions to ``inner_channels`` (default ``channels // 2``, as in the paper); ``i`` runs over
    all ``T*H*W`` positions and ``j`` over all positions of ``phi`` and ``g``, which with
    ``subsample=True`` are max-pooled 1x2x2 (H and W halved, rounded up; the paper's subsampling,
    4x fewer pairs). The embedded Gaussian's softmax has no ``1/sqrt(d)`` scale. ``W_z`` is a 1x1x1
    convolution back to ``channels``, followed by batch norm whose scale (gamma) starts at zero, so
    a new block is the identity.
    """

    def __init__(self, channels: int, inner_channels: int | None = None, subsample: bool = True):
        super().__init__()
        inner_channels = channels // 2 if inner_channels is None else inner_channels
        require_positive(channels=channels, inner_channels=inner_channels)
        self.theta = nn.Conv3d(channels, inner_channels, 1)
        self.phi = nn.Conv3d(channels, inner_channels, 1)
        self.g = nn.Conv3d(channels, inner_channels, 1)
        self.subsample = nn.MaxPool3d((1, 2, 2), ceil_mode=True) if subsample else nn.Identity()
        # No bias: the batch norm right after it has one.
        self.out = nn.Sequential(nn.Conv3d(inner_channels, channels, 1, bias=False), nn.BatchNorm3d(channels))
        nn.init.zeros_(self.out[1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x C x T x H x W`` -> ``B x C x T x H x W``."""
        # One attention head: the ONNX exporter's attention takes B x heads x positions x channels.
        queries = rearrange(self.theta(x), "b c t h w -> b 1 (t h w) c")
        keys = rearrange(self.subsample(self.phi(x)), "b c t h w -> b 1 (t h w) c")
        values = rearrange(self.subsample(self.g(x)), "b c t h w -> b 1 (t h w) c")
        response = F.scaled_dot_product_attention(queries, keys, values, scale=1.0)
        response = rearrange(response, "b 1 (t h w) c -> b c t h w", t=x.shape[2], h=x.shape[3], w=x.shape[4])
        return x + self.out(response)


def insert_non_local(
    model: nn.Module,
    after: tuple[str, ...] | str = ("layer2", "layer3"),
    probe_shape: tuple[int, int, int, int] | None = None,
) -> nn.Module:
    """Put a ``NonLocalBlock`` after each stage named in ``after``; changes ``model`` and returns it.

    A name is a child module of ``model`` (``"layer2"``) or a dotted path to a deeper one
    (``"backbone.block3"``); its output must be ``B x C x T x H x W``. The channel counts come from
    one forward of a meta-device copy on a ``probe_shape`` clip (default
    ``(model.in_channels, 16, 112, 112)``): nothing is computed. A stage that is an ``nn.Sequential``
    gets the block appended, so its existing parameter names stay valid; any other stage is
    replaced by ``nn.Sequential(stage, block)``. To start from a trained network, load its weights
    first and insert the blocks after: they start as the identity.
    """
    if isinstance(after, str):
        after = (after,)
    stages = {name: _find_stage(model, name) for name in after}
    channels = _stage_channels(
        model, list(stages), probe_shape or (getattr(model, "in_channels", 3), 16, 112, 112)
    )
    for name, (parent, child_name) in stages.items():
        stage = getattr(parent, child_name)
        block = NonLocalBlock(channels[name])
        if isinstance(stage, nn.Sequential):
            stage.append(block)
        else:
            setattr(parent, child_name, nn.Sequential(stage, block))
    return model


def _find_stage(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The parent module of the stage called ``name`` and the stage's name in it."""
    parent_name, _, child_name = name.rpartition(".")
    try:
        parent = model.get_submodule(parent_name)
    except AttributeError:
        parent, parent_name = model, ""
    children = [child for child, _ in parent.named_children()]
    if child_name not in children:
        prefix = f"{parent_name}." if parent_name else ""
        raise BadArgumentError(
            f"{type(model).__name__} has no stage {name!r} to put a non-local block after; "
            f"valid names: {', '.join(prefix + child for child in children)}"
        )
    return parent, child_name


def _stage_channels(model: nn.Module, names: list[str], probe_shape: tuple[int, ...]) -> dict[str, int]:
    """Output channels of the named stages, from one forward of a meta-device copy of ``model``."""
    probe = copy.deepcopy(model).to("meta")
    shapes: dict[str, tuple[int, ...]] = {}
    for name in names:
        probe.get_submodule(name).register_forward_hook(
            lambda _module, _inputs, out, name=name: shapes.__setitem__(name, tuple(out.shape))
        )
    with torch.no_grad():
        probe(torch.empty(1, *probe_shape, device="meta"))
    for name in names:
        shape = shapes.get(name)
        if shape is None or len(shape) != 5:
            raise BadArgumentError(
                f"stage {name!r} gives {'no output' if shape is None else f'shape {shape}'} in the model's "
                "forward; a non-local block needs its B x C x T x H x W feature maps"
            )
    return {name: shapes[name][1] for name in names}


@register_model(
    "r3d_18_nl",
    default_input=RESNET3D_INPUT,
    description="R3D-18 with Wang 2018 non-local (spatio-temporal self-attention) blocks after layer2 and layer3",
)
def r3d_18_nl(num_classes: int, in_channels: int = 3) -> nn.Module:
    return insert_non_local(r3d_18(num_classes, in_channels), after=("layer2", "layer3"))


@register_model(
    "slow_fusion_nl",
    default_input=FUSION_INPUT,
    description="slow_fusion with a Wang 2018 non-local block after its last conv stage",
)
def slow_fusion_nl(num_classes: int, in_channels: int = 3) -> nn.Module:
    return insert_non_local(slow_fusion(num_classes, in_channels), after=("backbone.block3",))
