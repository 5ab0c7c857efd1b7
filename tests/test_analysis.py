"""vidlearn.analysis against numbers derived by hand, the course's tables, torchvision's published
figures and an independent counter (fvcore)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from vidlearn.analysis import parse_input_shape, summarize, summarize_model
from vidlearn.errors import BadArgumentError
from vidlearn.models import create_model


def rows(summary):
    return {layer.name: layer for layer in summary.layers}


# --- small modules, counted by hand -------------------------------------------------------------


def test_conv3d_shape_params_flops_and_field():
    summary = summarize(nn.Conv3d(3, 8, kernel_size=3, padding=1), (3, 4, 8, 8))
    (conv,) = summary.layers
    assert conv.output == [8, 4, 8, 8]
    assert conv.params == 8 * 3 * 27 + 8
    # one multiply-add per weight per output position; the bias add is not counted
    assert conv.flops == (8 * 4 * 8 * 8) * (3 * 3 * 3 * 3) == 165_888
    assert conv.receptive_field == [3, 3, 3]
    assert summary.total_flops == conv.flops and summary.total_params == conv.params


def test_grouped_and_depthwise_convolutions():
    grouped = summarize(nn.Conv3d(4, 8, kernel_size=(1, 3, 3), groups=2, bias=False), (4, 2, 6, 6))
    (conv,) = grouped.layers
    assert conv.output == [8, 2, 4, 4]
    assert conv.params == 8 * 2 * 9  # each output channel sees 4 / 2 input channels
    assert conv.flops == (8 * 2 * 4 * 4) * (2 * 9) == 4608
    assert conv.receptive_field == [1, 3, 3]

    depthwise = summarize(nn.Conv3d(4, 4, kernel_size=3, padding=1, groups=4, bias=False), (4, 5, 7, 7))
    (conv,) = depthwise.layers
    assert conv.params == 4 * 27
    assert conv.flops == (4 * 5 * 7 * 7) * 27
    assert conv.receptive_field == [3, 3, 3]


def test_linear_after_flatten_sees_the_whole_clip():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 4 * 4, 5))
    summary = summarize(model, (2, 3, 4, 4))
    flatten, linear = summary.layers
    assert (flatten.output, flatten.params, flatten.flops) == ([96], 0, 0)
    assert (linear.output, linear.params, linear.flops) == ([5], 96 * 5 + 5, 96 * 5)
    assert linear.receptive_field == [3, 4, 4]


def test_layers_without_params_or_shape_change_are_left_out_and_cost_nothing():
    model = nn.Sequential(
        nn.Conv3d(3, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.MaxPool3d(2), nn.Dropout(0.5)
    )
    summary = summarize(model, (3, 4, 8, 8))
    assert [layer.type for layer in summary.layers] == ["Conv3d", "BatchNorm3d", "MaxPool3d"]
    assert [layer.flops for layer in summary.layers] == [4 * 4 * 8 * 8 * 81, 0, 0]
    assert [layer.receptive_field for layer in summary.layers] == [[3, 3, 3], [3, 3, 3], [4, 4, 4]]


def test_flops_are_per_clip_whatever_the_batch():
    model = nn.Sequential(
        nn.Conv3d(3, 4, 3, padding=1), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    one = summarize(model, (3, 4, 8, 8), receptive_fields=False)
    four = summarize(model, (3, 4, 8, 8), batch=4, receptive_fields=False)
    assert one.to_json() == four.to_json()
    assert one.total_flops == 4 * 4 * 8 * 8 * 81 + 4 * 2


class SharedPool(nn.Module):
    """One pooling module used twice, one convolution owning its parameters once."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(2, 2, 1)
        self.pool = nn.MaxPool3d(2)

    def forward(self, x):
        return self.pool(self.conv(self.pool(x)))


def test_a_module_called_twice_gives_two_rows():
    summary = summarize(SharedPool(), (2, 8, 8, 8))
    assert [layer.name for layer in summary.layers] == ["pool", "conv", "pool (call 2)"]
    assert [layer.output for layer in summary.layers] == [[2, 4, 4, 4], [2, 4, 4, 4], [2, 2, 2, 2]]
    assert [layer.receptive_field for layer in summary.layers] == [[2, 2, 2], [2, 2, 2], [4, 4, 4]]
    assert summary.total_params == 2 * 2 + 2 == sum(layer.params for layer in summary.layers)


