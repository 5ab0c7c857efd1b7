"""MViTv2 (``vidlearn.models.mvit``): torchvision's published size and cost, the pooling attention's
token counts, relative positions against an explicit reference, export, gradients and training.

Expected numbers come from torchvision's model card for ``mvit_v2_s`` (params, GFLOPs), from the
paper's architecture (Li et al., CVPR 2022: patch stride 2x4x4, query pooling 1x2x2 per stage, key
and value strides 1x8x8 shrinking with the grid) or from hand arithmetic; never from running our code.
"""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
from conftest import recording
from torch import nn

from vidlearn.analysis import summarize
from vidlearn.engine.export import export_model
from vidlearn.errors import BadArgumentError
from vidlearn.models import create_model, list_models, model_info
from vidlearn.models.mvit import MultiscaleAttention

# torchvision's model card for mvit_v2_s (Kinetics-400, 400 classes, 16 x 224 x 224 clips):
# num_params 34,537,744 and _ops 64.224 GFLOPS (multiply-adds; the docs table rounds to 64.22).
TORCHVISION_PARAMS = 34_537_744
TORCHVISION_GFLOPS = 64.224

# The tiny configuration on small clips: (T, H, W) and its token grid after the 2x4x4 patch
# embedding, ceil(T / 2) x ceil(H / 4) x ceil(W / 4).
TINY_CLIPS = [(8, 16, 16), (1, 16, 16), (4, 20, 28), (5, 40, 56)]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """The tiny model's operations are too small to share between threads, and waiting threads cost
    dearly (tens of times here) when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def meta_model() -> nn.Module:
    """The paper-size model for Kinetics-400 on the meta device: shapes only, built in milliseconds."""
    with torch.device("meta"):
        return create_model("mvit_v2_s", num_classes=400).eval()


def tiny(t: int = 8, h: int = 16, w: int = 16, num_classes: int = 7, **options) -> nn.Module:
    torch.manual_seed(0)
    return create_model(
        "mvit_v2_s", num_classes=num_classes, size="tiny", num_frames=t, frame_size=(h, w), **options
    )


def outputs_of(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs of the named submodules during ``model(x)``."""
    with recording(model, names) as outputs, torch.no_grad():
        model(x)
    return outputs


# --- registry, size and cost ------------------------------------------------------------------


def test_registered_with_its_options():
    assert "mvit_v2_s" in list_models()
    info = model_info("mvit_v2_s")
    assert info.default_input == (3, 16, 224, 224)
    assert info.options == {
        "num_frames": 16,
        "frame_size": (224, 224),
        "in_channels": 3,
        "dropout": 0.5,
        "size": "s",
    }


def test_parameters_match_torchvision_exactly(meta_model):
    assert sum(p.numel() for p in meta_model.parameters()) == TORCHVISION_PARAMS


