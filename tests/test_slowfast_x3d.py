"""SlowFast and X3D: the papers' layer tables, published parameters and FLOPs, the slow pathway's
frames, export and training.

Expected numbers come from the SlowFast paper (Feichtenhofer, Fan, Malik, He, ICCV 2019: Table 1
and the 36.1 / 65.7 GFLOPs per view of its Kinetics-400 results), the X3D paper (Feichtenhofer, CVPR 2020: Table 1's
architecture, Table 3's 0.60 / 1.96 / 4.73 GFLOPs and 3.76 M parameters), PyTorchVideo's Kinetics-400
model zoo (model_zoo.md: SlowFast 34.48 M / 36.69 G and 34.57 M / 65.71 G, X3D 3.79 M
and 0.91 / 2.96 / 6.72 G), PySlowFast's released configs, or hand arithmetic written out here; never
from running our own code. Full-size models run on the meta device; real arithmetic only on small
clips.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest
import torch
from conftest import assert_exports
from torch import nn

from vidlearn.analysis import summarize
from vidlearn.errors import BadArgumentError
from vidlearn.models import create_model, list_models, model_info

SLOWFAST_VARIANTS = ("4x16", "8x8")
X3D_MODELS = ("x3d_xs", "x3d_s", "x3d_m")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small clips give operations too small to share between threads, and waiting threads cost
    dearly when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def meta_slowfast() -> dict[str, nn.Module]:
    """Both SlowFast variants with Kinetics-400's 400 classes, on the meta device."""
    with torch.device("meta"):
        return {
            variant: create_model("slowfast_r50", num_classes=400, variant=variant)
            for variant in SLOWFAST_VARIANTS
        }


@pytest.fixture(scope="module")
def meta_x3d() -> nn.Module:
    """X3D with 400 classes on the meta device (XS, S and M are the same network)."""
    with torch.device("meta"):
        return create_model("x3d_xs", num_classes=400)


@pytest.fixture(scope="module")
def slowfast_real() -> nn.Module:
    """SlowFast 4x16 with real weights, for forwards on small clips."""
    torch.manual_seed(0)
    return create_model("slowfast_r50", num_classes=7).eval()


