"""Inflating 2D networks into 3D ones (I3D): the constant-clip property, the API's checks, i3d_r50
against the published I3D R50 8x8, i3d_tower against single_frame, export and a short training run.

Expected numbers come from torchvision's and PyTorchVideo's model zoos or from hand arithmetic,
never from running our own code. The constant-clip property, exactly (docs/inflation.md):

- with temporal_padding="replicate", every output of the inflated network on a constant clip equals
  the 2D network's output on its frame;
- with zero temporal padding (I3D's), a frame t of a layer's output equals the 2D layer's output iff
  margin <= t < T' - margin, where the margin is the sum of K_t // 2 over the temporal convolutions on
  the longest path to that layer (one more frame per 3-frame convolution at time stride 1). A global
  pool over T mixes the border frames in, so the network's output is not the 2D one.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from conftest import assert_exports, recording
from torch import nn

from vidlearn.analysis import summarize
from vidlearn.errors import BadArgumentError
from vidlearn.models import create_model
from vidlearn.models.blocks import frame_encoder
from vidlearn.models.i3d import i3d_time_kernels
from vidlearn.models.inflation import ReplicateTimeConv3d, inflate, inflate_state_dict, inflate_weight
from vidlearn.models.resnet2d import resnet18, resnet50


def randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` in float64 and eval mode, with random biases and batch-norm statistics and affine
    parameters, so that no layer is the identity it is at initialisation."""
    generator = torch.Generator().manual_seed(seed)
    model = model.double().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.2)
            elif isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.2)
    return model


def constant_clip(frame: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``N x C x H x W`` -> ``N x C x T x H x W``: the frame repeated T times."""
    return frame.unsqueeze(2).expand(-1, -1, num_frames, -1, -1).contiguous()


def vgg_like() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    )


def grouped_net() -> nn.Sequential:
    """Biases, grouped and depthwise convolutions, strides, dilation, asymmetric and string paddings."""
    return nn.Sequential(
        nn.Conv2d(3, 12, 5, stride=2, padding=2),
        nn.BatchNorm2d(12),
        nn.ReLU(),
        nn.Conv2d(12, 12, 3, padding=2, dilation=2, groups=12),  # depthwise
        nn.ReLU(),
        nn.Conv2d(12, 24, (3, 1), stride=(1, 2), padding=(1, 0), groups=3),
        nn.ReLU(),
        nn.Conv2d(24, 24, 3, padding="same", dilation=2),
        nn.ReLU(),
        nn.Conv2d(24, 24, 2, padding="valid"),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(24, 5),
    )


def tower_classifier() -> nn.Sequential:
    """The project's 2D ConvTower frame classifier, as in single_frame."""
    return nn.Sequential(frame_encoder(3), nn.Linear(128, 5))


# name: (2D network, frame size, default K_t, time kernels by layer, T, {layer: margin}).
# Margins by hand: the sum of K_t // 2 over the temporal convolutions on the longest path to the layer.
INFLATION_CASES = {
    # Every convolution 3 x 3 x 3: one frame per convolution.
    "vgg_like": (vgg_like, 16, 3, None, 9, {"1": 1, "5": 2, "8": 3}),
    "tower": (
        tower_classifier,
        32,
        3,
        None,
        11,
        {"0.0.stem": 1, "0.0.block1": 2, "0.0.block2": 3, "0.0.block3": 4},
    ),
    # Conv "0" has time stride 2: 17 frames -> 9, of which 1-7 see no padding (margin 1); conv "5" is
    # 1 x 3 x 1 (no time), the others add one frame each: 2, 2, 3, 4 of the 9 frames.
    "grouped": (grouped_net, 24, 3, {"0": (3, 2), "5": 1}, 17, {"2": 1, "4": 2, "6": 2, "8": 3, "9": 4}),
    # Stem 3x7x7 (1), layer2.0's first conv (1 more), layer4.1's second conv (1 more); other convs 1 x K x K.
    "resnet18": (
        resnet18,
        32,
        1,
        {"conv1": 3, "layer2.0.conv1": 3, "layer4.1.conv2": 3},
        9,
        {"maxpool": 1, "layer1": 1, "layer2": 2, "layer3": 2, "layer4": 3},
    ),
    # Stem 5x7x7 (2), then one 3-frame convolution in layer1, layer3 and layer4.
    "resnet50": (
        resnet50,
        16,
        1,
        {"conv1": 5, "layer1.0.conv1": 3, "layer3.1.conv2": 3, "layer4.2.conv3": 3},
        11,
        {"maxpool": 2, "layer1": 3, "layer2": 3, "layer3": 4, "layer4": 5},
    ),
}


@pytest.fixture(scope="module")
def networks_2d() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: randomised(build()) for name, (build, *_rest) in INFLATION_CASES.items()}