# Keys and shapes of torchvision's layout, worked out by hand from the architecture: head_dim 96 in
# every block; relative tables 2 * max(query, key size) - 1 long: block 0 queries 56 (keys 7) -> 111,
# block 1 queries 28 (keys 14) -> 55, block 15 queries and keys 7 -> 13; in time 2 * 8 - 1 = 15.
# A stage's first block projects 96 -> 3 x 192 in qkv (dim_mul_in_att) and has a 96 -> 192 shortcut.
EXPECTED_KEYS = {
    "conv_proj.weight": (96, 3, 3, 7, 7),
    "conv_proj.bias": (96,),
    "pos_encoding.class_token": (96,),
    "blocks.0.norm1.weight": (96,),
    "blocks.0.attn.qkv.weight": (288, 96),
    "blocks.0.attn.project.0.weight": (96, 96),
    "blocks.0.attn.pool_q.pool.weight": (96, 1, 3, 3, 3),
    "blocks.0.attn.pool_k.norm_act.0.weight": (96,),
    "blocks.0.attn.rel_pos_h": (111, 96),
    "blocks.0.attn.rel_pos_w": (111, 96),
    "blocks.0.attn.rel_pos_t": (15, 96),
    "blocks.0.mlp.0.weight": (384, 96),
    "blocks.0.mlp.3.weight": (96, 384),
    "blocks.1.attn.qkv.weight": (576, 96),
    "blocks.1.attn.rel_pos_h": (55, 96),
    "blocks.1.project.weight": (192, 96),
    "blocks.1.norm2.bias": (192,),
    "blocks.14.attn.pool_v.pool.weight": (96, 1, 3, 3, 3),
    "blocks.15.attn.rel_pos_w": (13, 96),
    "blocks.15.mlp.3.bias": (768,),
    "norm.weight": (768,),
    "head.1.weight": (400, 768),
}
TORCHVISION_KEY = re.compile(
    r"^(conv_proj\.(weight|bias)|pos_encoding\.class_token|norm\.(weight|bias)|head\.1\.(weight|bias)|"
    r"blocks\.\d+\.(norm[12]|project|mlp\.[03]|attn\.(qkv|project\.0|pool_[qkv]\.norm_act\.0))\.(weight|bias)|"
    r"blocks\.\d+\.attn\.(pool_[qkv]\.pool\.weight|rel_pos_[hwt]))$"
)


def test_state_dict_uses_torchvision_keys(meta_model):
    state = meta_model.state_dict()
    assert not [key for key in state if not TORCHVISION_KEY.match(key)]
    for key, shape in EXPECTED_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    # Only the three stage transitions (blocks 1, 3 and 14) change the width.
    projected = [
        int(key.split(".")[1]) for key in state if re.fullmatch(r"blocks\.\d+\.project\.weight", key)
    ]
    assert sorted(projected) == [1, 3, 14]


def test_multiply_adds_match_torchvision(meta_model):
    # Counted as torchvision counts: convolutions (patch embedding, the depthwise poolings), linear
    # layers, attention's Q K^T and A V, and the relative-position products q . R; LayerNorm, GELU,
    # softmax, max-pooling and additions count 0. Rule: equal to the card's three decimals.
    summary = summarize(meta_model, (3, 16, 224, 224), receptive_fields=False)
    assert summary.total_params == TORCHVISION_PARAMS
    assert round(summary.total_flops / 1e9, 3) == TORCHVISION_GFLOPS


def test_pooling_reduces_the_tokens_stage_by_stage(meta_model):
    # Patch embedding 3x7x7, stride 2x4x4: 16 x 224 x 224 -> 8 x 56 x 56 tokens; each later stage's
    # first block pools queries 1x2x2: 8 x 28 x 28, 8 x 14 x 14, 8 x 7 x 7; plus the class token.
    stage_ends = {"blocks.0": (96, 56), "blocks.2": (192, 28), "blocks.13": (384, 14), "blocks.15": (768, 7)}
    # Keys and values: 1x8x8 in stage 1 (56 / 8 = 7), 1x2x2 inside stage 3 (14 / 2 = 7).
    pooled = ["conv_proj", "blocks.0.attn.pool_k", "blocks.5.attn.pool_v", "blocks.5.attn.pool_q"]
    out = outputs_of(meta_model, [*stage_ends, *pooled], torch.empty(1, 3, 16, 224, 224, device="meta"))
    assert out["conv_proj"].shape == (1, 96, 8, 56, 56)
    for name, (dim, side) in stage_ends.items():
        assert out[name].shape == (1, 1 + 8 * side * side, dim), name
    # Pooled per head: B x heads x (1 + T*H*W) x head_dim.
    assert out["blocks.0.attn.pool_k"].shape == (1, 1, 1 + 8 * 7 * 7, 96)
    assert out["blocks.5.attn.pool_v"].shape == (1, 4, 1 + 8 * 7 * 7, 96)
    assert out["blocks.5.attn.pool_q"].shape == (1, 4, 1 + 8 * 14 * 14, 96)