class TokenAttention(nn.Module):
    """Frames as tokens: linear projections, then attention written as matrix products in forward."""

    def __init__(self, dim: int, fused: bool):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.fused = fused

    def forward(self, x):  # B x C x T x 1 x 1 -> B x T x C
        tokens = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        if self.fused:
            return F.scaled_dot_product_attention(q, k, v)
        weights = torch.einsum("bqd,bkd->bqk", q, k).softmax(dim=-1)
        return torch.matmul(weights, v)


@pytest.mark.parametrize("fused", [False, True])
def test_attention_matrix_products_are_counted_in_the_module_that_runs_them(fused):
    dim, frames = 8, 6
    summary = summarize(TokenAttention(dim, fused), (dim, frames, 1, 1))
    qkv, attention = summary.layers
    assert qkv.flops == frames * dim * 3 * dim
    assert (attention.name, attention.params) == ("(model)", 0)
    # scores Q K^T: T x T dot products of length D; output A V: T x D dot products of length T
    assert attention.flops == frames * frames * dim * 2
    # after attention every output token has seen every frame
    assert attention.receptive_field == [frames, 1, 1]
    assert summary.total_flops == qkv.flops + attention.flops


class BiasedAttention(nn.Module):
    """Attention over frames with an additive bias (as relative positions) or a blocking mask."""

    def __init__(self, frames: int, blocking: bool):
        super().__init__()
        bias = torch.randn(frames, frames)
        offsets = torch.arange(frames)[:, None] - torch.arange(frames)[None, :]
        self.register_buffer("mask", offsets.abs() <= 1 if blocking else bias)

    def forward(self, x):  # B x C x T x 1 x 1
        tokens = x.flatten(2).transpose(1, 2)
        return F.scaled_dot_product_attention(tokens, tokens, tokens, attn_mask=self.mask)


@pytest.mark.parametrize("blocking", [False, True])
def test_receptive_field_through_biased_and_masked_attention(blocking):
    frames = 6
    (layer,) = summarize(BiasedAttention(frames, blocking), (4, frames, 1, 1)).layers
    # The central output token (index 3): a finite bias blocks nothing; a band mask lets it see
    # frames 2..4 only.
    assert layer.receptive_field == ([3, 1, 1] if blocking else [frames, 1, 1])


class ReadsValues(nn.Module):
    """A forward that looks at a value (impossible on the meta device)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 3)

    def forward(self, x):
        out = self.conv(x)
        return out * 2 if out.sum().item() > -1e9 else out


def test_models_that_read_values_are_run_for_real():
    (conv,) = summarize(ReadsValues(), (1, 3, 5, 5)).layers
    assert (conv.output, conv.flops) == ([2, 1, 3, 3], 2 * 9 * 27)


class InPlaceResidual(nn.Module):
    """torchvision's ``out += shortcut`` idiom: writes into a convolution's output."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(2, 2, 3, padding=1)
        self.conv2 = nn.Conv3d(2, 2, 3, padding=1)

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        out += x
        return out


def test_receptive_fields_survive_in_place_writes():
    fields = [layer.receptive_field for layer in summarize(InPlaceResidual(), (2, 9, 9, 9)).layers]
    assert fields == [[3, 3, 3], [5, 5, 5]]


def test_summarize_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Conv3d(3, 4, 3), nn.BatchNorm3d(4), nn.ReLU())
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summarize(model, (3, 4, 8, 8))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


# --- the course -----------------------------------------------------------------------------------

# The course's comparison table, input 3 x 20 x 64 x 64: size and receptive field (T x H x W) after
# Conv 3x3 (3 -> 12), Pool 4x4 and Conv 3x3 (12 -> 24), then after the global average pool.
COURSE_TABLE = {
    "course_late": ([1, 3, 3], [1, 6, 6], [1, 14, 14], [20, 64, 64]),
    "course_early": ([20, 3, 3], [20, 6, 6], [20, 14, 14], [20, 64, 64]),
    "course_3d": ([3, 3, 3], [6, 6, 6], [14, 14, 14], [20, 64, 64]),
}


@pytest.mark.parametrize("name", sorted(COURSE_TABLE))
def test_course_receptive_fields(name):
    layers = rows(summarize_model(name, num_classes=10))
    measured = tuple(
        layers[n].receptive_field for n in ("backbone.conv1", "backbone.pool", "backbone.conv2", "pool")
    )
    assert measured == COURSE_TABLE[name]