# --- the constant-clip property ---------------------------------------------------------------


# ResNet-50 with replicate padding: test_an_imagenet_resnet50_inflates_into_i3d_r50.
@pytest.mark.parametrize("name", [name for name in INFLATION_CASES if name != "resnet50"])
def test_with_replicate_padding_a_constant_clip_gives_the_2d_output(name, networks_2d):
    # The same inflations as below, time strides included: every frame of every map stays the frame's.
    _, size, time_kernel, kernels, _, _ = INFLATION_CASES[name]
    model_2d = networks_2d[name]
    model_3d = inflate(model_2d, time_kernel, kernels, temporal_padding="replicate")
    frame = torch.randn(2, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model_3d(constant_clip(frame, 3)), model_2d(frame))


@pytest.mark.parametrize("name", list(INFLATION_CASES))
def test_with_zero_padding_exactly_the_frames_beyond_the_margin_give_the_2d_output(name, networks_2d):
    _, size, time_kernel, kernels, num_frames, margins = INFLATION_CASES[name]
    model_2d = networks_2d[name]
    model_3d = inflate(model_2d, time_kernel, kernels)
    frame = torch.randn(2, 3, size, size, dtype=torch.float64)
    with recording(model_2d, margins) as maps_2d, recording(model_3d, margins) as maps_3d, torch.no_grad():
        out_2d = model_2d(frame)
        out_3d = model_3d(constant_clip(frame, num_frames))
    for layer, margin in margins.items():
        map_2d, map_3d = maps_2d[layer], maps_3d[layer]
        length = map_3d.shape[2]
        for t in range(length):
            equal = torch.allclose(map_3d[:, :, t], map_2d, rtol=1e-9, atol=1e-9)
            assert equal == (margin <= t < length - margin), (layer, t, length)
    # Global pooling over T averages the border frames in: the clip's output is not the frame's.
    assert not torch.allclose(out_3d, out_2d, rtol=1e-6, atol=1e-6)


def test_inflate_leaves_its_input_untouched_and_converts_layer_by_layer():
    model_2d = vgg_like()
    before = {key: value.clone() for key, value in model_2d.state_dict().items()}
    model_3d = inflate(model_2d, 3)
    assert all(torch.equal(value, before[key]) for key, value in model_2d.state_dict().items())
    assert isinstance(model_2d[0], nn.Conv2d) and isinstance(model_3d[0], nn.Conv3d)
    conv = model_3d[0]
    assert (conv.kernel_size, conv.stride, conv.padding, conv.dilation) == (
        (3, 3, 3),
        (1, 1, 1),
        (1, 1, 1),
        (1, 1, 1),
    )
    assert model_3d[2].kernel_size == (1, 2, 2) and model_3d[2].stride == (1, 2, 2)  # MaxPool2d(2)
    assert model_3d[6].kernel_size == (1, 2, 2) and model_3d[6].stride == (1, 2, 2)  # AvgPool2d(2)
    assert model_3d[9].output_size == (1, 1, 1)  # AdaptiveMaxPool2d(1): all of T, H, W
    assert model_3d[11] is not model_2d[11] and torch.equal(
        model_3d[11].weight, model_2d[11].weight
    )  # Linear copied
    torch.testing.assert_close(model_3d[4].running_var, model_2d[4].running_var)
    grouped = inflate(grouped_net(), 5, {"0": (3, 2)})
    assert (
        grouped[0].kernel_size == (3, 5, 5)
        and grouped[0].stride == (2, 2, 2)
        and grouped[0].padding == (1, 2, 2)
    )
    assert grouped[3].groups == 12 and grouped[3].dilation == (1, 2, 2) and grouped[3].padding == (2, 2, 2)
    assert grouped[7].padding == (2, 2, 2)  # "same" with dilation 2: 2 in H and W, K_t // 2 in time
    assert grouped[9].padding == (2, 0, 0)  # "valid"
    conv = nn.Conv2d(4, 4, 3, padding=1)
    shared = inflate(nn.Sequential(conv, nn.ReLU(), conv))  # one layer applied twice stays one layer
    assert isinstance(shared[0], nn.Conv3d) and shared[2] is shared[0]