# --- shapes and arguments -----------------------------------------------------------------------


def test_tiny_shapes_over_clip_sizes():
    for t, h, w in TINY_CLIPS:
        model = tiny(t, h, w).eval()
        x = torch.randn(2, 3, t, h, w)
        with torch.no_grad():
            assert model(x).shape == (2, 7), (t, h, w)
            assert model.features(x).shape == (2, 128), (t, h, w)
    flow = tiny(4, 16, 16, in_channels=2).eval()
    with torch.no_grad():
        assert flow(torch.randn(1, 2, 4, 16, 16)).shape == (1, 7)


def test_clips_of_another_size_and_bad_options_are_rejected():
    model = tiny(8, 16, 16)
    with pytest.raises(BadArgumentError, match=r"num_frames=16, frame_size=\(32, 16\)"):
        model(torch.randn(1, 3, 16, 32, 16))
    with pytest.raises(BadArgumentError, match="B x 3 x T x H x W"):
        model(torch.zeros(1, 3, 8, 16, 16, dtype=torch.uint8))
    with pytest.raises(BadArgumentError, match="size"):
        create_model("mvit_v2_s", num_classes=3, size="xl")
    with pytest.raises(BadArgumentError, match="dropout"):
        create_model("mvit_v2_s", num_classes=3, size="tiny", dropout=1.0)
    with pytest.raises(BadArgumentError, match="num_frames"):
        create_model("mvit_v2_s", num_classes=3, size="tiny", num_frames=0)


# --- pooling attention with relative positions ---------------------------------------------------


def reference_attention(attn: MultiscaleAttention, x: torch.Tensor) -> torch.Tensor:
    """The block's attention written out: explicit softmax, and the relative position term of each
    (query, key) pair as q . (R_t[dt] + R_h[dh] + R_w[dw]), the distance along each axis measured on
    the finer grid (a coarse grid's index times its stride ratio), offset so the smallest is 0."""
    b, n, _ = x.shape
    heads = attn.heads
    q, k, v = attn.qkv(x).reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = attn.pool_q(q, attn.grid), attn.pool_k(k, attn.grid), attn.pool_v(v, attn.grid)
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])

    def distance(i: int, j: int, q_size: int, k_size: int) -> int:
        q_ratio, k_ratio = max(k_size / q_size, 1.0), max(q_size / k_size, 1.0)
        return int(i * q_ratio - (j - (k_size - 1)) * k_ratio)

    q_cells = list(itertools.product(*map(range, attn.q_grid)))  # (t, h, w) in token order
    k_cells = list(itertools.product(*map(range, attn.kv_grid)))
    tables = (attn.rel_pos_t, attn.rel_pos_h, attn.rel_pos_w)
    bias = torch.zeros_like(logits)
    for qi, q_cell in enumerate(q_cells):
        for ki, k_cell in enumerate(k_cells):
            rows = sum(
                table[distance(i, j, q_size, k_size)]
                for table, i, j, q_size, k_size in zip(tables, q_cell, k_cell, attn.q_grid, attn.kv_grid)
            )
            bias[:, :, 1 + qi, 1 + ki] = (q[:, :, 1 + qi] * rows).sum(-1)
    weights = torch.exp(logits + bias)
    out = (weights / weights.sum(-1, keepdim=True)) @ v
    out[:, :, 1:] += q[:, :, 1:]  # residual pooling, not for the class token
    return attn.project(out.permute(0, 2, 1, 3).reshape(b, out.shape[2], -1))


