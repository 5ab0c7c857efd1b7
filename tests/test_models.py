"""The course's classification models: shapes, the course's tables, parameter counts, export, training.

Expected numbers come from the lecture's tables (course networks, C3D), from hand arithmetic, or from
torchvision's published parameter counts; never from running our own code.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import pytest
import torch
from conftest import recording
from einops import rearrange
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.models import C3D, create_model, list_models, model_info

FUSION_MODELS = ["single_frame", "late_fusion_fc", "late_fusion_pool", "early_fusion", "slow_fusion", "fovea"]
COURSE_MODELS = ["course_late", "course_early", "course_3d"]
RESNETS = ["r3d_18", "mc3_18", "r2plus1d_18"]
ALL_MODELS = FUSION_MODELS + COURSE_MODELS + RESNETS + ["c3d", "c3d_small"]

# Feature sizes: the towers' last width (128), the MLP/FC hidden width (256), the course's 24,
# ResNet's 512 and C3D's fc7 (4096).
FEATURE_DIM = {
    "single_frame": 128,
    "late_fusion_fc": 256,
    "late_fusion_pool": 128,
    "early_fusion": 128,
    "slow_fusion": 128,
    "fovea": 256,
    "course_late": 24,
    "course_early": 24,
    "course_3d": 24,
    "r3d_18": 512,
    "mc3_18": 512,
    "r2plus1d_18": 512,
    "c3d": 4096,
    "c3d_small": 256,
}

# Clip sizes (T, H, W) each architecture allows; the first is small enough to run (export and
# training tests). The large models' sizes are checked on the meta device. C3D only takes clips
# whose pool5 is 1 x 4 x 4 (T 16-31, H and W 96-127).
CLIP_SIZES = {
    "single_frame": [(1, 32, 32), (5, 48, 64)],
    "late_fusion_fc": [(3, 32, 32), (5, 48, 64)],
    "late_fusion_pool": [(1, 32, 32), (5, 48, 64)],
    "early_fusion": [(1, 32, 32), (6, 48, 64)],
    "slow_fusion": [(4, 32, 32), (7, 48, 64), (16, 16, 16)],
    "fovea": [(1, 32, 32), (5, 48, 64)],
    "course_late": [(3, 16, 24), (20, 64, 64)],
    "course_early": [(5, 16, 24), (20, 64, 64)],
    "course_3d": [(4, 16, 24), (20, 64, 64)],
    "r3d_18": [(1, 32, 32), (8, 128, 171), (16, 112, 112)],
    "mc3_18": [(1, 32, 32), (8, 128, 171), (16, 112, 112)],
    "r2plus1d_18": [(1, 32, 32), (8, 128, 171), (16, 112, 112)],
    "c3d": [(16, 112, 112), (31, 96, 127)],
    "c3d_small": [(16, 32, 32), (16, 64, 64)],
}


def options_for(name: str, t: int, h: int, w: int) -> dict:
    """Builder options for models whose layers depend on T (and, for late_fusion_fc, on H x W)."""
    if name in ("late_fusion_fc", "c3d_small"):
        return {"num_frames": t, "frame_size": (h, w)}
    if name in ("early_fusion", "course_early"):
        return {"num_frames": t}
    return {}


@pytest.fixture(scope="module")
def big_models() -> dict[str, nn.Module]:
    """The large models, built once: ResNets with Kinetics-400's 400 classes, C3D with UCF101's 101."""
    torch.manual_seed(0)
    models = {name: create_model(name, num_classes=400).eval() for name in RESNETS}
    models["c3d"] = create_model("c3d", num_classes=101).eval()
    return models


# --- registry -------------------------------------------------------------------------------


def test_c3d_small_is_c3d_at_an_eighth_of_the_width():
    small = create_model("c3d_small", num_classes=10, num_frames=16, frame_size=(64, 64))
    widths = [m.out_channels for m in small.convs if isinstance(m, torch.nn.Conv3d)]
    assert widths == [8, 16, 32, 32, 64, 64, 64, 64]  # 64, 128, 256, 256, 512, 512, 512, 512 / 8
    # 64 x 16 x 64 x 64 -> pools 1x2x2 then 2x2x2 four times (pool5 padded in H, W) -> 64 x 1 x 3 x 3
    assert small.pool5_shape == (64, 1, 3, 3)
    assert small.fc6[0].in_features == 64 * 9 and small.fc7[0].out_features == 256


def test_c3d_small_fc_relus_cannot_all_die():
    """fc6 weights drifted negative (what training did to c3d_small before fc6/fc7 were normalised:
    0.4% of the ReLUs active): pool5's non-negative features then give only negative pre-activations,
    yet the normalisation keeps about half of fc6's ReLUs active."""
    small = create_model("c3d_small", num_classes=10).eval()
    with torch.no_grad():
        small.fc6[0].weight.copy_(-small.fc6[0].weight.abs())
        pooled = small.convs(torch.randn(4, 3, 16, 64, 64)).flatten(1)
        assert (small.fc6[0](pooled) < 0).all()
        active = (small.fc6(pooled) > 0).float().mean().item()
    assert 0.3 < active < 0.7, active