def test_inflate_weight_repeats_the_kernel_over_time_divided_by_kt():
    weight = torch.arange(8.0).reshape(2, 1, 2, 2)
    inflated = inflate_weight(weight, 4)
    assert inflated.shape == (2, 1, 4, 2, 2)
    for t in range(4):
        assert torch.equal(inflated[:, :, t], weight / 4)
    with pytest.raises(BadArgumentError, match="O x I x K_h x K_w"):
        inflate_weight(torch.zeros(2, 1, 3), 3)
    with pytest.raises(BadArgumentError, match="positive integer"):
        inflate_weight(weight, 0)


def test_frozen_layers_and_eval_mode_carry_over_and_plain_subclasses_inflate():
    class DefaultConv(nn.Conv2d):  # a subclass that only sets defaults computes what Conv2d computes
        def __init__(self, c_in, c_out):
            super().__init__(c_in, c_out, 3, padding=1)

    model_2d = nn.Sequential(DefaultConv(3, 4), nn.BatchNorm2d(4), nn.Dropout2d(0.2)).eval()
    model_2d[1].weight.requires_grad_(False)
    model_3d = inflate(model_2d)
    assert type(model_3d[0]) is nn.Conv3d and isinstance(model_3d[2], nn.Dropout3d)
    assert not model_3d[1].weight.requires_grad and model_3d[1].bias.requires_grad
    assert not any(module.training for module in model_3d.modules())
    replicate = inflate(model_2d, 5, temporal_padding="replicate")[0]
    assert (
        isinstance(replicate, ReplicateTimeConv3d)
        and replicate.padding == (0, 1, 1)
        and replicate.time_padding == 2
    )


class CustomForwardConv(nn.Conv2d):
    def forward(self, x):
        return super().forward(x).flip(-1)


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        (nn.Sequential(CustomForwardConv(3, 4, 3)), {}, "overrides forward"),
        (nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")), {}, "padding_mode='reflect'"),
        (nn.Sequential(nn.Conv2d(3, 4, 2, padding="same")), {}, "even kernel"),
        (nn.Sequential(nn.ConvTranspose2d(3, 4, 3)), {}, "ConvTranspose2d"),
        (nn.Sequential(nn.InstanceNorm2d(3)), {}, "InstanceNorm2d"),
        (nn.Sequential(nn.Upsample(scale_factor=2)), {}, "Upsample"),
        (nn.Sequential(nn.MaxPool2d(2, return_indices=True)), {}, "return_indices"),
        (nn.Sequential(nn.Conv2d(3, 4, 3)), {"time_kernel": 2}, "must be odd"),
        (nn.Sequential(nn.Conv2d(3, 4, 3)), {"time_kernels": {"0": (3, 0)}}, "time stride"),
        (nn.Sequential(nn.Conv2d(3, 4, 3)), {"time_kernels": {"conv9": 3}}, "'conv9'.*Conv2d layers are: 0"),
        (nn.Sequential(nn.Conv2d(3, 4, 3)), {"time_kernels": lambda name, conv: "3"}, "time kernel of 0"),
        (nn.Sequential(nn.Conv2d(3, 4, 3)), {"temporal_padding": "reflect"}, "temporal_padding"),
    ],
)
def test_what_inflate_cannot_convert_is_rejected_with_a_clear_message(model, options, message):
    with pytest.raises(BadArgumentError, match=message):
        inflate(model, **options)


# --- inflate_state_dict ---------------------------------------------------------------------


def test_inflate_state_dict_maps_a_2d_checkpoint_onto_the_inflated_architecture():
    trained_2d = randomised(resnet18(num_classes=10), seed=1).float()
    kernels = {"conv1": 5, "layer3.0.conv2": (3, 2)}
    fresh_3d = inflate(resnet18(num_classes=10), 3, kernels)
    state = inflate_state_dict(trained_2d.state_dict(), fresh_3d)
    fresh_3d.load_state_dict(state)  # strict: every key, every shape
    expected = inflate(trained_2d, 3, kernels).state_dict()
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    assert state["conv1.weight"].shape == (64, 3, 5, 7, 7)