def test_course_sizes():
    early = rows(summarize_model("course_early", num_classes=10))
    assert [early[n].output for n in ("backbone.conv1", "backbone.pool", "backbone.conv2")] == [
        [12, 64, 64],
        [12, 16, 16],
        [24, 16, 16],
    ]
    three_d = rows(summarize_model("course_3d", num_classes=10))
    assert [three_d[n].output for n in ("backbone.conv1", "backbone.pool", "backbone.conv2", "pool")] == [
        [12, 20, 64, 64],
        [12, 5, 16, 16],
        [24, 5, 16, 16],
        [24, 1, 1, 1],
    ]
    # late fusion folds the 20 frames into the batch; its rows read C x T x H x W as the course's table
    late = rows(summarize_model("course_late", num_classes=10))
    assert [late[n].output for n in ("backbone.conv1", "backbone.pool", "backbone.conv2", "pool")] == [
        [12, 20, 64, 64],
        [12, 20, 16, 16],
        [24, 20, 16, 16],
        [24, 1, 1, 1],
    ]


def test_course_late_table_prints_per_frame_conv_as_c_t_h_w():
    table = summarize_model("course_late", num_classes=10).format_table()
    outputs = dict(zip(table.columns[0].cells, table.columns[2].cells))
    assert outputs["backbone.conv1"] == "12 x 20 x 64 x 64"


def test_per_frame_vectors_read_d_x_t():
    layers = rows(summarize_model("single_frame", num_classes=10, receptive_fields=False))
    flatten = next(layer for layer in layers.values() if layer.type == "Flatten")
    assert flatten.output == [128, 16]


# The course's C3D table (3 x 16 x 112 x 112), GFLOPs of the eight convolutions.
C3D_CONV_GFLOPS = {
    "convs.conv1": 1.04,
    "convs.conv2": 11.10,
    "convs.conv3a": 5.55,
    "convs.conv3b": 11.10,
    "convs.conv4a": 2.77,
    "convs.conv4b": 5.55,
    "convs.conv5a": 0.69,
    "convs.conv5b": 0.69,
}


def test_c3d_per_convolution_cost_matches_the_course():
    layers = rows(summarize_model("c3d", (3, 16, 112, 112), receptive_fields=False))
    assert {name: round(layers[name].flops / 1e9, 2) for name in C3D_CONV_GFLOPS} == C3D_CONV_GFLOPS
    # conv1 by hand: 64 x 16 x 112 x 112 outputs, 3 x 3 x 3 x 3 multiply-adds each
    assert layers["convs.conv1"].flops == 64 * 16 * 112 * 112 * 81
    assert layers["convs.pool5"].output == [512, 1, 4, 4]


def test_deep_receptive_fields_compose_kernels_and_strides():
    # C3D by hand (T; H = W): conv 3 -> pool1 (1,2,2) -> conv +2 / +4 ... ; R3D-18: stem 3 x 7 x 7
    # (H stride 2), then eight 3x3x3 convs per stage pair; the shortcut paths are shorter.
    c3d = rows(summarize_model("c3d", num_classes=10))
    assert c3d["convs.conv2"].receptive_field == [5, 8, 8]
    assert c3d["convs.conv5b"].receptive_field == [68, 134, 134]
    assert c3d["fc6.0"].receptive_field == [16, 112, 112]  # flatten + linear: the whole clip
    r3d = rows(summarize_model("r3d_18", num_classes=10))
    assert r3d["stem.0"].receptive_field == [3, 7, 7]
    assert r3d["layer1.1.conv2.0"].receptive_field == [11, 23, 23]
    assert r3d["layer4.1.conv2.0"].receptive_field == [109, 219, 219]
    assert r3d["avgpool"].receptive_field == [16, 112, 112]


# torchvision's model docs (Kinetics-400 weights, 16 x 112 x 112): GFLOPS and num_params.
PUBLISHED = {"r3d_18": (40.70, 33_371_472), "r2plus1d_18": (40.52, 31_505_325), "mc3_18": (43.34, 11_695_440)}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_video_resnets_match_torchvision(name):
    gflops, params = PUBLISHED[name]
    summary = summarize_model(name, (3, 16, 112, 112), num_classes=400, receptive_fields=False)
    assert summary.total_flops / 1e9 == pytest.approx(gflops, rel=0.01)
    assert summary.total_params == params


