"""Winograd F(4x4, 3x3) convolutions (vidlearn.speed.winograd) against the definition and PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidlearn.speed import FAST_TOLERANCE, FastConv3d, optimize_for_training, winograd

ATEN = torch.ops.aten


def _reference_conv(x, w, bias=None):
    return F.conv3d(x, w, bias, 1, (w.shape[2] // 2, 1, 1))


def test_one_dimensional_matrices_compute_a_correlation():
    # F(4, 3): A^T [(G g) * (B^T d)] = the 4 outputs of sum_k d[i + k] g[k] (Lavin & Gray 2016).
    bt, g, at = winograd.transform_matrices()
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        d = torch.randn(6, dtype=torch.float64, generator=generator)
        k = torch.randn(3, dtype=torch.float64, generator=generator)
        expected = torch.stack([(d[i : i + 3] * k).sum() for i in range(4)])
        assert torch.allclose(at @ ((g @ k) * (bt @ d)), expected, atol=1e-12)
    assert bt.shape == (6, 6) and g.shape == (6, 3) and at.shape == (4, 6)


# (batch, in, out, frames, height, width, kt): grids that are and are not multiples of 4, 1 x 1 tiles.
SHAPES = [
    (2, 5, 7, 3, 9, 6, 3),
    (3, 16, 8, 4, 8, 8, 1),
    (1, 4, 4, 1, 4, 5, 3),
    (2, 8, 8, 5, 13, 3, 5),
    (1, 3, 2, 2, 2, 2, 1),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_conv3d_equals_pytorch(shape, dtype):
    b, c, co, t, h, w_, kt = shape
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(b, c, t, h, w_, dtype=dtype, generator=generator)
    w = torch.randn(co, c, kt, 3, 3, dtype=dtype, generator=generator)
    bias = torch.randn(co, dtype=dtype, generator=generator)
    residual = torch.randn(b, co, t, h, w_, dtype=dtype, generator=generator)
    tolerance = 1e-10 if dtype == torch.float64 else FAST_TOLERANCE
    expected = _reference_conv(x, w, bias)
    got = winograd.conv3d(x, winograd.transform_weight(w), bias)
    assert got.shape == expected.shape and got.is_contiguous(memory_format=torch.channels_last_3d)
    assert (got - expected).abs().max() <= tolerance * max(1.0, expected.abs().max().item())
    fused = winograd.conv3d(
        x.contiguous(memory_format=torch.channels_last_3d),
        winograd.transform_weight(w),
        bias,
        residual,
        relu=True,
    )
    expected_fused = torch.relu(expected + residual)
    assert (fused - expected_fused).abs().max() <= tolerance * max(1.0, expected_fused.abs().max().item())


@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_equal_pytorch_float64(shape):
    b, c, co, t, h, w_, kt = shape
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(b, c, t, h, w_, dtype=torch.float64, generator=generator)
    w = torch.randn(co, c, kt, 3, 3, dtype=torch.float64, generator=generator)
    grad = torch.randn(b, co, t, h, w_, dtype=torch.float64, generator=generator)
    expected_x, expected_w = ATEN.convolution_backward(
        grad, x, w, None, [1, 1, 1], [kt // 2, 1, 1], [1, 1, 1], False, [0, 0, 0], 1, [True, True, False]
    )[:2]
    grad_x = winograd.conv3d(grad, winograd.transform_weight(w, transposed=True))
    assert torch.allclose(grad_x, expected_x, atol=1e-10)
    grad_w = winograd.weight_grad(x, grad, kt)
    assert grad_w.shape == w.shape
    assert torch.allclose(grad_w, expected_w, atol=1e-10)


def test_clips_are_processed_in_chunks(monkeypatch):
    # A workspace smaller than one clip: every clip is its own chunk; the result does not change.
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(3, 6, 4, 8, 12, dtype=torch.float64, generator=generator)
    w = torch.randn(5, 6, 3, 3, 3, dtype=torch.float64, generator=generator)
    grad = torch.randn(3, 5, 4, 8, 12, dtype=torch.float64, generator=generator)
    whole = winograd.conv3d(x, winograd.transform_weight(w)), winograd.weight_grad(x, grad, 3)
    monkeypatch.setattr(winograd, "_CHUNK_ELEMENTS", 1)
    assert winograd._chunk(3, 6, 8, 12, 6) == 1
    chunked = winograd.conv3d(x, winograd.transform_weight(w)), winograd.weight_grad(x, grad, 3)
    for a, b in zip(whole, chunked):
        assert torch.allclose(a, b, atol=1e-12)


def test_workspace_is_reused_in_and_out_of_inference_mode():
    w = torch.randn(4, 4, 1, 3, 3)
    x = torch.randn(1, 4, 2, 8, 8)
    with torch.inference_mode():
        inside = winograd.conv3d(x, winograd.transform_weight(w))
    outside = winograd.conv3d(x, winograd.transform_weight(w))
    assert torch.equal(inside, outside)
    winograd.WORKSPACE.release()
    assert torch.equal(winograd.conv3d(x, winograd.transform_weight(w)), outside)


def test_applies_only_to_same_padded_unit_stride_3x3_kernels():
    assert winograd.applies((3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1)
    assert winograd.applies((1, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), 1)
    assert not winograd.applies((3, 3, 3), (1, 2, 2), (1, 1, 1), (1, 1, 1), 1)  # stride
    assert not winograd.applies((3, 3, 3), (1, 1, 1), (0, 1, 1), (1, 1, 1), 1)  # "valid" in time
    assert not winograd.applies((3, 1, 1), (1, 1, 1), (1, 0, 0), (1, 1, 1), 1)  # temporal kernel
    assert not winograd.applies((3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 4)  # groups
    assert not winograd.applies((3, 3, 3), (1, 1, 1), (2, 2, 2), (2, 2, 2), 1)  # dilation


def test_pays_rules_follow_the_measurements():
    # docs/model-speed.md: inference pays from kt x C >= 128; training from kt x C >= 64 on grids of 14 x 14 and more.
    assert winograd.winograd_pays(64, 64, 3, 56, 56)
    assert not winograd.winograd_pays(64, 64, 1, 56, 56)
    assert winograd.winograd_pays(512, 512, 3, 7, 7)
    assert winograd.winograd_pays(64, 144, 1, 56, 56, training=True)
    assert not winograd.winograd_pays(512, 512, 3, 7, 7, training=True)
    assert not winograd.winograd_pays(3, 64, 3, 112, 112, training=True)


def test_fast_conv3d_uses_winograd_and_matches_gradcheck():
    conv = torch.nn.Conv3d(64, 64, (1, 3, 3), padding=(0, 1, 1)).double()
    optimize_for_training(conv)
    assert isinstance(conv, FastConv3d)
    x = torch.randn(1, 64, 2, 14, 14, dtype=torch.float64, requires_grad=True)
    assert winograd.winograd_pays(64, 64, 1, 14, 14, training=True)
    y = conv(x)
    assert y.grad_fn is not None and "Winograd" in type(y.grad_fn).__name__
    reference = torch.nn.Conv3d(64, 64, (1, 3, 3), padding=(0, 1, 1)).double()
    reference.load_state_dict(conv.state_dict())
    x_ref = x.detach().clone().requires_grad_()
    grad = torch.randn_like(y)
    y.backward(grad)
    reference(x_ref).backward(grad)
    assert torch.allclose(y, reference(x_ref), atol=1e-10)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-10)
    assert torch.allclose(conv.weight.grad, reference.weight.grad, atol=1e-10)
    assert torch.allclose(conv.bias.grad, reference.bias.grad, atol=1e-10)