def small_classifier(num_classes: int) -> nn.Sequential:
    layers = dict(
        conv=nn.Conv2d(3, 8, 3), bn=nn.BatchNorm2d(8), pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten()
    )
    return nn.Sequential(OrderedDict(**layers, fc=nn.Linear(8, num_classes)))


def test_inflate_state_dict_reports_missing_unexpected_and_mismatched_keys():
    model_3d = inflate(small_classifier(10), 3)
    state = small_classifier(10).state_dict()
    with pytest.raises(
        BadArgumentError, match=r"1 keys of the 3D model are not in the 2D state dict: fc\.bias"
    ):
        inflate_state_dict({k: v for k, v in state.items() if k != "fc.bias"}, model_3d)
    with pytest.raises(BadArgumentError, match=r"not in the 3D model: head\.weight"):
        inflate_state_dict({**state, "head.weight": torch.zeros(1)}, model_3d)
    other_classes = small_classifier(1000).state_dict()
    with pytest.raises(BadArgumentError, match=r"fc\.weight has shape \(1000, 8\).*\(10, 8\).*exclude"):
        inflate_state_dict(other_classes, model_3d)
    # A new classifier for other classes: leave it out and load the rest.
    partial = inflate_state_dict(other_classes, model_3d, exclude=("fc.",))
    assert not any(key.startswith("fc.") for key in partial)
    assert model_3d.load_state_dict(partial, strict=False).missing_keys == ["fc.weight", "fc.bias"]


# --- 2D ResNets --------------------------------------------------------------------------------

# torchvision's model card (1000 ImageNet classes): parameters and GFLOPS (multiply-adds) at 224 x 224.
TORCHVISION = {"resnet18": (resnet18, 11_689_512, 1.81), "resnet50": (resnet50, 25_557_032, 4.09)}


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_2d_resnets_match_torchvision_parameters_and_flops(name):
    build, params, gflops = TORCHVISION[name]
    with torch.device("meta"):
        model = build()
        assert sum(p.numel() for p in model.parameters()) == params
        # Inflated with K_t = 1, a one-frame clip costs exactly what the image costs.
        summary = summarize(inflate(model, 1), (3, 1, 224, 224), receptive_fields=False)
    assert round(summary.total_flops / 1e9, 2) == gflops