def test_every_model_is_registered_with_its_default_input():
    # Other families (long-range CNNs, transformers, motion) list theirs in their own test files.
    assert set(ALL_MODELS) <= set(list_models())
    assert model_info("c3d").default_input == (3, 16, 112, 112)
    for name in COURSE_MODELS:
        assert model_info(name).default_input == (3, 20, 64, 64)
    assert model_info("course_early").options["num_frames"] == 20
    assert model_info("early_fusion").options["num_frames"] == model_info("early_fusion").default_input[1]
    for name in list_models():
        assert model_info(name).description


def test_unknown_model_name_lists_the_valid_names():
    with pytest.raises(BadArgumentError) as err:
        create_model("resnet9000", num_classes=3)
    message = str(err.value)
    assert "resnet9000" in message
    assert all(name in message for name in ALL_MODELS)
    with pytest.raises(BadArgumentError):
        model_info("resnet9000")


def test_bad_options_are_reported():
    with pytest.raises(BadArgumentError, match="num_frames"):
        create_model("slow_fusion", num_classes=3, num_frames=8)  # slow fusion takes any T
    with pytest.raises(BadArgumentError, match="num_classes"):
        create_model("single_frame", num_classes=0)
    with pytest.raises(BadArgumentError, match="num_frames"):
        create_model("early_fusion", num_classes=3, num_frames=0)


def test_every_model_takes_its_default_input():
    # On the meta device: shapes are propagated, nothing is computed. Every registered model.
    for name in list_models():
        with torch.device("meta"):
            model = create_model(name, num_classes=5)
        out = model(torch.empty(1, *model_info(name).default_input, device="meta"))
        assert out.shape == (1, 5), name


# --- shapes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUSION_MODELS + COURSE_MODELS)
def test_output_and_feature_shapes_over_clip_sizes(name):
    for t, h, w in CLIP_SIZES[name]:
        model = create_model(name, num_classes=7, **options_for(name, t, h, w)).eval()
        x = torch.randn(2, 3, t, h, w)
        with torch.no_grad():
            assert model(x).shape == (2, 7), (name, t, h, w)
            assert model.features(x).shape == (2, FEATURE_DIM[name]), (name, t, h, w)


@pytest.mark.parametrize("name", RESNETS + ["c3d"])
def test_large_model_shapes_over_clip_sizes_on_the_meta_device(name):
    # The large models' arithmetic is exercised by the export and training tests; here only shapes.
    with torch.device("meta"):
        model = create_model(name, num_classes=101)
    for t, h, w in CLIP_SIZES[name]:
        x = torch.empty(2, 3, t, h, w, device="meta")
        assert model(x).shape == (2, 101), (name, t, h, w)
        assert model.features(x).shape == (2, FEATURE_DIM[name]), (name, t, h, w)


def test_c3d_rejects_clips_of_other_sizes():
    with torch.device("meta"):
        model = C3D(num_classes=101)
    for too_small in ((16, 64, 64), (8, 112, 112)):
        with pytest.raises(BadArgumentError, match="pool5"):
            model(torch.empty(1, 3, *too_small, device="meta"))


def test_inputs_that_are_not_float_clips_are_rejected():
    model = create_model("slow_fusion", num_classes=3)
    with pytest.raises(BadArgumentError, match="B x 3 x T x H x W"):
        model(torch.zeros(1, 3, 8, 32, 32, dtype=torch.uint8))
    with pytest.raises(BadArgumentError, match="B x 3 x T x H x W"):
        model(torch.zeros(8, 32, 32, 3))