def test_relative_position_attention_equals_the_explicit_reference():
    # Tiny on 4 x 20 x 28 (grid 2 x 5 x 7): block 0 pools keys 1x4x4 (queries 5 x 7, keys 2 x 2),
    # block 1 pools both 1x2x2 (3 x 4 each), block 3 pools queries 1x2x2 and keys 1x1x1 (keys finer).
    model = tiny(4, 20, 28).eval()
    for block in model.blocks:
        for table in (block.attn.rel_pos_h, block.attn.rel_pos_w, block.attn.rel_pos_t):
            nn.init.normal_(table)  # large enough to dominate the logits, so a wrong index shows
    tokens = model.pos_encoding(torch.randn(2, 2 * 5 * 7, 32))
    seen = []
    with torch.no_grad():
        for block in model.blocks:
            attn = block.attn
            seen.append((attn.q_grid, attn.kv_grid))
            torch.testing.assert_close(attn(tokens), reference_attention(attn, tokens), atol=1e-4, rtol=1e-4)
            tokens = block(tokens)
    assert (
        seen[0] == ((2, 5, 7), (2, 2, 2))
        and seen[1] == ((2, 3, 4), (2, 3, 4))
        and seen[3] == ((2, 2, 2), (2, 3, 4))
    )


# --- export, gradients, training ----------------------------------------------------------------


def test_torch_export_gives_the_same_logits():
    model = tiny(4, 16, 16).eval()
    x = torch.randn(1, 3, 4, 16, 16)
    with torch.no_grad():
        program = torch.export.export(model, (x,))
        torch.testing.assert_close(program.module()(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # about 15 s of one core, almost all in the ONNX exporter
def test_onnx_export_runs_in_onnxruntime(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = tiny(4, 16, 16).eval()
    x = torch.randn(1, 3, 4, 16, 16)
    out = export_model(model, (3, 4, 16, 16), tmp_path / "mvit.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(out))
    logits = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(logits), model(x), atol=1e-4, rtol=1e-4)


def test_a_gradient_step_reaches_and_changes_every_parameter_the_class_token_depends_on():
    model = tiny(4, 16, 16).train()
    before = {key: p.detach().clone() for key, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    nn.functional.cross_entropy(model(torch.randn(2, 3, 4, 16, 16)), torch.tensor([0, 1])).backward()
    # The head reads only the class token. In the last block the pooled grid queries (and the
    # relative positions, which only grid queries have) make only grid outputs, which nothing reads;
    # the class token's query is not pooled, only normalised. So exactly these four get no gradient.
    last = f"blocks.{len(model.blocks) - 1}.attn"
    unreachable = {
        f"{last}.pool_q.pool.weight",
        f"{last}.rel_pos_h",
        f"{last}.rel_pos_w",
        f"{last}.rel_pos_t",
    }
    without_gradient = {
        key for key, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    }
    assert without_gradient == unreachable
    optimizer.step()
    assert {key for key, p in model.named_parameters() if torch.equal(p, before[key])} == unreachable


def moving_squares(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips ``count x 3 x 8 x 16 x 16``: a 4 x 4 white square moving 1 pixel a frame, right (label 1)
    or left (label 0). Both directions sweep the same columns, so only the motion tells them apart."""
    labels = torch.randint(0, 2, (count,), generator=generator)
    clips = torch.zeros(count, 3, 8, 16, 16)
    for clip, label in zip(clips, labels.tolist()):
        top, start = (int(v) for v in torch.randint(0, 6, (2,), generator=generator))
        for t in range(8):
            left = start + (t if label == 1 else 7 - t)
            clip[:, t, top : top + 4, left : left + 4] = 1.0
    return clips, labels


def test_tiny_learns_which_way_a_square_moves():
    generator = torch.Generator().manual_seed(0)
    train_clips, train_labels = moving_squares(128, generator)
    test_clips, test_labels = moving_squares(64, generator)
    model = tiny(8, 16, 16, num_classes=2, dropout=0.0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(30):
        batch = torch.randint(0, 128, (8,), generator=generator)
        loss = nn.functional.cross_entropy(model(train_clips[batch]), train_labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model.eval()(test_clips).argmax(1) == test_labels).float().mean().item()
    # Chance is 0.5; 0.8 on 64 held-out clips is far outside what guessing gives.
    assert accuracy >= 0.8
