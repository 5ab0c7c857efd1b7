"""The CPU speed paths (``vidlearn.speed``) give the plain model's results.

Tolerance (``FAST_TOLERANCE``): ``max |fast - plain| <= 1e-4 x max(1, max |plain|)`` in float32 for
outputs, losses and BatchNorm running statistics, and for every fast convolution's input and
weight gradients (against float64). Whole-network gradients are compared in float64 (the fast
convolutions run the same code there), because in float32 they are not a stable reference: a ReLU
whose input rounds to the other side of 0 flips a gradient entry, and batch statistics over a few
values amplify rounding (the plain float32 model differs from itself in float64 by up to 2% on these
tiny clips). Every test uses small versions (clips 3 x 4 x 32 x 32, random weights, BatchNorm
statistics randomised so that folding is really tested); the references are the plain models or
float64 autograd, never the fast code.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from vidlearn import speed
from vidlearn.models import create_model
from vidlearn.speed import (
    FAST_TOLERANCE,
    FastConv3d,
    FusedConv,
    conv3d_weight_grad,
    conv_gradients,
    fuse_conv_bn,
    optimize_for_inference,
    optimize_for_training,
    weight_grad_plan,
)

RESNETS = ["r3d_18", "mc3_18", "r2plus1d_18"]
CLIP = (3, 4, 32, 32)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small operations: waiting threads cost more than they save when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _plans_on_small_clips(monkeypatch):
    """The weight-gradient plans run on these tiny clips too (by default small convolutions keep
    PyTorch's own), so that the model-level tests go through them."""
    monkeypatch.setattr(conv_gradients, "SMALL_CONV_MACS", 0)


def randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorm statistics and affine parameters far from their initial 0/1, so folding matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                n = module.num_features
                if module.running_mean is not None:
                    module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                    module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                    module.bias.copy_(torch.rand(n, generator=generator) - 0.5)
    return model


def build(name: str, seed: int = 0, **options) -> nn.Module:
    torch.manual_seed(seed)
    return randomise_bn(create_model(name, num_classes=10, **options), seed)


def clips(batch: int = 2, shape: tuple[int, ...] = CLIP, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(batch, *shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_close(
    fast_value: torch.Tensor, plain_value: torch.Tensor, tolerance: float = FAST_TOLERANCE
) -> float:
    """The tests' rule: max |fast - plain| <= tolerance x max(1, max |plain|); returns the difference."""
    assert fast_value.shape == plain_value.shape
    diff = (fast_value.double() - plain_value.double()).abs().max().item()
    scale = max(1.0, plain_value.double().abs().max().item())
    assert diff <= tolerance * scale, f"max abs difference {diff:.3g} > {tolerance:g} x {scale:.3g}"
    return diff


def count(model: nn.Module, kind: type) -> int:
    return sum(isinstance(module, kind) for module in model.modules())


# --- folding BatchNorm -------------------------------------------------------------------------


@pytest.mark.parametrize("name", RESNETS)
def test_fuse_conv_bn_folds_every_bn_and_keeps_outputs(name):
    model = build(name).eval()
    fused = fuse_conv_bn(model)
    assert count(model, _BatchNorm) > 0 and count(fused, _BatchNorm) == 0  # every Conv -> BN pair found
    x = clips()
    with torch.no_grad():
        assert_close(fused(x), model(x))


@pytest.mark.parametrize("name", RESNETS)
def test_fuse_does_not_change_the_original(name):
    model = build(name).train()
    before = copy.deepcopy(model.state_dict())
    fuse_conv_bn(model)
    optimize_for_inference(model)
    assert model.training and count(model, _BatchNorm) == count(build(name), _BatchNorm)
    assert count(model, FusedConv) == 0
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert all(p.requires_grad for p in model.parameters())


def test_fuse_leaves_unfusable_batch_norms_alone():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv3d(3, 8, 3, padding=1),
        nn.BatchNorm3d(8),  # folds
        nn.ReLU(),
        nn.MaxPool3d(2),
        nn.BatchNorm3d(8),  # after a pooling: stays
        nn.Conv3d(8, 4, 1, bias=False),
        nn.BatchNorm3d(4, track_running_stats=False),  # no running statistics: stays
    )
    randomise_bn(model)
    model.eval()
    fused = fuse_conv_bn(model)
    assert isinstance(fused[1], nn.Identity) and isinstance(fused[4], nn.BatchNorm3d)
    assert isinstance(fused[6], nn.BatchNorm3d)
    x = clips()
    with torch.no_grad():
        assert_close(fused(x), model(x))
        assert_close(optimize_for_inference(model)(x), model(x))


def test_fold_bn_handles_conv2d_with_bias():
    torch.manual_seed(0)
    model = randomise_bn(nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.BatchNorm2d(6))).eval()
    x = torch.randn(2, 3, 17, 17)
    with torch.no_grad():
        assert_close(fuse_conv_bn(model)(x), model(x))
        assert_close(optimize_for_inference(model)(x), model(x))


# --- inference ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RESNETS)
def test_inference_path_equals_plain(name):
    model = build(name).eval()
    fast_model = optimize_for_inference(model)
    assert count(fast_model, _BatchNorm) == 0 and count(fast_model, nn.ReLU) == 0
    if speed.mkldnn_fusion_available():
        assert count(fast_model, FusedConv) == count(model, nn.Conv3d)
    for batch in (2, 3, 2):  # a new batch size repacks the weights; going back reuses nothing stale
        x = clips(batch, seed=batch)
        with torch.no_grad():
            expected = model(x)
        with torch.inference_mode():
            assert_close(fast_model(x), expected)
        with torch.no_grad():  # channels-last input too
            assert_close(fast_model(speed.to_channels_last(x)), expected)


@pytest.mark.parametrize("name", RESNETS)
def test_inference_path_without_fused_ops_equals_plain(name):
    model = build(name).eval()
    x = clips()
    with torch.no_grad():
        assert_close(optimize_for_inference(model, fused_ops=False)(x), model(x))


def test_inference_path_on_a_model_without_batch_norm():
    model = build("course_3d").eval()
    assert count(model, _BatchNorm) == 0
    x = clips(shape=(3, 20, 64, 64))
    with torch.no_grad():
        assert_close(optimize_for_inference(model)(x), model(x))


def test_inference_path_of_mvit_tiny():
    model = build("mvit_v2_s", size="tiny", num_frames=4, frame_size=32).eval()
    x = clips()
    with torch.no_grad():
        assert_close(optimize_for_inference(model)(x), model(x))


def test_inference_model_gradients_fall_back_to_plain_ops():
    """With gradients recorded (saliency on an optimised copy), FusedConv runs differentiable ops."""
    model = build("r3d_18").eval()
    fast_model = optimize_for_inference(model)
    x = clips().requires_grad_()
    fast_model(x).sum().backward()
    expected = x.grad.clone()
    x.grad = None
    model(x).sum().backward()
    assert_close(expected, x.grad)


# --- training ----------------------------------------------------------------------------------


def train_step(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    return logits.detach(), loss.detach()


@pytest.mark.parametrize("name", RESNETS)
def test_training_path_equals_plain_float32(name):
    """Train mode, float32: outputs, loss and BatchNorm running statistics."""
    plain = build(name).train()
    fast_model = optimize_for_training(copy.deepcopy(plain))
    assert fast_model.training and count(fast_model, FastConv3d) > 0
    x, labels = clips(), torch.tensor([3, 7])
    plain_logits, plain_loss = train_step(plain, x, labels)
    fast_logits, fast_loss = train_step(fast_model, x, labels)
    assert_close(fast_logits, plain_logits)
    assert_close(fast_loss, plain_loss)
    for (_key, expected), got in zip(plain.state_dict().items(), fast_model.state_dict().values()):
        assert_close(got, expected)  # running means/variances updated alike


@pytest.mark.parametrize("name", RESNETS)
def test_training_path_gradients_equal_plain_float64(name):
    plain = build(name).double().train()
    fast_model = optimize_for_training(copy.deepcopy(plain))
    x, labels = clips(dtype=torch.float64), torch.tensor([3, 7])
    assert_close(train_step(fast_model, x, labels)[1], train_step(plain, x, labels)[1], 1e-10)
    for (_key, p), q in zip(plain.named_parameters(), fast_model.parameters()):
        assert_close(q.grad, p.grad, 1e-10)


def conv_calls(name: str) -> list[tuple[nn.Conv3d, tuple[int, ...]]]:
    """Every distinct 3D convolution of the small model with the input shape it sees."""
    model, calls, seen = build(name), [], set()
    hooks = [
        m.register_forward_hook(lambda m, args, out: calls.append((m, tuple(args[0].shape))))
        for m in model.modules()
        if isinstance(m, nn.Conv3d)
    ]
    with torch.no_grad():
        model(clips())
    for hook in hooks:
        hook.remove()
    unique = []
    for conv, shape in calls:
        key = (tuple(conv.weight.shape), conv.stride, conv.padding, shape)
        if key not in seen:
            seen.add(key)
            unique.append((conv, shape))
    return unique


def assert_matches_float64(
    fast_conv: nn.Module, conv: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None
) -> None:
    """``fast_conv`` in float32 against ``conv`` in float64 autograd: output, input, weight and bias gradients."""
    reference = copy.deepcopy(conv).double()
    reference_x = x.clone().requires_grad_()
    out = reference(reference_x)
    grad = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    out.backward(grad)
    fast_x = x.float().requires_grad_()
    fast_out = fast_conv(fast_x)
    assert_close(fast_out, out)
    fast_out.backward(grad.float())
    assert_close(fast_x.grad, reference_x.grad)
    assert_close(fast_conv.weight.grad, reference.weight.grad)
    if reference.bias is not None:
        assert_close(fast_conv.bias.grad, reference.bias.grad)


@pytest.mark.parametrize("name", RESNETS)
def test_fast_conv_gradients_equal_reference_float32(name):
    """float32 input and weight gradients of every FastConv3d of the model (channels-last oneDNN
    kernels and the weight-gradient plans) against float64. (Whole-network float32 gradients are
    compared in float64 above: in float32 a ReLU whose input rounds to the other side of 0 flips a
    gradient entry, in the plain model as much as in the fast one.)"""
    generator = torch.Generator().manual_seed(0)
    for conv, shape in conv_calls(name):
        fast_conv = optimize_for_training(copy.deepcopy(conv))
        assert isinstance(fast_conv, FastConv3d)
        x = torch.randn(shape, generator=generator, dtype=torch.float64)
        assert_matches_float64(fast_conv, conv, x, generator)


def test_training_path_keeps_parameters_keys_and_optimizer():
    model = build("r2plus1d_18").train()
    params = list(model.parameters())
    keys = list(model.state_dict())
    values = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert optimize_for_training(model) is model
    assert list(model.parameters()) == params  # the very same Parameter objects
    assert list(model.state_dict()) == keys
    assert all(torch.equal(values[k], v) for k, v in model.state_dict().items())
    train_step(model, clips(), torch.tensor([0, 1]))
    optimizer.step()
    assert not torch.equal(values["stem.0.weight"], model.stem[0].weight.detach())
    # a trained fast model still folds and runs its fast inference path
    model.eval()
    x = clips()
    with torch.no_grad():
        assert_close(optimize_for_inference(model)(x), model(x))


def test_training_path_of_mvit_tiny():
    plain = build("mvit_v2_s", size="tiny", num_frames=4, frame_size=32, dropout=0.0).double().train()
    fast_model = optimize_for_training(copy.deepcopy(plain))
    x, labels = clips(dtype=torch.float64), torch.tensor([3, 7])
    assert_close(train_step(fast_model, x, labels)[0], train_step(plain, x, labels)[0], 1e-10)
    for p, q in zip(plain.parameters(), fast_model.parameters()):
        assert_close(q.grad, p.grad, 1e-10)


def test_training_path_on_a_model_without_batch_norm():
    plain = build("course_3d").train()
    fast_model = optimize_for_training(copy.deepcopy(plain))
    x, labels = clips(shape=(3, 20, 64, 64)), torch.tensor([0, 1])
    assert_close(train_step(fast_model, x, labels)[1], train_step(plain, x, labels)[1])
    for p, q in zip(plain.parameters(), fast_model.parameters()):
        assert_close(q.grad, p.grad)


# --- the weight-gradient plans, each against a float64 reference --------------------------------

CONVS = [
    # (Co, C, kt, kh, kw), stride, padding, input T x H x W: every plan, strides, odd sizes
    ((8, 16, 3, 3, 3), (1, 1, 1), (1, 1, 1), (4, 6, 6)),
    ((8, 16, 3, 3, 3), (2, 2, 2), (1, 1, 1), (5, 9, 9)),
    ((8, 16, 3, 3, 3), (1, 1, 1), (1, 1, 1), (4, 30, 30)),
    ((8, 16, 3, 1, 1), (1, 1, 1), (1, 0, 0), (4, 6, 6)),
    ((8, 16, 3, 1, 1), (2, 1, 1), (1, 0, 0), (5, 6, 6)),
    ((8, 16, 3, 1, 1), (2, 1, 1), (1, 0, 0), (1, 6, 6)),
    ((8, 16, 1, 3, 3), (1, 1, 1), (0, 1, 1), (3, 30, 30)),
    ((8, 16, 1, 3, 3), (1, 2, 2), (0, 1, 1), (3, 9, 9)),
    ((8, 16, 1, 1, 1), (2, 2, 2), (0, 0, 0), (4, 8, 8)),
    ((8, 16, 1, 1, 1), (1, 2, 2), (0, 0, 0), (4, 8, 8)),  # oneDNN's 2D 1x1 stride-2 bug: not "frames"
    ((8, 3, 3, 7, 7), (1, 2, 2), (1, 3, 3), (4, 16, 16)),
]


@pytest.mark.parametrize("weight_shape, stride, padding, size", CONVS)
def test_weight_gradient_plans_equal_reference(weight_shape, stride, padding, size):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, weight_shape[1], *size, generator=generator, dtype=torch.float64)
    weight = torch.randn(weight_shape, generator=generator, dtype=torch.float64)
    out = nn.functional.conv3d(x, weight, stride=stride, padding=padding)
    grad = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    (expected,) = torch.autograd.grad(
        nn.functional.conv3d(x, weight.requires_grad_(), stride=stride, padding=padding), weight, grad
    )
    plan = weight_grad_plan(weight_shape, stride, padding, (1, 1, 1), 1, tuple(out.shape[2:]))
    candidates = {plan, "aten", "im2col"}
    for name in candidates:
        got = conv3d_weight_grad(
            x.float(), grad.float(), weight_shape, stride, padding, (1, 1, 1), 1, plan=name
        )
        assert got.shape == weight_shape
        assert_close(got, expected)


def test_weight_gradient_plan_choices():
    assert weight_grad_plan((64, 64, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1, (2, 7, 7)) == "im2col"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_gradients, "SMALL_CONV_MACS", 100_000_000)
        assert weight_grad_plan((64, 64, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1, (2, 7, 7)) == "aten"
        assert (
            weight_grad_plan((512, 512, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1, (2, 7, 7), batch=4)
            == "im2col"
        )
    assert (
        weight_grad_plan((64, 64, 1, 1, 1), (1, 2, 2), (0, 0, 0), (1, 1, 1), 1, (16, 28, 28)) == "pointwise"
    )
    assert (
        weight_grad_plan((64, 144, 3, 1, 1), (1, 1, 1), (1, 0, 0), (1, 1, 1), 1, (16, 56, 56)) == "temporal"
    )
    assert weight_grad_plan((144, 64, 1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), 1, (16, 56, 56)) == "frames"
    assert weight_grad_plan((512, 512, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1, (2, 7, 7)) == "im2col"
    assert weight_grad_plan((64, 3, 3, 7, 7), (1, 2, 2), (1, 3, 3), (1, 1, 1), 1, (16, 56, 56)) == "aten"
    assert weight_grad_plan((64, 64, 3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 4, (16, 56, 56)) == "aten"


# --- torch.compile (kept as an option, off by default) --------------------------------------------


@pytest.mark.slow
def test_compiled_inference_path_equals_plain():
    model = build("course_3d").eval()
    x = clips(shape=(3, 8, 32, 32))
    compiled = optimize_for_inference(model, compile=True)
    with torch.no_grad():
        assert_close(compiled(x), model(x))


@pytest.mark.parametrize("stride", [(1, 1, 1), (1, 2, 2), (1, 4, 4), (2, 3, 3)])
@pytest.mark.parametrize("size", [(4, 8, 8), (5, 9, 7), (9, 16, 16)])
def test_depthwise_conv_gradients_equal_reference(stride, size):
    """MViT's token pooling (depthwise 3x3x3, padding 1) in training: output, input and weight
    gradients of FastDepthwiseConv3d against float64 autograd, float32."""
    torch.manual_seed(0)
    conv = nn.Conv3d(8, 8, 3, stride=stride, padding=1, groups=8, bias=True)
    fast_conv = optimize_for_training(copy.deepcopy(conv))
    assert isinstance(fast_conv, speed.FastDepthwiseConv3d)
    x = torch.randn(2, 8, *size, dtype=torch.float64)
    assert_matches_float64(fast_conv, conv, x)


@pytest.mark.slow
def test_compiled_training_path_equals_plain():
    torch.manual_seed(0)
    plain = randomise_bn(
        nn.Sequential(
            nn.Conv3d(3, 16, 3, padding=1, bias=False),
            nn.BatchNorm3d(16),
            nn.ReLU(),
            nn.Conv3d(16, 16, (3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(16),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
            nn.Linear(16, 10),
        )
    ).train()
    model = copy.deepcopy(plain)
    compiled = optimize_for_training(model, compile=True)
    x, labels = clips(), torch.tensor([3, 7])
    fast_logits, fast_loss = train_step(compiled, x, labels)
    plain_logits, plain_loss = train_step(plain, x, labels)
    assert_close(fast_logits, plain_logits)
    assert_close(fast_loss, plain_loss)
    for p, q in zip(plain.parameters(), model.parameters()):  # the compiled wrapper trains model's parameters
        assert_close(q.grad, p.grad)


def test_training_path_keeps_2d_weights_contiguous():
    """oneDNN's channels-last 2D backward-weights kernel is wrong for 1 x 1 stride-2 kernels (torch
    2.13/2.14 on AVX2): the training path leaves 2D weights in the default layout, and stays exact."""
    torch.manual_seed(0)
    plain = nn.Sequential(
        nn.Conv2d(16, 32, 1, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 16, 4)
    ).double()
    model = optimize_for_training(copy.deepcopy(plain))
    assert model[0].weight.is_contiguous()
    x = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    plain(x).sum().backward()
    model(x).sum().backward()
    assert_close(model[0].weight.grad, plain[0].weight.grad, 1e-10)


def test_pooling_attention_function_passes_gradcheck():
    from vidlearn.speed.mvit_attention import _PoolingAttentionFunction

    generator = torch.Generator().manual_seed(5)
    q_grid, kv_grid = (2, 2, 3), (1, 2, 2)

    def rand(*shape):
        return torch.randn(*shape, dtype=torch.float64, generator=generator, requires_grad=True)

    q, k, v = rand(2, 2, 1 + 12, 4), rand(2, 2, 1 + 4, 4), rand(2, 2, 1 + 4, 4)
    along = rand(2, 2, *q_grid, 1), rand(2, 2, *q_grid, 2), rand(2, 2, *q_grid, 2)
    assert torch.autograd.gradcheck(
        lambda *t: _PoolingAttentionFunction.apply(*t, q_grid, kv_grid), (q, k, v, *along)
    )
    # Forward equals PyTorch's attention with the bias as a mask, plus the residual (not for the class token).
    bias = along[0][..., :, None, None] + along[1][..., None, :, None] + along[2][..., None, None, :]
    mask = nn.functional.pad(bias.reshape(2, 2, 12, 4), (1, 0, 1, 0))
    expected = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    expected = torch.cat((expected[:, :, :1], expected[:, :, 1:] + q[:, :, 1:]), dim=2)
    assert_close(_PoolingAttentionFunction.apply(q, k, v, *along, q_grid, kv_grid), expected, 1e-12)