def test_fixed_size_models_reject_other_sizes():
    early = create_model("early_fusion", num_classes=3, num_frames=4)
    with pytest.raises(BadArgumentError, match="num_frames=6"):
        early(torch.randn(1, 3, 6, 32, 32))
    late = create_model("late_fusion_fc", num_classes=3, num_frames=4, frame_size=32)
    with pytest.raises(BadArgumentError, match="frame_size"):
        late(torch.randn(1, 3, 4, 64, 64))


# --- the course's small networks ------------------------------------------------------------

# The lecture's table "Early Fusion vs Late Fusion vs 3D CNN": size (C x T x H x W) after each layer
# for a 3 x 20 x 64 x 64 input. (Its 3D GlobalAvgPool row prints 24 x 1 x 1; time is pooled too, so
# the 5D output is 24 x 1 x 1 x 1, as in the late-fusion row.)
COURSE_TABLE = {
    "course_late": {
        "backbone.conv1": (12, 20, 64, 64),
        "backbone.pool": (12, 20, 16, 16),
        "backbone.conv2": (24, 20, 16, 16),
        "pool": (24, 1, 1, 1),
    },
    "course_early": {
        "backbone.conv1": (12, 64, 64),
        "backbone.pool": (12, 16, 16),
        "backbone.conv2": (24, 16, 16),
        "pool": (24, 1, 1),
    },
    "course_3d": {
        "backbone.conv1": (12, 20, 64, 64),
        "backbone.pool": (12, 5, 16, 16),
        "backbone.conv2": (24, 5, 16, 16),
        "pool": (24, 1, 1, 1),
    },
}


@pytest.mark.parametrize("name", COURSE_MODELS)
def test_course_networks_match_the_lecture_table(name):
    model = create_model(name, num_classes=10).eval()
    with recording(model, COURSE_TABLE[name]) as outputs, torch.no_grad():
        model(torch.randn(1, 3, 20, 64, 64))
    for layer, size in COURSE_TABLE[name].items():
        out = outputs[layer]
        if name == "course_late" and layer.startswith("backbone"):
            # The per-frame 2D layers see time folded into the batch: (B*T) x C x H x W.
            out = rearrange(out, "(b t) c h w -> b c t h w", b=1)
        assert tuple(out.shape[1:]) == size, (name, layer)


def test_course_networks_parameter_counts_by_hand():
    # Conv 3x3 (3 -> 12), Conv 3x3 (12 -> 24), Linear 24 -> 10, each with biases.
    head = 24 * 10 + 10
    assert (
        _params(create_model("course_late", num_classes=10)) == (3 * 9 * 12 + 12) + (12 * 9 * 24 + 24) + head
    )
    # Early fusion's first conv takes 3 * 20 channels.
    assert (
        _params(create_model("course_early", num_classes=10))
        == (60 * 9 * 12 + 12) + (12 * 9 * 24 + 24) + head
    )
    # 3D kernels are 3x3x3.
    assert (
        _params(create_model("course_3d", num_classes=10)) == (3 * 27 * 12 + 12) + (12 * 27 * 24 + 24) + head
    )


# Receptive field (T x H x W) after the second convolution, from the lecture's table.
COURSE_RECEPTIVE_FIELDS = {
    "course_late": (1, 14, 14),
    "course_early": (20, 14, 14),
    "course_3d": (14, 14, 14),
}


def conv2_unit(name: str, out: torch.Tensor) -> torch.Tensor:
    """One interior unit of conv2's output per sample: frame 10 (late), time step 2 (3D), position (8, 8)."""
    if name == "course_late":
        return rearrange(out, "(b t) c h w -> b t c h w", t=20)[:, 10, 0, 8, 8]
    if name == "course_early":
        return out[:, 0, 8, 8]
    return out[:, 0, 2, 8, 8]