def test_2d_resnet_uses_torchvision_keys_and_v1_5_strides():
    with torch.device("meta"):
        state = resnet50().state_dict()
        model = resnet50()
    # Shapes of torchvision's resnet50 state dict, by hand: widths 64-128-256-512, expansion 4.
    expected = {
        "conv1.weight": (64, 3, 7, 7),
        "bn1.running_mean": (64,),
        "layer1.0.conv1.weight": (64, 64, 1, 1),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer2.0.conv2.weight": (128, 128, 3, 3),
        "layer3.5.bn3.num_batches_tracked": (),
        "layer4.2.conv3.weight": (2048, 512, 1, 1),
        "fc.weight": (1000, 2048),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    assert model.layer2[0].conv1.stride == (1, 1) and model.layer2[0].conv2.stride == (2, 2)  # v1.5
    assert not hasattr(model, "layer5") and len(model.layer3) == 6


# --- i3d_r50 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def i3d_meta() -> nn.Module:
    with torch.device("meta"):
        return create_model("i3d_r50", num_classes=400)


def test_i3d_r50_parameters_match_the_published_count(i3d_meta):
    params = sum(p.numel() for p in i3d_meta.parameters())
    assert round(params / 1e6, 2) == 28.04  # PyTorchVideo model zoo, Kinetics-400, I3D R50 8x8
    # By hand: torchvision's ResNet-50 with 400 classes instead of 1000, plus the extra time taps
    # (K_t - 1) x 2D weights of the inflated convolutions (PySlowFast's "i3d" kernels):
    # stem 5x7x7: 4 x 64*3*49; res2 (3 3 3): 2 x (64*64 + 2 * 256*64); res3 (3 1 3 1): 2 x (256*128 + 512*128);
    # res4 (3 1 3 1 3 1): 2 x (512*256 + 2 * 1024*256); res5 (1 3 1): 2 x 2048*512.
    extra = 4 * 64 * 3 * 49 + 2 * (64 * 64 + 2 * 256 * 64) + 2 * (256 * 128 + 512 * 128)
    extra += 2 * (512 * 256 + 2 * 1024 * 256) + 2 * 2048 * 512
    assert params == 25_557_032 - 600 * (2048 + 1) + extra


def test_i3d_r50_flops_match_the_published_cost(i3d_meta):
    # PyTorchVideo's model zoo: 37.53 GFLOPs per view for I3D R50 8x8; a view is one of the 3 test
    # crops of 256 x 256 (the 224 x 224 training size costs about (224/256)^2 of it). Their counter
    # (fvcore) also counts batch norms; convolutions and the classifier alone are about 1% below.
    summary = summarize(i3d_meta, (3, 8, 256, 256), receptive_fields=False)
    assert summary.total_params == 28_043_472
    assert summary.total_flops == pytest.approx(37.53e9, rel=0.02)


def test_i3d_r50_has_pyslowfasts_time_kernels_and_temporal_pool(i3d_meta):
    # PySlowFast _TEMPORAL_KERNEL_BASIS["i3d"]: stem 5; block b of a stage gets pattern[b % len]:
    # res2 [3], res3 [3, 1], res4 [3, 1], res5 [1, 3], on the block's first (1x1) convolution.
    kernels = {"conv1": 5}
    for stage, pattern, blocks in zip((1, 2, 3, 4), ([3], [3, 1], [3, 1], [1, 3]), (3, 4, 6, 3)):
        kernels.update({f"layer{stage}.{b}.conv1": pattern[b % len(pattern)] for b in range(blocks)})
    with torch.device("meta"):
        assert i3d_time_kernels(resnet50()) == kernels
        torchvision_keys = resnet50(num_classes=400).state_dict().keys()
    modules = dict(i3d_meta.named_modules())
    for name, module in modules.items():
        if isinstance(module, nn.Conv3d):
            time_kernel = kernels.get(name, 1)
            assert module.kernel_size[0] == time_kernel and module.padding[0] == time_kernel // 2, name
            assert module.stride[0] == 1, name
    assert i3d_meta.conv1.weight.shape == (64, 3, 5, 7, 7)
    with recording(i3d_meta, ["layer1", "temporal_pool", "layer4"]) as out:
        i3d_meta(torch.empty(1, 3, 8, 224, 224, device="meta"))
    assert out["layer1"].shape[1:] == (256, 8, 56, 56)
    assert out["temporal_pool"].shape[1:] == (256, 4, 56, 56)  # _POOL1["i3d"] = [2, 1, 1]
    assert out["layer4"].shape[1:] == (2048, 4, 7, 7)
    assert i3d_meta.state_dict().keys() == torchvision_keys


def test_an_imagenet_resnet50_inflates_into_i3d_r50(networks_2d):
    imagenet = networks_2d["resnet50"]  # random weights and statistics stand in for torchvision's
    model = create_model("i3d_r50", num_classes=1000, temporal_padding="replicate").double().eval()
    model.load_state_dict(inflate_state_dict(imagenet.state_dict(), model))
    frame = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        # Replicate padding and a max pool over equal frames: the clip's logits are the image's.
        torch.testing.assert_close(model(constant_clip(frame, 2)), imagenet(frame))


def test_i3d_r50_rejects_bad_options_and_single_frames(i3d_meta):
    with pytest.raises(BadArgumentError, match="at least 2 frames"):
        i3d_meta(torch.empty(1, 3, 1, 224, 224, device="meta"))
    with pytest.raises(BadArgumentError, match="dropout"):
        create_model("i3d_r50", num_classes=3, dropout=1.5)
    with pytest.raises(BadArgumentError, match="temporal_padding"):
        create_model("i3d_tower", num_classes=3, temporal_padding="circular")


# --- i3d_tower: single_frame inflated ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained_single_frame() -> nn.Module:
    """A single_frame model with random weights and batch-norm statistics, as training leaves them."""
    torch.manual_seed(3)
    model = create_model("single_frame", num_classes=6)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return randomised(model, seed=3)


def test_i3d_tower_has_single_frames_parameter_names_and_sizes():
    # The tower's parameters, inflated: 3 x 3 x 3 kernels, 3 times the 3 x 3 weights; the same head.
    single, tower = create_model("single_frame", num_classes=101), create_model("i3d_tower", num_classes=101)
    assert single.state_dict().keys() == tower.state_dict().keys()
    assert tower.state_dict()["encoder.0.stem.0.weight"].shape == (16, 3, 3, 3, 3)
    widths = (3, 16, 32, 64, 128)
    convs = sum(c_in * c_out * 9 for c_in, c_out in zip(widths, widths[1:]))
    batch_norms, head = 2 * sum(widths[1:]), 128 * 101 + 101
    assert sum(p.numel() for p in single.parameters()) == convs + batch_norms + head
    assert sum(p.numel() for p in tower.parameters()) == 3 * convs + batch_norms + head


def test_inflated_single_frame_predicts_what_single_frame_predicts_on_a_constant_clip(trained_single_frame):
    # single_frame's log mean_t softmax over T equal frames is the frame's log softmax.
    frame = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    tower = create_model("i3d_tower", num_classes=6, temporal_padding="replicate").double().eval()
    tower.load_state_dict(inflate_state_dict(trained_single_frame.state_dict(), tower))
    with torch.no_grad():
        for num_frames in (1, 5):
            clip = constant_clip(frame, num_frames)
            torch.testing.assert_close(tower(clip).log_softmax(-1), trained_single_frame(clip))
            torch.testing.assert_close(tower.features(clip), trained_single_frame.features(clip))


def test_with_i3ds_zero_padding_only_the_central_frames_match_single_frame(trained_single_frame):
    # Four 3x3x3 convolutions: frames 4 .. T-5 of the tower's last map see no padding.
    num_frames = 11
    frame = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    clip = constant_clip(frame, num_frames)
    tower = create_model("i3d_tower", num_classes=6).double().eval()
    tower.load_state_dict(inflate_state_dict(trained_single_frame.state_dict(), tower))
    with recording(tower, ["encoder.0"]) as maps_3d, torch.no_grad():
        logits = tower(clip)
    with recording(trained_single_frame, ["encoder.0"]) as maps_2d, torch.no_grad():
        expected = trained_single_frame(clip)
    frame_map = maps_2d["encoder.0"][::num_frames]  # single_frame folds time into the batch: (b t)
    for t in range(num_frames):
        equal = torch.allclose(maps_3d["encoder.0"][:, :, t], frame_map, rtol=1e-9, atol=1e-9)
        assert equal == (4 <= t < num_frames - 4), t
    assert not torch.allclose(logits.log_softmax(-1), expected, rtol=1e-6, atol=1e-6)


# --- export and training -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "clip_shape"),
    [
        ("i3d_tower", {}, (1, 3, 4, 32, 32)),
        ("i3d_tower", {"temporal_padding": "replicate"}, (1, 3, 4, 32, 32)),
        ("i3d_r50", {}, (1, 3, 4, 32, 32)),
    ],
)
def test_export_round_trips_through_torch_export_and_onnx(name, options, clip_shape, tmp_path):
    torch.manual_seed(0)
    assert_exports(create_model(name, num_classes=7, **options).eval(), torch.randn(*clip_shape), tmp_path)


def test_i3d_tower_learns_a_small_separable_problem():
    # Three classes of noise clips; class k is brighter in channel k, more so as time goes on.
    generator = torch.Generator().manual_seed(0)

    def clips(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % 3
        x = torch.randn(n, 3, 4, 16, 16, generator=generator)
        ramp = torch.linspace(0.25, 1.0, 4).view(1, 4, 1, 1)
        x[torch.arange(n), labels] += ramp
        return x, labels

    torch.manual_seed(0)
    model = create_model("i3d_tower", num_classes=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, labels = clips(24)
    for _ in range(15):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), labels).backward()
        optimizer.step()
    test_x, test_labels = clips(60)
    with torch.no_grad():
        accuracy = (model.eval()(test_x).argmax(-1) == test_labels).float().mean().item()
    assert accuracy > 2 * (1 / 3), accuracy  # chance is 1/3


def test_inflate_is_a_function_of_the_models_package():
    from vidlearn.models import inflate

    model_3d = inflate(small_classifier(4))
    assert isinstance(model_3d.conv, nn.Conv3d)
    assert model_3d(torch.randn(2, 3, 5, 8, 8)).shape == (2, 4)
