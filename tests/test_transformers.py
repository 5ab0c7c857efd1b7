"""Video transformers: TimeSformer, ViViT and VideoMAE's ViT (``vit_video``).

Expected numbers come from the papers (TimeSformer: Bertasius et al. 2021, Tables 1-2; ViViT: Arnab
et al. 2021, Table 2; VideoMAE: Tong et al. 2022) and from hand arithmetic of the architectures,
never from running our own code. Paper-size models are built on the meta device; real forwards use
the ``tiny`` size on small clips.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from vidlearn.analysis import summarize
from vidlearn.errors import BadArgumentError
from vidlearn.models import create_model, list_models, model_info
from vidlearn.models.transformer import Attention, attend_in_groups

# Every scheme and variant at the tiny size, on clips small enough to run.
TINY = {
    "timesformer-divided": ("timesformer", {"attention": "divided"}),
    "timesformer-joint": ("timesformer", {"attention": "joint"}),
    "timesformer-space": ("timesformer", {"attention": "space"}),
    "vivit-factorised_encoder": ("vivit", {"variant": "factorised_encoder"}),
    "vivit-factorised_self_attention": ("vivit", {"variant": "factorised_self_attention"}),
    "vit_video": ("vit_video", {}),
}
TINY_DIM = 192
# (T, H, W): ViViT and vit_video cut 2-frame tubelets, so their T is even.
CLIP_SIZES = {"timesformer": [(1, 32, 32), (3, 32, 48), (4, 64, 32)], "vivit": [(2, 32, 32), (4, 48, 32)]}
CLIP_SIZES["vit_video"] = CLIP_SIZES["vivit"]


def tiny(key: str, num_classes: int = 5, t: int = 4, h: int = 32, w: int = 32, **options) -> nn.Module:
    name, scheme = TINY[key]
    return create_model(name, num_classes, size="tiny", num_frames=t, frame_size=(h, w), **scheme, **options)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- registry and input checks ----------------------------------------------------------------


def test_registered_with_the_papers_inputs():
    assert {"timesformer", "vivit", "vit_video"} <= set(list_models())
    assert model_info("timesformer").default_input == (3, 8, 224, 224)  # TimeSformer: 8 frames of 224
    assert model_info("vivit").default_input == (3, 32, 224, 224)  # ViViT on Kinetics: 32 frames
    assert model_info("vit_video").default_input == (3, 16, 224, 224)  # VideoMAE: 16 frames
    for name in ("timesformer", "vivit", "vit_video"):
        options = model_info(name).options
        assert options["size"] == "base" and options["in_channels"] == 3
        assert options["num_frames"] == model_info(name).default_input[1]


@pytest.mark.parametrize("key", TINY)
def test_output_and_feature_shapes_over_clip_sizes(key):
    for t, h, w in CLIP_SIZES[TINY[key][0]]:
        model = tiny(key, 7, t, h, w).eval()
        x = torch.randn(2, 3, t, h, w)
        with torch.no_grad():
            assert model(x).shape == (2, 7), (key, t, h, w)
            assert model.features(x).shape == (2, TINY_DIM), (key, t, h, w)


def test_patch_size_and_tubelet_options():
    # 8 x 8 patches of a 32 x 48 frame: 4 x 6 = 24 per frame, plus the class token.
    model = create_model("timesformer", 3, size="tiny", patch_size=8, num_frames=2, frame_size=(32, 48))
    assert model.pos_embed.shape == (1, 1 + 24, TINY_DIM) and model.time_embed.shape == (1, 2, TINY_DIM)
    # (1, 16, 16) tubelets are per-frame patches: 4 frames x 4 patches.
    frames = create_model(
        "vivit",
        3,
        variant="factorised_self_attention",
        size="tiny",
        tubelet=(1, 16, 16),
        num_frames=4,
        frame_size=32,
    )
    assert frames.pos_embed.shape == (1, 16, TINY_DIM)
    assert frames(torch.randn(1, 3, 4, 32, 32)).shape == (1, 3)


def test_clip_size_mismatch_and_bad_options_are_reported():
    model = tiny("vit_video", t=4)
    with pytest.raises(BadArgumentError, match="num_frames=6"):
        model(torch.randn(1, 3, 6, 32, 32))
    with pytest.raises(BadArgumentError, match="B x 3 x T x H x W"):
        model(torch.randn(1, 1, 4, 32, 32))
    with pytest.raises(BadArgumentError, match="tubelet"):
        create_model("vivit", 3, size="tiny", num_frames=3, frame_size=32)  # 3 frames in 2-frame tubelets
    with pytest.raises(BadArgumentError, match="tubelet"):
        create_model("timesformer", 3, size="tiny", frame_size=40)  # 40 is not a multiple of 16
    with pytest.raises(BadArgumentError, match="divided, joint, space"):
        create_model("timesformer", 3, attention="axial")
    with pytest.raises(BadArgumentError, match="factorised_encoder"):
        create_model("vivit", 3, variant="spatio_temporal")
    with pytest.raises(BadArgumentError, match="tiny, small, base"):
        create_model("vit_video", 3, size="huge")


# --- which tokens attend to which -----------------------------------------------------------


@pytest.mark.parametrize(
    "grouping, reached",
    [
        # Over time: the token at (frame 1, position 2) reaches position 2 in every frame.
        ("b (t n) d -> (b n) t d", {(t, 2) for t in range(3)}),
        # Over space: it reaches every position of frame 1.
        ("b (t n) d -> (b t) n d", {(1, n) for n in range(4)}),
    ],
)
def test_grouped_attention_reaches_exactly_its_group(grouping, reached):
    torch.manual_seed(0)
    attention, norm = Attention(12, 3), nn.LayerNorm(12)
    tokens = torch.randn(1, 3 * 4, 12)  # T = 3 frames of N = 4 positions
    moved = tokens.clone()
    moved[0, 1 * 4 + 2] += torch.randn(12)  # a shift of all channels alone would be normalised away
    with torch.no_grad():
        change = attend_in_groups(moved, norm, attention, grouping, t=3, n=4) - attend_in_groups(
            tokens, norm, attention, grouping, t=3, n=4
        )
    changed = {divmod(i, 4) for i in range(12) if change[0, i].abs().max() > 1e-6}
    assert changed == reached


def _copy_of(model: nn.Module, attention: str) -> nn.Module:
    """A one-frame TimeSformer with ``attention`` holding every parameter of the space-only ``model``."""
    other = tiny(f"timesformer-{attention}", t=1).eval()
    missing, unexpected = other.load_state_dict(model.state_dict(), strict=False)
    # What space-only lacks: the time embedding and, for divided, each block's temporal branch.
    assert not unexpected
    assert set(missing) == {"time_embed"} | {key for key in other.state_dict() if ".temporal_" in key}
    return other


def test_with_one_frame_joint_attention_is_space_only_attention():
    # With T = 1 the joint sequence is one frame's 1 + N tokens, as in space-only attention, and
    # averaging one frame changes nothing. The time embedding is added to every patch, so it must be
    # zero (as the official code initialises it) for the two to agree.
    torch.manual_seed(0)
    space = tiny("timesformer-space", t=1).eval()
    joint = _copy_of(space, "joint")
    x = torch.randn(2, 3, 1, 32, 32)
    with torch.no_grad():
        joint.time_embed.zero_()
        torch.testing.assert_close(joint(x), space(x))
        joint.time_embed.normal_()
        assert not torch.allclose(joint(x), space(x), atol=1e-4)


def test_with_one_frame_divided_attention_is_space_only_attention_when_temporal_fc_is_zero():
    # With T = 1 temporal attention has a single key: its softmax weight is 1 and it returns
    # proj(v), not zero. So divided == space-only needs, besides the shared weights and a zero time
    # embedding, every block's temporal_fc to be zero (weight and bias); the temporal norm and
    # attention weights then do not matter. (The official code zeroes temporal_fc in all blocks
    # but the first so that an image-pretrained model starts out as the image model.)
    torch.manual_seed(0)
    space = tiny("timesformer-space", t=1).eval()
    divided = _copy_of(space, "divided")
    x = torch.randn(2, 3, 1, 32, 32)
    with torch.no_grad():
        divided.time_embed.zero_()
        assert not torch.allclose(divided(x), space(x), atol=1e-4)
        for block in divided.blocks:
            nn.init.zeros_(block.temporal_fc.weight)
            nn.init.zeros_(block.temporal_fc.bias)
            block.temporal_attn.qkv.weight.normal_()  # arbitrary: it no longer matters
        torch.testing.assert_close(divided(x), space(x))
        divided.time_embed.normal_()
        assert not torch.allclose(divided(x), space(x), atol=1e-4)


def test_space_only_ignores_frame_order_and_the_time_embedding_makes_it_matter():
    # Space-only attention sees each frame alone and averages the frames' class tokens; with a
    # learned time embedding joint and divided attention know where each frame sits.
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 32, 32)
    shuffled = x[:, :, [2, 0, 3, 1]]
    with torch.no_grad():
        space = tiny("timesformer-space").eval()
        torch.testing.assert_close(space(shuffled), space(x))
        for key in ("timesformer-joint", "timesformer-divided"):
            model = tiny(key).eval()
            model.time_embed.normal_()
            assert not torch.allclose(model(shuffled), model(x), atol=1e-4), key


# --- paper-size parameter counts ----------------------------------------------------------------

D = 768  # ViT-B: width 768, 12 blocks, 12 heads, MLP 3072


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def attention(d: int = D) -> int:
    return linear(d, 3 * d) + linear(d, d)  # qkv and proj


def block(d: int = D) -> int:
    return 2 * d + attention(d) + 2 * d + linear(d, 4 * d) + linear(4 * d, d)  # norm1, attn, norm2, mlp


def embedding(t: int, p: int = 16, d: int = D) -> int:
    return 3 * t * p * p * d + d  # t x p x p x 3 tubelet -> D, with bias


def timesformer_params(attention_type: str, classes: int) -> int:
    # 8 frames of 224 x 224: N = 196 patches, class token, space positions for 1 + N tokens.
    shared = embedding(1) + D + 197 * D + 12 * block() + 2 * D + linear(D, classes)
    if attention_type == "space":
        return shared
    time = 8 * D
    if attention_type == "joint":
        return shared + time
    # Divided: temporal_norm1, temporal_attn and temporal_fc in every block.
    return shared + time + 12 * (2 * D + attention() + linear(D, D))


@pytest.mark.parametrize("attention_type", ["divided", "joint", "space"])
def test_timesformer_parameters_match_the_paper(attention_type):
    with torch.device("meta"):
        k400 = create_model("timesformer", 400, attention=attention_type)
        ssv2 = create_model("timesformer", 174, attention=attention_type)
    assert _params(k400) == timesformer_params(attention_type, 400)
    assert _params(ssv2) == timesformer_params(attention_type, 174)
    # Table 1: divided 121.4 M, joint and space 85.9 M. These are the counts with SSv2's 174-class
    # head (the table's other dataset); Kinetics-400's head adds 0.17 M (divided: 121.57 M).
    published = {"divided": 121.4, "joint": 85.9, "space": 85.9}[attention_type]
    assert round(_params(ssv2) / 1e6, 1) == published
    assert abs(_params(k400) / 1e6 - published) < 0.25


def test_vivit_parameters_match_the_paper():
    # ViViT-B, 32 x 224 x 224 clips in 2 x 16 x 16 tubelets: 16 temporal indices of 196 tokens.
    with torch.device("meta"):
        encoder = create_model("vivit", 400, variant="factorised_encoder")
        self_attention = create_model("vivit", 400, variant="factorised_self_attention")
    spatial = embedding(2) + D + 197 * D + 12 * block() + 2 * D  # CLS, positions, blocks, final norm
    temporal = D + 17 * D + 4 * block() + 2 * D  # 4 temporal layers
    assert _params(encoder) == spatial + temporal + linear(D, 400)
    factorised_block = block() + 2 * D + attention()  # plus temporal_norm and temporal_attn
    assert _params(self_attention) == embedding(2) + 3136 * D + 12 * factorised_block + 2 * D + linear(D, 400)
    # Table 2 (ViViT-B, Kinetics-400): factorised encoder 115.1 M, factorised self-attention 117.3 M.
    assert round(_params(encoder) / 1e6, 1) == 115.1
    assert round(_params(self_attention) / 1e6, 1) == 117.3


def test_vit_video_parameters_match_videomae():
    with torch.device("meta"):
        model = create_model("vit_video", 400)
    # No class token and no learned positions: embedding, blocks, fc_norm, head.
    assert _params(model) == embedding(2) + 12 * block() + 2 * D + linear(D, 400)
    # VideoMAE: ViT-B has 87 M parameters (ours 86.5 M; the official one lacks the key bias, 9,216 fewer).
    assert abs(_params(model) / 87e6 - 1) < 0.01


# --- paper-size FLOPs (one multiply-add = one FLOP) ---------------------------------------------


def layer_flops(tokens: int, d: int = D) -> int:
    """Linear layers of one ViT block on ``tokens`` tokens: qkv 3d^2 + proj d^2 + MLP 8d^2 per token."""
    return 12 * d * d * tokens


def attention_flops(groups: int, length: int, d: int = D) -> int:
    """Q K^T and A V for ``groups`` sequences of ``length`` tokens: 2 L^2 d each."""
    return groups * 2 * length * length * d


def timesformer_flops(attention_type: str, t: int = 8, n: int = 196) -> int:
    embed, head = t * n * D * 3 * 16 * 16, D * 400
    if attention_type == "joint":  # all 1 + T N tokens together
        per_block = layer_flops(1 + t * n) + attention_flops(1, 1 + t * n)
    elif attention_type == "space":  # T frames of 1 + N tokens
        per_block = layer_flops(t * (1 + n)) + attention_flops(t, 1 + n)
    else:
        # temporal qkv, proj and temporal_fc on the T N patches; N groups of T
        temporal = 5 * D * D * t * n + attention_flops(n, t)
        # spatial qkv and proj on T frames of 1 + N tokens (the class token copied per frame)
        spatial = 4 * D * D * t * (1 + n) + attention_flops(t, 1 + n)
        per_block = temporal + spatial + 8 * D * D * (1 + t * n)  # MLP on 1 + T N tokens
    return embed + 12 * per_block + head


def vivit_flops(variant: str, t: int = 16, n: int = 196) -> int:
    embed, head = t * n * D * 3 * 2 * 16 * 16, D * 400
    if variant == "factorised_encoder":
        spatial = 12 * (layer_flops(t * (1 + n)) + attention_flops(t, 1 + n))
        temporal = 4 * (layer_flops(1 + t) + attention_flops(1, 1 + t))
        return embed + spatial + temporal + head
    per_block = layer_flops(t * n) + 4 * D * D * t * n + attention_flops(t, n) + attention_flops(n, t)
    return embed + 12 * per_block + head


def vit_video_flops(tokens: int = 8 * 196) -> int:
    # 1568 tubelets of 3 x 2 x 16 x 16 values embedded to D; joint attention among all of them.
    return tokens * D * 1536 + 12 * (layer_flops(tokens) + attention_flops(1, tokens)) + D * 400


@pytest.mark.parametrize(
    "name, options, hand, published",
    [
        # TimeSformer Table 2: 0.59 TFLOPs for its 3 test views, 0.197 per view.
        ("timesformer", {"attention": "divided"}, timesformer_flops("divided"), 590 / 3),
        ("timesformer", {"attention": "joint"}, timesformer_flops("joint"), None),
        ("timesformer", {"attention": "space"}, timesformer_flops("space"), None),
        # ViViT Table 2 (ViViT-B, 32 frames, 16 x 2 tubelets): 284.4 and 372.3 GFLOPs.
        ("vivit", {"variant": "factorised_encoder"}, vivit_flops("factorised_encoder"), 284.4),
        ("vivit", {"variant": "factorised_self_attention"}, vivit_flops("factorised_self_attention"), 372.3),
        # VideoMAE: ViT-B on 16 x 224 x 224 costs 180 GFLOPs per view.
        ("vit_video", {}, vit_video_flops(), 180),
    ],
)
def test_flops_by_hand_and_against_the_papers(name, options, hand, published):
    # At each model's default input: the paper's clip (8, 32 and 16 frames of 224 x 224).
    with torch.device("meta"):
        model = create_model(name, 400, **options)
    flops = summarize(model, model_info(name).default_input, receptive_fields=False).total_flops
    assert flops == hand
    if published is not None:
        # The papers count with fvcore-like tools (a few extra element-wise ops): within 1 %.
        assert abs(flops / 1e9 / published - 1) < 0.01


# --- export and training ----------------------------------------------------------------------


@pytest.mark.parametrize("key", TINY)
def test_torch_export_and_onnx_round_trip(key):
    onnxruntime = pytest.importorskip("onnxruntime")
    t = 2 if key.startswith(("vivit", "vit_video")) else 3
    model = tiny(key, t=t).eval()
    # One block of each kind has every operation the exporters must handle and converts in a
    # quarter of the time.
    for name, blocks in model.named_children():
        if name.endswith("blocks"):
            setattr(model, name, blocks[:1])
    x = torch.randn(1, 3, t, 32, 32)
    with torch.no_grad():
        expected = model(x)
        program = torch.export.export(model, (x,))
        torch.testing.assert_close(program.module()(x), expected, atol=1e-5, rtol=1e-4)
        # The exported program is what `vidlearn export --format onnx` converts, too.
        onnx_model = torch.onnx.export(program, dynamo=True, verbose=False).model_proto
    session = onnxruntime.InferenceSession(onnx_model.SerializeToString())
    (logits,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("key", TINY)
def test_a_gradient_step_reaches_and_changes_every_parameter(key):
    torch.manual_seed(0)
    model = tiny(key, t=2).train()
    before = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    nn.functional.cross_entropy(model(torch.randn(2, 3, 2, 32, 32)), torch.tensor([0, 1])).backward()
    without_gradient = [
        k for k, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not without_gradient
    optimizer.step()
    assert not [k for k, p in model.named_parameters() if torch.equal(p, before[k])]