@pytest.mark.parametrize("name", COURSE_MODELS)
def test_course_receptive_fields_by_perturbation(name):
    # With all conv weights 1 and biases 0, a zero clip gives zero everywhere and a +1 at one input
    # voxel makes a conv2 unit positive exactly when the voxel is inside the unit's receptive field
    # (ReLUs pass positives, max-pools pick them). Moving the voxel along T, H and W through a point
    # inside the field (frame 10, pixel (33, 33)) measures the field's extent along each axis: over
    # all 20 frames, and over pixels 17-49, a window wider than any field the table lists.
    model = create_model(name, num_classes=10).eval()
    for module in model.backbone.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    base = (10, 33, 33)
    extent = []
    for axis, positions in enumerate((range(20), range(17, 50), range(17, 50))):
        clips = torch.zeros(len(positions), 3, 20, 64, 64)
        for i, position in enumerate(positions):
            t, h, w = (position if a == axis else base[a] for a in range(3))
            clips[i, 0, t, h, w] = 1.0
        with recording(model, ["backbone.conv2"]) as outputs, torch.no_grad():
            model(clips)
        extent.append(int((conv2_unit(name, outputs["backbone.conv2"]) > 0).sum()))
    assert tuple(extent) == COURSE_RECEPTIVE_FIELDS[name]


# --- C3D ------------------------------------------------------------------------------------

# The lecture's C3D table for a 3 x 16 x 112 x 112 clip, with its per-convolution cost in GFLOPs
# (multiply-adds; the slide's column header says MFLOPs but the values are GFLOPs). Pool5 follows
# the original C3D (padded: 512 x 1 x 4 x 4 = 8192 features for FC6), where the slide prints 3 x 3.
C3D_TABLE = [
    ("conv1", (64, 16, 112, 112), 1.04),
    ("pool1", (64, 16, 56, 56), None),
    ("conv2", (128, 16, 56, 56), 11.10),
    ("pool2", (128, 8, 28, 28), None),
    ("conv3a", (256, 8, 28, 28), 5.55),
    ("conv3b", (256, 8, 28, 28), 11.10),
    ("pool3", (256, 4, 14, 14), None),
    ("conv4a", (512, 4, 14, 14), 2.77),
    ("conv4b", (512, 4, 14, 14), 5.55),
    ("pool4", (512, 2, 7, 7), None),
    ("conv5a", (512, 2, 7, 7), 0.69),
    ("conv5b", (512, 2, 7, 7), 0.69),
    ("pool5", (512, 1, 4, 4), None),
]


def test_c3d_layer_shapes_and_conv_flops_match_the_lecture():
    with torch.device("meta"):
        model = C3D(num_classes=101)
    with recording(model, [f"convs.{name}" for name, _, _ in C3D_TABLE]) as outputs:
        model(torch.empty(1, 3, 16, 112, 112, device="meta"))
    in_channels = 3
    for name, size, gflops in C3D_TABLE:
        out_shape = tuple(outputs[f"convs.{name}"].shape[1:])
        assert out_shape == size, name
        if gflops is not None:
            # C_out * T*H*W (output) multiply-adds of C_in * 3*3*3 each.
            assert round(math.prod(out_shape) * in_channels * 27 / 1e9, 2) == gflops, name
            in_channels = out_shape[0]
    assert model.fc6[0].in_features == 512 * 1 * 4 * 4


def test_c3d_parameter_count_by_hand(big_models):
    widths = [64, 128, 256, 256, 512, 512, 512, 512]
    convs = sum(c_in * 27 * c_out + c_out for c_in, c_out in zip([3] + widths, widths))
    fcs = (8192 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 101 + 101)
    assert _params(big_models["c3d"]) == convs + fcs


# --- the video ResNets ----------------------------------------------------------------------

# torchvision's published parameter counts for its 400-class Kinetics models.
TORCHVISION_PARAMS = {"r3d_18": 33_371_472, "mc3_18": 11_695_440, "r2plus1d_18": 31_505_325}


@pytest.mark.parametrize("name", RESNETS)
def test_resnet_parameter_counts_match_torchvision(name, big_models):
    assert _params(big_models[name]) == TORCHVISION_PARAMS[name]


TORCHVISION_KEY = re.compile(
    r"^(stem\.\d|layer[1-4]\.[01]\.(conv[12]\.\d(\.\d)?|downsample\.[01])|fc)"
    r"\.(weight|bias|running_mean|running_var|num_batches_tracked)$"
)