# --- an independent counter ------------------------------------------------------------------------

# fvcore also counts these (batch norm: 2 per element in eval mode with affine; adaptive 2D
# average pooling: 1 per input element); vidlearn counts them as 0.
FVCORE_EXTRAS = ("aten::batch_norm", "aten::adaptive_avg_pool2d")


@pytest.mark.parametrize(
    "model, shape",
    [
        (lambda: create_model("course_late", num_classes=10), (3, 20, 64, 64)),
        (lambda: create_model("course_early", num_classes=10), (3, 20, 64, 64)),
        (lambda: create_model("fovea", num_classes=10), (3, 4, 64, 64)),
        (lambda: create_model("slow_fusion", num_classes=10), (3, 8, 64, 64)),
        (lambda: create_model("r3d_18", num_classes=10), (3, 8, 32, 32)),
        (lambda: create_model("r2plus1d_18", num_classes=10), (3, 8, 32, 32)),
        (lambda: TokenAttention(8, fused=False), (8, 6, 1, 1)),
    ],
    ids=["course_late", "course_early", "fovea", "slow_fusion", "r3d_18", "r2plus1d_18", "attention"],
)
def test_totals_agree_with_fvcore(model, shape):
    fvcore_nn = pytest.importorskip("fvcore.nn")
    model = model().eval()
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    analysis = fvcore_nn.FlopCountAnalysis(model, torch.zeros(1, *shape))
    for op in FVCORE_EXTRAS:
        # (set_op_handle(op, None) would not override fvcore's default handles)
        analysis.set_op_handle(op, lambda inputs, outputs: 0)
    analysis.unsupported_ops_warnings(False)
    assert summarize(model, shape, receptive_fields=False).total_flops == analysis.total()


# --- output formats and arguments ------------------------------------------------------------------


def test_to_json_schema():
    summary = summarize_model("course_3d", num_classes=10)
    data = json.loads(json.dumps(summary.to_json()))
    assert list(data) == ["input", "layers", "total_params", "total_flops"]
    assert data["input"] == [3, 20, 64, 64]
    for layer in data["layers"]:
        assert list(layer) == ["name", "output", "receptive_field", "params", "flops"]
    assert data["layers"][0] == {
        "name": "backbone.conv1",
        "output": [12, 20, 64, 64],
        "receptive_field": [3, 3, 3],
        "params": 12 * 3 * 27 + 12,
        "flops": 12 * 20 * 64 * 64 * 81,
    }
    assert data["total_flops"] == sum(layer["flops"] for layer in data["layers"])
    assert (
        summarize_model("course_3d", num_classes=10, receptive_fields=False).to_json()["layers"][0][
            "receptive_field"
        ]
        is None
    )


def test_table_states_the_flop_rule():
    console = Console(record=True, width=200)
    console.print(summarize_model("course_3d", num_classes=10).format_table(title="course_3d"))
    text = console.export_text()
    assert "FLOPs: one multiply-add = one FLOP" in text
    assert "backbone.conv2" in text and "14 x 14 x 14" in text and "MFLOPs" in text


def test_parse_input_shape():
    assert parse_input_shape("3x16x112x112") == (3, 16, 112, 112)
    for bad in ("3x16x112", "3x16x112x0", "a x b", "3*16*112*112"):
        with pytest.raises(BadArgumentError):
            parse_input_shape(bad)


def test_bad_arguments_and_refused_inputs_raise_bad_argument_error():
    with pytest.raises(BadArgumentError):
        summarize(nn.Conv3d(3, 4, 3), (3, 4, 8))
    with pytest.raises(BadArgumentError):
        summarize(nn.Conv3d(3, 4, 3), (3, 4, 8, 8), batch=0)
    with pytest.raises(BadArgumentError, match="cannot take clips"):
        summarize(nn.Conv3d(3, 4, 3), (3, 2, 8, 8))  # fewer frames than the kernel
    with pytest.raises(BadArgumentError):
        summarize_model("course_early", (3, 10, 64, 64), num_classes=10)  # built for 20 frames
    with pytest.raises(BadArgumentError):
        summarize_model("no_such_model")