@contextmanager
def recording(model: nn.Module, names, inputs: bool = False):
    """Yield a dict collecting the outputs (or the first inputs) of the named submodules."""
    seen: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    if inputs:
        handles = [
            modules[n].register_forward_pre_hook(lambda _m, args, n=n: seen.__setitem__(n, args[0]))
            for n in names
        ]
    else:
        handles = [
            modules[n].register_forward_hook(lambda _m, _i, out, n=n: seen.__setitem__(n, out)) for n in names
        ]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def batch_norm_elements(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Values that pass through batch norms for one clip (meta device: nothing is computed)."""
    sizes: list[int] = []
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm3d)]
    handles = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel())) for m in norms]
    try:
        model(torch.empty(1, *shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return sum(sizes)


def gflops(model: nn.Module, shape: tuple[int, ...]) -> float:
    """Multiply-adds of convolutions and linear layers for one clip, in G (vidlearn's rule)."""
    return summarize(model, shape, receptive_fields=False).total_flops / 1e9


# --- registry and shapes -------------------------------------------------------------------------


def test_models_are_registered_with_their_training_inputs():
    assert {"slowfast_r50", *X3D_MODELS} <= set(list_models())
    assert model_info("slowfast_r50").default_input == (3, 32, 224, 224)
    assert model_info("slowfast_r50").options == {"variant": "4x16", "in_channels": 3, "dropout": 0.5}
    # X3D paper, Table 3: XS 4 x 160^2, S 13 x 160^2, M 16 x 224^2.
    assert model_info("x3d_xs").default_input == (3, 4, 160, 160)
    assert model_info("x3d_s").default_input == (3, 13, 160, 160)
    assert model_info("x3d_m").default_input == (3, 16, 224, 224)


def test_bad_options_are_reported():
    with pytest.raises(BadArgumentError, match="4x16"):
        create_model("slowfast_r50", num_classes=3, variant="16x8")
    with pytest.raises(BadArgumentError, match="dropout"):
        create_model("x3d_xs", num_classes=3, dropout=1.5)
    with torch.device("meta"):
        model = create_model("x3d_xs", num_classes=3)
    with pytest.raises(BadArgumentError, match="B x 3 x T x H x W"):
        model(torch.empty(1, 2, 4, 32, 32, device="meta"))


# T x H x W; T need not be a multiple of alpha (33 frames: the slow pathway takes 0, 8, ..., 32).
SLOWFAST_CLIPS = [(33, 160, 200), (16, 112, 112), (8, 32, 32)]
X3D_CLIPS = [(13, 182, 182), (16, 224, 224), (1, 32, 48)]


def outputs_and_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and the classifier's input from one forward (full-size models on the meta device)."""
    with recording(model, ["fc"], inputs=True) as seen:
        logits = model(x)
    return logits, seen["fc"]


def test_slowfast_shapes_over_clip_sizes(meta_slowfast):
    # 32 x 224 x 224 for both variants is in test_slowfast_pathway_and_lateral_shapes_follow_table_1.
    for t, h, w in SLOWFAST_CLIPS:
        logits, features = outputs_and_features(
            meta_slowfast["4x16"], torch.empty(2, 3, t, h, w, device="meta")
        )
        assert logits.shape == (2, 400) and features.shape == (2, 2048 + 256), (
            t,
            h,
            w,
        )  # slow + fast 2048 / 8


def test_x3d_shapes_over_clip_sizes(meta_x3d):
    for t, h, w in X3D_CLIPS:
        logits, features = outputs_and_features(meta_x3d, torch.empty(2, 3, t, h, w, device="meta"))
        assert logits.shape == (2, 400) and features.shape == (2, 2048), (t, h, w)


def test_features_are_what_the_classifier_sees(slowfast_real):
    torch.manual_seed(0)
    for model in (create_model("x3d_xs", num_classes=4).eval(), slowfast_real):
        x = torch.randn(2, 3, 8, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(model(x), model.fc(model.features(x)))


def test_optical_flow_stacks_can_be_fed():
    with torch.device("meta"):
        for name in ("slowfast_r50", "x3d_xs"):
            model = create_model(name, num_classes=5, in_channels=2)
            assert model(torch.empty(1, 2, 16, 64, 64)).shape == (1, 5), name


# --- SlowFast: the paper's Table 1 -----------------------------------------------------------------

# SlowFast paper, Table 1 (4x16, 32 x 224^2 input: slow T = 4, fast T = 32, beta = 1/8): output of
# each stage, C x T x H x W.
SLOW_TABLE = {
    "slow.stem": (64, 4, 56, 56),  # conv1 + pool1
    "slow.res2": (256, 4, 56, 56),
    "slow.res3": (512, 4, 28, 28),
    "slow.res4": (1024, 4, 14, 14),
    "slow.res5": (2048, 4, 7, 7),
}
FAST_TABLE = {
    "fast.stem": (8, 32, 56, 56),
    "fast.res2": (32, 32, 56, 56),
    "fast.res3": (64, 32, 28, 28),
    "fast.res4": (128, 32, 14, 14),
    "fast.res5": (256, 32, 7, 7),
}


@pytest.mark.parametrize("variant, slow_frames", [("4x16", 4), ("8x8", 8)])
def test_slowfast_pathway_and_lateral_shapes_follow_table_1(variant, slow_frames, meta_slowfast):
    model = meta_slowfast[variant]
    laterals = ["lateral.stem", "lateral.res2", "lateral.res3", "lateral.res4"]
    with recording(model, [*SLOW_TABLE, *FAST_TABLE, *laterals]) as out:
        model(torch.empty(1, 3, 32, 224, 224, device="meta"))
    for name, (c, _t, h, w) in SLOW_TABLE.items():
        assert tuple(out[name].shape[1:]) == (c, slow_frames, h, w), name
    for name, size in FAST_TABLE.items():
        assert tuple(out[name].shape[1:]) == size, name
    # Laterals: 2 * beta * C channels (twice the fast width) at the slow frame rate, after pool1,
    # res2, res3, res4; the slow stage after each takes slow + lateral channels.
    for lateral, fast in zip(laterals, FAST_TABLE):
        c, _, h, w = FAST_TABLE[fast]
        assert tuple(out[lateral].shape[1:]) == (2 * c, slow_frames, h, w), lateral
    slow_inputs = [
        model.slow[stage][0].branch.conv_a.in_channels for stage in ("res2", "res3", "res4", "res5")
    ]
    assert slow_inputs == [64 + 16, 256 + 64, 512 + 128, 1024 + 256]
    assert model.fc.in_features == 2048 + 256


@pytest.mark.parametrize("variant, alpha, kernel", [("4x16", 8, 5), ("8x8", 4, 7)])
def test_lateral_connections_are_time_strided_convolutions(variant, alpha, kernel, meta_slowfast):
    # Paper: a 5x1x1 convolution, 2 beta C output channels, stride alpha. PySlowFast's released
    # configs: FUSION_KERNEL_SZ 5 for SLOWFAST_4x16_R50, 7 for SLOWFAST_8x8_R50.
    conv = meta_slowfast[variant].lateral["stem"][0]
    assert tuple(conv.weight.shape) == (16, 8, kernel, 1, 1)
    assert conv.stride == (alpha, 1, 1) and conv.padding == (kernel // 2, 0, 0)


def test_temporal_kernels_follow_table_1(meta_slowfast):
    model = meta_slowfast["4x16"]
    # conv1: slow 1x7x7, fast 5x7x7. Bottleneck's first conv: slow 1x1x1 in res2 and res3 and 3x1x1 in
    # res4 and res5; fast 3x1x1 everywhere.
    assert model.slow["stem"][0].kernel_size == (1, 7, 7)
    assert model.fast["stem"][0].kernel_size == (5, 7, 7)
    expected = {"slow": [1, 1, 3, 3], "fast": [3, 3, 3, 3]}
    for pathway, kernels in expected.items():
        for stage, kernel in zip(("res2", "res3", "res4", "res5"), kernels):
            blocks = getattr(model, pathway)[stage]
            assert [b.branch.conv_a.kernel_size for b in blocks] == [(kernel, 1, 1)] * len(blocks), (
                pathway,
                stage,
            )
            assert all(b.branch.conv_b.kernel_size == (1, 3, 3) for b in blocks)
    # ResNet-50 depths.
    assert [len(model.slow[s]) for s in ("res2", "res3", "res4", "res5")] == [3, 4, 6, 3]


def test_the_slow_pathway_sees_every_alpha_th_frame(slowfast_real):
    model = slowfast_real  # 4x16: alpha = 8
    x = torch.randn(1, 3, 16, 32, 32)
    with torch.no_grad(), recording(model, ["slow.stem"], inputs=True) as given:
        model(x)
    assert torch.equal(given["slow.stem"], x[:, :, [0, 8]])

    def run(clip):
        with torch.no_grad(), recording(model, ["slow.stem", "fast.stem"]) as out:
            logits = model(clip)
        return out["slow.stem"], out["fast.stem"], logits

    slow, fast, logits = run(x)
    skipped = x.clone()
    skipped[:, :, 3] += 1.0  # frame 3 is not one of 0, 8
    slow_skipped, fast_skipped, logits_skipped = run(skipped)
    assert torch.equal(slow_skipped, slow)
    assert not torch.equal(fast_skipped, fast)
    assert not torch.allclose(logits_skipped, logits)  # the fast pathway brings it in
    taken = x.clone()
    taken[:, :, 8] += 1.0
    assert not torch.equal(run(taken)[0], slow)


# --- SlowFast: published parameters and FLOPs -------------------------------------------------------


def test_slowfast_parameters_match_pytorchvideo(meta_slowfast):
    # PyTorchVideo model zoo, Kinetics-400: 34.48 M (4x16) and 34.57 M (8x8); the 34.5 / 34.6.
    assert round(params(meta_slowfast["4x16"]) / 1e6, 2) == 34.48
    assert round(params(meta_slowfast["8x8"]) / 1e6, 2) == 34.57
    # The variants differ only in the lateral kernels (7 instead of 5 taps, no biases) of fast widths
    # 8, 32, 64, 128 to twice as many channels.
    extra_taps = 7 - 5
    assert params(meta_slowfast["8x8"]) - params(meta_slowfast["4x16"]) == extra_taps * sum(
        c * 2 * c for c in (8, 32, 64, 128)
    )


# One view in the SlowFast paper is a 256 x 256 crop (Sec. 5: the shorter side is scaled to 256 and
# three 256 x 256 crops are taken), so its GFLOPs are for 3 x 32 x 256 x 256: 36.1 (4x16) and 65.7
# (8x8, also PyTorchVideo's 65.71). Counted: multiply-adds of convolutions and the classifier.
SLOWFAST_PAPER_GFLOPS = {"4x16": 36.1, "8x8": 65.7}


@pytest.mark.parametrize("variant", SLOWFAST_VARIANTS)
def test_slowfast_flops_match_the_paper_at_its_256_crop(variant, meta_slowfast):
    model = meta_slowfast[variant]
    assert gflops(model, (3, 32, 256, 256)) == pytest.approx(SLOWFAST_PAPER_GFLOPS[variant], rel=0.002)


def test_slowfast_flops_at_the_224_training_crop(meta_slowfast):
    # Every stride halves 224 and 256 exactly (224 -> 7, 256 -> 8), so at 224 x 224 the cost is
    # (224 / 256)^2 of the paper's view: 36.1 G -> 27.6 G for 4x16 (65.7 -> 50.3 for 8x8).
    expected = SLOWFAST_PAPER_GFLOPS["4x16"] * (224 / 256) ** 2
    assert gflops(meta_slowfast["4x16"], (3, 32, 224, 224)) == pytest.approx(expected, rel=0.002)


def test_slowfast_4x16_pytorchvideo_flops_add_batch_norm_at_5_per_value(meta_slowfast):
    # PyTorchVideo's 36.69 G = the paper's count + 5 FLOPs per batch-normalised value (fvcore's rule
    # for batch norm in training mode), at 256 x 256.
    model, shape = meta_slowfast["4x16"], (3, 32, 256, 256)
    total = gflops(model, shape) + 5 * batch_norm_elements(model, shape) / 1e9
    assert total == pytest.approx(36.69, abs=0.005)


# --- X3D ----------------------------------------------------------------------------------------------


def test_x3d_architecture_follows_table_1(meta_x3d):
    model = meta_x3d
    assert model.stem.conv_xy.kernel_size == (1, 3, 3) and model.stem.conv_xy.out_channels == 24
    assert model.stem.conv_t.kernel_size == (5, 1, 1) and model.stem.conv_t.groups == 24  # depthwise
    stages = [model.res2, model.res3, model.res4, model.res5]
    assert [len(s) for s in stages] == [3, 5, 11, 7]
    for stage, width in zip(stages, (24, 48, 96, 192)):
        inner = width * 9 // 4  # expansion 2.25: 54, 108, 216, 432
        for index, block in enumerate(stage):
            branch = block.branch
            assert branch.conv_b.groups == branch.conv_b.in_channels == inner
            assert branch.conv_b.kernel_size == (3, 3, 3)
            assert branch.conv_c.out_channels == width
            assert isinstance(branch.swish, nn.SiLU) and isinstance(branch.relu_a, nn.ReLU)
            # Squeeze-excitation on every other block, starting with the first.
            assert hasattr(branch, "se") == (index % 2 == 0)
    # SE width: inner / 16 rounded to a multiple of 8, at least 8 and at least 90 % of inner / 16:
    # 54 / 16 = 3.4 -> 8, 108 / 16 = 6.8 -> 8, 216 / 16 = 13.5 -> 16, 432 / 16 = 27 -> 24 < 24.3 -> 32.
    assert [s[0].branch.se.fc1.out_channels for s in stages] == [8, 8, 16, 32]
    assert model.conv5[0].out_channels == 432
    assert model.fc1[0].out_channels == 2048 and model.fc1[0].bias is None
    assert not any(isinstance(m, nn.BatchNorm3d) for m in model.fc1)
    with recording(model, ["res5"]) as out:
        model(torch.empty(1, 3, 4, 160, 160, device="meta"))
    assert tuple(out["res5"].shape[1:]) == (192, 4, 5, 5)  # 160 / 32


def test_x3d_parameters_match_both_published_counts(meta_x3d):
    total = params(meta_x3d)
    batch_norm = sum(
        p.numel() for m in meta_x3d.modules() if isinstance(m, nn.BatchNorm3d) for p in m.parameters()
    )
    assert round(total / 1e6, 2) == 3.79  # PyTorchVideo's model zoo counts every parameter
    assert round((total - batch_norm) / 1e6, 2) == 3.76  # the X3D paper's Table 3 leaves batch norm out


# X3D paper, Table 3 (GFLOPs of one view): convolution and linear multiply-adds at the training
# input: XS 4 x 160^2, S 13 x 160^2, M 16 x 224^2.
X3D_PAPER = {
    "x3d_xs": ((3, 4, 160, 160), 0.60),
    "x3d_s": ((3, 13, 160, 160), 1.96),
    "x3d_m": ((3, 16, 224, 224), 4.73),
}
# PyTorchVideo's model zoo: at the three-crop test input (PySlowFast configs: TEST_CROP_SIZE 182 for
# XS and S, 256 for M) with batch norm at 5 FLOPs per value (fvcore's rule in training mode).
X3D_PYTORCHVIDEO = {
    "x3d_xs": ((3, 4, 182, 182), 0.91),
    "x3d_s": ((3, 13, 182, 182), 2.96),
    "x3d_m": ((3, 16, 256, 256), 6.72),
}


@pytest.mark.parametrize("name", X3D_MODELS)
def test_x3d_flops_match_the_paper_at_the_training_input(name, meta_x3d):
    shape, published = X3D_PAPER[name]
    assert model_info(name).default_input == shape
    # Within 1 %: the paper's 0.60 for XS is 0.604 without the 400-class classifier's 0.0008 G.
    assert gflops(meta_x3d, shape) == pytest.approx(published, rel=0.01)


@pytest.mark.parametrize("name", X3D_MODELS)
def test_x3d_flops_match_pytorchvideo_at_the_test_crop_with_batch_norm(name, meta_x3d):
    shape, published = X3D_PYTORCHVIDEO[name]
    total = gflops(meta_x3d, shape) + 5 * batch_norm_elements(meta_x3d, shape) / 1e9
    assert total == pytest.approx(published, rel=0.005)


def test_fvcore_reproduces_pytorchvideo_x3d_xs_and_agrees_with_our_count():
    fvcore_nn = pytest.importorskip("fvcore.nn")
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    model = create_model(
        "x3d_xs", num_classes=400
    ).train()  # fvcore counts batch norm at 5 per value in training
    shape = X3D_PYTORCHVIDEO["x3d_xs"][0]
    with torch.no_grad():
        analysis = fvcore_nn.FlopCountAnalysis(model, torch.zeros(1, *shape))
        analysis.unsupported_ops_warnings(False)
        by_operator = analysis.by_operator()
    assert round(analysis.total() / 1e9, 2) == 0.91
    # Its convolutions (depthwise ones included) and linear layers are exactly what vidlearn counts.
    assert (
        by_operator["conv"] + by_operator["linear"]
        == summarize(model, shape, receptive_fields=False).total_flops
    )
    with torch.device("meta"):
        assert by_operator["batch_norm"] == 5 * batch_norm_elements(
            create_model("x3d_xs", num_classes=400), shape
        )


# --- export and training ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, clip_shape", [("x3d_xs", (1, 3, 4, 32, 32)), ("slowfast_r50", (1, 3, 8, 32, 32))]
)
def test_export_round_trips_through_torch_export_and_onnx(name, clip_shape, tmp_path, request):
    torch.manual_seed(0)
    model = (
        request.getfixturevalue("slowfast_real")
        if name == "slowfast_r50"
        else create_model(name, num_classes=7).eval()
    )
    assert_exports(model, torch.randn(*clip_shape), tmp_path)


def test_a_gradient_step_reaches_and_changes_every_x3d_parameter():
    torch.manual_seed(0)
    model = create_model("x3d_xs", num_classes=5).train()
    before = {key: p.detach().clone() for key, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    nn.functional.cross_entropy(model(torch.randn(2, 3, 4, 32, 32)), torch.tensor([0, 1])).backward()
    assert not [key for key, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    optimizer.step()
    assert not [key for key, p in model.named_parameters() if torch.equal(p, before[key])]


def test_x3d_xs_learns_a_small_separable_problem():
    # Three classes of noise clips; class k is brighter in channel k.
    generator = torch.Generator().manual_seed(0)

    def clips(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % 3
        x = torch.randn(n, 3, 2, 16, 16, generator=generator)
        x[torch.arange(n), labels] += 1.0
        return x, labels

    torch.manual_seed(0)
    model = create_model("x3d_xs", num_classes=3, dropout=0.0)
    # SGD with momentum: Adam memorises the 12 clips' noise within a few steps instead.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    x, labels = clips(12)
    for _ in range(12):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), labels).backward()
        optimizer.step()
    test_x, test_labels = clips(30)
    # Held-out clips normalised with batch statistics, as in training: after 12 steps the running
    # averages are far from them (and at 16 x 16 res4 and res5 are 1 x 1 in space), so eval mode
    # would measure the running averages rather than what was learned.
    with torch.no_grad():
        accuracy = (model(test_x).argmax(1) == test_labels).float().mean().item()
    assert accuracy > 0.6  # chance is 1/3