# Keys and shapes of torchvision's layout, worked out by hand. (2+1)D middle widths:
# 64*64*27 // (64*9 + 3*64) = 144 and 64*128*27 // (64*9 + 3*128) = 230.
EXPECTED_KEYS = {
    "r3d_18": {
        "stem.0.weight": (64, 3, 3, 7, 7),
        "stem.1.running_mean": (64,),
        "layer1.0.conv1.0.weight": (64, 64, 3, 3, 3),
        "layer2.0.conv1.0.weight": (128, 64, 3, 3, 3),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1, 1),
        "layer2.0.downsample.1.running_var": (128,),
        "layer4.1.conv2.1.weight": (512,),
        "fc.weight": (400, 512),
    },
    "mc3_18": {
        "stem.0.weight": (64, 3, 3, 7, 7),
        "layer1.0.conv1.0.weight": (64, 64, 3, 3, 3),
        "layer2.0.conv1.0.weight": (128, 64, 1, 3, 3),
        "layer4.1.conv2.0.weight": (512, 512, 1, 3, 3),
        "fc.bias": (400,),
    },
    "r2plus1d_18": {
        "stem.0.weight": (45, 3, 1, 7, 7),
        "stem.3.weight": (64, 45, 3, 1, 1),
        "stem.4.weight": (64,),
        "layer1.0.conv1.0.0.weight": (144, 64, 1, 3, 3),
        "layer1.0.conv1.0.1.running_mean": (144,),
        "layer1.0.conv1.0.3.weight": (64, 144, 3, 1, 1),
        "layer2.0.conv1.0.0.weight": (230, 64, 1, 3, 3),
        "layer2.0.conv2.0.0.weight": (230, 128, 1, 3, 3),
        "layer2.0.downsample.0.weight": (128, 64, 1, 1, 1),
        "fc.weight": (400, 512),
    },
}


@pytest.mark.parametrize("name", RESNETS)
def test_resnet_state_dict_uses_torchvision_keys(name, big_models):
    state = big_models[name].state_dict()
    assert all(TORCHVISION_KEY.match(key) for key in state), [
        k for k in state if not TORCHVISION_KEY.match(k)
    ]
    for key, shape in EXPECTED_KEYS[name].items():
        assert tuple(state[key].shape) == shape, key


# torchvision's published cost of its models at 3 x 16 x 112 x 112, in GFLOPs (multiply-adds of the
# convolutions and the classifier).
TORCHVISION_GFLOPS = {"r3d_18": 40.697, "mc3_18": 43.343, "r2plus1d_18": 40.519}


@pytest.mark.parametrize("name", RESNETS)
def test_resnet_multiply_adds_match_torchvision(name):
    with torch.device("meta"):
        model = create_model(name, num_classes=400)
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv3d, nn.Linear))]
    with recording(model, layers) as outputs:
        model(torch.empty(1, 3, 16, 112, 112, device="meta"))
    modules = dict(model.named_modules())
    # Each output value of a convolution or linear layer costs one multiply-add per weight it sees.
    multiply_adds = sum(outputs[n].numel() * modules[n].weight[0].numel() for n in layers)
    assert round(multiply_adds / 1e9, 3) == TORCHVISION_GFLOPS[name]


def test_resnet_strides_time_as_torchvision_does():
    # The stem and stages 2-4 halve H and W (112 -> 7). R3D and R(2+1)D also halve T in stages 2-4
    # (16 -> 2); MC3's upper stages are 2D and keep T at 16.
    for name, frames in (("r3d_18", 2), ("mc3_18", 16), ("r2plus1d_18", 2)):
        with torch.device("meta"):
            model = create_model(name, num_classes=400)
        with recording(model, ["layer4"]) as out:
            model(torch.empty(1, 3, 16, 112, 112, device="meta"))
        assert tuple(out["layer4"].shape[1:]) == (512, frames, 7, 7), name


# --- where time is fused ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["single_frame", "late_fusion_pool", "fovea", "course_late"])
def test_frame_order_does_not_matter_when_fusion_is_a_pool_or_an_average(name):
    x = torch.randn(2, 3, 5, 32, 32)
    model = create_model(name, num_classes=4).eval()
    with torch.no_grad():
        assert torch.allclose(model(x), model(x[:, :, [3, 0, 4, 2, 1]]), atol=1e-5)


@pytest.mark.parametrize(
    "name", ["late_fusion_fc", "early_fusion", "slow_fusion", "course_early", "course_3d"]
)
def test_frame_order_matters_when_time_is_fused_by_learned_weights(name):
    x = torch.randn(2, 3, 5, 32, 32)
    model = create_model(name, num_classes=4, **options_for(name, 5, 32, 32)).eval()
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x[:, :, [3, 0, 4, 2, 1]]), atol=1e-4)


@pytest.mark.parametrize("name", ["single_frame", "fovea"])
def test_single_frame_averages_probabilities_of_independent_frames(name):
    model = create_model(name, num_classes=6).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        frame_logits = model.frame_logits(x)
        assert frame_logits.shape == (2, 4, 6)
        # Each frame's logits are those of that frame seen alone.
        for t in range(4):
            assert torch.allclose(frame_logits[:, t], model.frame_logits(x[:, :, t : t + 1])[:, 0], atol=1e-5)
        expected = torch.log(torch.softmax(frame_logits, dim=-1).mean(dim=1))
        assert torch.allclose(model(x), expected, atol=1e-5)
        assert torch.allclose(torch.softmax(model(x), dim=-1).sum(-1), torch.ones(2), atol=1e-5)


def test_fovea_streams_see_the_downsampled_frame_and_the_centre_crop():
    encoder = create_model("fovea", num_classes=3).eval().encoder
    frames = torch.randn(2, 3, 64, 48)
    border = frames.clone()
    border[..., :16, :] = 0  # rows outside the centre crop (rows 16-47)
    with recording(encoder, ["context.stem", "fovea.stem"]) as seen, torch.no_grad():
        encoder(frames)
        # Both streams get half-size inputs (32 x 24); their stride-2 stems give 16 x 12.
        assert seen["context.stem"].shape[-2:] == seen["fovea.stem"].shape[-2:] == (16, 12)
        fovea_before, context_before = seen["fovea.stem"], seen["context.stem"]
        encoder(border)
    # The fovea stream sees only the centre crop, so changing the border leaves it unchanged.
    assert torch.equal(seen["fovea.stem"], fovea_before)
    assert not torch.equal(seen["context.stem"], context_before)
    # Same architecture, separate weights.
    assert encoder.context.stem[0].weight.shape == encoder.fovea.stem[0].weight.shape
    assert encoder.context.stem[0].weight.data_ptr() != encoder.fovea.stem[0].weight.data_ptr()


# --- export and training --------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_MODELS)
def test_torch_export_works(name, big_models):
    t, h, w = CLIP_SIZES[name][0]
    if name in big_models:
        model = big_models[name]
    else:
        model = create_model(name, num_classes=7, **options_for(name, t, h, w)).eval()
    x = torch.randn(1, 3, t, h, w)
    program = torch.export.export(model, (x,))
    # Running C3D at full size twice would cost seconds; for it, exporting is the check.
    if name != "c3d":
        with torch.no_grad():
            assert torch.allclose(program.module()(x), model(x), atol=1e-5)


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if n != "c3d"])
def test_a_gradient_step_reaches_and_changes_every_parameter(name, big_models):
    t, h, w = CLIP_SIZES[name][0]
    if name in big_models:
        model = copy.deepcopy(big_models[name])
    else:
        model = create_model(name, num_classes=7, **options_for(name, t, h, w))
    model.train()
    before = {key: p.detach().clone() for key, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, labels = torch.randn(2, 3, t, h, w), torch.tensor([0, 1])
    nn.functional.cross_entropy(model(x), labels).backward()
    without_gradient = [
        key for key, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not without_gradient
    optimizer.step()
    unchanged = [key for key, p in model.named_parameters() if torch.equal(p, before[key])]
    assert not unchanged


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_name_in_all_resolves_and_no_model_file_knows_the_speed_paths():
    import vidlearn.models

    assert all(hasattr(vidlearn.models, name) for name in vidlearn.models.__all__)
    assert len(set(vidlearn.models.__all__)) == len(vidlearn.models.__all__)
    # vidlearn.speed converts the plain models from outside; they never import it or call oneDNN.
    for path in Path(vidlearn.models.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"vidlearn\.speed|mkldnn|winograd", text, re.IGNORECASE), path.name
