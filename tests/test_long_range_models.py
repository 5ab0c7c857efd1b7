"""Long-range models: LRCN (CNN + LSTM), the recurrent convolutional network, TSN, non-local blocks,
and training an LRCN's LSTM on cached CNN features.

Expected numbers come from the papers (Donahue et al. CVPR 2015; Ballas et al. ICLR 2016; Wang et al.
ECCV 2016; Wang et al. CVPR 2018), torchvision's published R3D-18 figures, or hand arithmetic here.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import assert_exports
from einops import rearrange
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from vidlearn.analysis import summarize
from vidlearn.data.samplers import tsn_segments
from vidlearn.engine.feature_cache import cache_frame_features, train_on_cached_features
from vidlearn.errors import BadArgumentError
from vidlearn.models import create_model, list_models, model_info
from vidlearn.models.fusion import slow_fusion
from vidlearn.models.nonlocal_net import NonLocalBlock, insert_non_local
from vidlearn.models.recurrent import ConvGRU

LONG_RANGE_MODELS = ["lrcn", "recurrent_conv", "tsn", "r3d_18_nl", "slow_fusion_nl"]

# The small 2D ConvTower of the fusion models: 97,680 parameters before its classifier; its
# features are 128-dimensional.
TOWER_FEATURES = 128


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The models here are tiny: one thread is fastest, and on a shared machine more only contend
    (as under xdist, where conftest.py sets one thread per worker)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def lstm_params(inputs: int, hidden: int) -> int:
    # Four gates, each with input and recurrent weights and PyTorch's two bias vectors.
    return 4 * hidden * (inputs + hidden) + 2 * 4 * hidden


def conv_gru_params(c_in: int, c_out: int) -> int:
    # Input convolution 3x3 to the 3 gates (with biases), recurrent 3x3 convolutions to the
    # 2 gates and to the candidate (no biases).
    return 9 * c_in * 3 * c_out + 3 * c_out + 9 * c_out * 2 * c_out + 9 * c_out * c_out


def non_local_params(c: int) -> int:
    # theta, phi, g: 1x1x1 convs C -> C/2 with biases; W_z: C/2 -> C without bias; batch norm.
    inner = c // 2
    return 3 * (c * inner + inner) + inner * c + 2 * c


def square_clips(
    num_clips: int, frames: int, size: int, seed: int, colour_changes: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """A still 4x4 square at a random place; classes alternate 0, 1, 0, ...

    ``colour_changes``: red then green (class 0) or green then red (class 1), switching at a random
    frame, so every single frame looks alike in both classes and only the order of frames tells
    them apart. (A moving square's direction would not do for LRCN: its frame encoder ends in a
    global average pool, which forgets where the square is.) Otherwise red (class 0) or green
    (class 1) throughout, which one frame shows.
    """
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_clips) % 2
    clips = torch.full((num_clips, 3, frames, size, size), -1.0)
    for i, label in enumerate(labels.tolist()):
        top, left = torch.randint(0, size - 3, (2,), generator=generator).tolist()
        switch = int(torch.randint(1, frames, (1,), generator=generator)) if colour_changes else frames
        first, second = (0, 1) if label == 0 else (1, 0)
        clips[i, first, :switch, top : top + 4, left : left + 4] = 1.0
        clips[i, second, switch:, top : top + 4, left : left + 4] = 1.0
    return clips, labels


def train_and_test(model: nn.Module, train: tuple, test: tuple, steps: int, batch_size: int = 16) -> float:
    """Adam on consecutive batches of ``train``; accuracy on ``test`` in eval mode."""
    clips, labels = train
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for step in range(steps):
        batch = slice(step * batch_size, (step + 1) * batch_size)
        loss = F.cross_entropy(model(clips[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return (model(test[0]).argmax(dim=1) == test[1]).float().mean().item()


# --- registry -------------------------------------------------------------------------------


def test_models_are_registered_with_their_options():
    assert set(LONG_RANGE_MODELS) <= set(list_models())
    assert model_info("lrcn").options == {
        "mode": "many_to_one",
        "hidden_size": 256,
        "num_layers": 1,
        "freeze_cnn": False,
        "in_channels": 3,
    }
    assert model_info("tsn").options == {"consensus": "average", "in_channels": 3}
    assert model_info("tsn").default_input == (3, 3, 112, 112)  # K = 3 segments, as in the paper
    assert "widths" in model_info("recurrent_conv").options
    for name in LONG_RANGE_MODELS:
        assert model_info(name).options["in_channels"] == 3


def test_bad_options_are_reported():
    with pytest.raises(BadArgumentError, match="many_to_one"):
        create_model("lrcn", num_classes=3, mode="one_to_many")
    with pytest.raises(BadArgumentError, match="hidden_size"):
        create_model("lrcn", num_classes=3, hidden_size=0)
    with pytest.raises(BadArgumentError, match="average"):
        create_model("tsn", num_classes=3, consensus="median")
    with pytest.raises(BadArgumentError, match="widths"):
        create_model("recurrent_conv", num_classes=3, widths=())


def test_optical_flow_stacks_can_be_fed():
    for name in ("lrcn", "recurrent_conv", "tsn", "slow_fusion_nl"):
        model = create_model(name, num_classes=4, in_channels=2).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 2, 4, 32, 32)).shape == (1, 4), name
        with pytest.raises(BadArgumentError, match="B x 2 x T x H x W"):
            model(torch.randn(1, 3, 4, 32, 32))


# --- LRCN -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["many_to_one", "many_to_many"])
def test_lrcn_shapes_over_clip_sizes(mode):
    model = create_model("lrcn", num_classes=5, mode=mode, hidden_size=24).eval()
    for t, h, w in [(1, 16, 16), (3, 32, 48), (7, 24, 16)]:
        x = torch.randn(2, 3, t, h, w)
        with torch.no_grad():
            assert model(x).shape == (2, 5)
            assert model.features(x).shape == (2, 24)
            assert model.frame_logits(x).shape == (2, t, 5)  # one prediction per frame


def test_lrcn_clip_logits_per_mode():
    x = torch.randn(2, 3, 5, 16, 16)
    torch.manual_seed(0)
    one = create_model("lrcn", num_classes=4, hidden_size=8).eval()
    torch.manual_seed(0)
    many = create_model("lrcn", num_classes=4, hidden_size=8, mode="many_to_many").eval()
    with torch.no_grad():
        frame_logits = one.frame_logits(x)
        # Same weights, same per-frame predictions; the modes differ only in how the clip's are made.
        assert torch.allclose(many.frame_logits(x), frame_logits)
        assert torch.allclose(one(x), frame_logits[:, -1], atol=1e-6)  # the last step
        assert torch.allclose(many(x), frame_logits.mean(dim=1), atol=1e-6)  # mean over time
        # The prediction after frame t does not depend on later frames.
        changed = x.clone()
        changed[:, :, 3:] = torch.randn(2, 3, 2, 16, 16)
        assert torch.allclose(one.frame_logits(changed)[:, :3], frame_logits[:, :3], atol=1e-6)
        assert not torch.allclose(one.frame_logits(changed)[:, 3:], frame_logits[:, 3:], atol=1e-4)
        # The head on frame features is the rest of the model.
        assert torch.allclose(many.recurrent_head(many.frame_features(x)), many(x), atol=1e-6)


def test_lrcn_parameters_and_flops_by_hand():
    with torch.device("meta"):
        model = create_model("lrcn", num_classes=101)
        per_frame = create_model("single_frame", num_classes=101)
    tower = params(per_frame) - (TOWER_FEATURES * 101 + 101)
    assert tower == 97_680  # the fusion models' tower: 110,709 (docs/models.md) minus its classifier
    assert params(model) == tower + lstm_params(128, 256) + 256 * 101 + 101
    # Relative to single_frame (tower + classifier on each of 16 frames): an LSTM step per frame
    # (4 gates x 256 units x (128 + 256) inputs) and one classification of the last state.
    shape = (3, 16, 112, 112)
    lrcn_flops = summarize(model, shape, receptive_fields=False).total_flops
    single_frame_flops = summarize(per_frame, shape, receptive_fields=False).total_flops
    assert lrcn_flops - single_frame_flops == 16 * 4 * 256 * (128 + 256) + 256 * 101 - 16 * 128 * 101


def test_lrcn_frozen_cnn_gets_no_gradient_and_keeps_no_graph():
    model = create_model("lrcn", num_classes=3, hidden_size=8, freeze_cnn=True)
    model.train()
    assert not model.encoder.training  # batch norm keeps its running statistics
    assert model.lstm.training
    statistics = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    x = torch.randn(2, 3, 4, 16, 16)
    features = model.frame_features(x)
    assert features.grad_fn is None and not features.requires_grad
    F.cross_entropy(model(x), torch.tensor([0, 2])).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.encoder.parameters())
    assert all(p.grad is not None for p in [*model.lstm.parameters(), *model.classifier.parameters()])
    assert all(torch.equal(v, statistics[k]) for k, v in model.encoder.state_dict().items())


def test_lrcn_cnn_can_be_a_trained_single_frame_encoder():
    # The course's recipe: pretrain the CNN, then use it as a frozen feature extractor.
    per_frame = create_model("single_frame", num_classes=3)
    model = create_model("lrcn", num_classes=3, freeze_cnn=True)
    model.encoder.load_state_dict(per_frame.encoder.state_dict())
    x = torch.randn(1, 3, 2, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model.frame_features(x), per_frame.eval().frame_features(x))


def test_lrcn_unfrozen_cnn_trains():
    model = create_model("lrcn", num_classes=3, hidden_size=8)
    F.cross_entropy(model(torch.randn(2, 3, 4, 16, 16)), torch.tensor([0, 2])).backward()
    assert all(p.grad is not None for p in model.encoder.parameters())


# --- cached features ------------------------------------------------------------------------


def test_training_on_cached_features_matches_end_to_end_training():
    torch.manual_seed(0)
    model = create_model("lrcn", num_classes=2, hidden_size=16, freeze_cnn=True)
    end_to_end = copy.deepcopy(model)
    clips, labels = square_clips(12, 4, 16, seed=0)
    loader = DataLoader(TensorDataset(clips, labels), batch_size=5)
    features, cached_labels = cache_frame_features(model, loader, "cpu")
    assert features.shape == (12, 4, TOWER_FEATURES) and features.dtype == torch.float32
    assert torch.equal(cached_labels, labels)

    cnn_before = copy.deepcopy(model.encoder.state_dict())
    lstm_before = copy.deepcopy(model.lstm.state_dict())
    losses = train_on_cached_features(model, features, labels, epochs=3, lr=1e-2, batch_size=4, seed=7)
    assert len(losses) == 3 * 3

    # The same recipe (see train_on_cached_features) on the clips through the whole model.
    generator = torch.Generator().manual_seed(7)
    optimizer = torch.optim.Adam([p for p in end_to_end.parameters() if p.requires_grad], lr=1e-2)
    end_to_end.train()
    expected = []
    for _ in range(3):
        for batch in torch.randperm(12, generator=generator).split(4):
            loss = F.cross_entropy(end_to_end(clips[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            expected.append(loss.item())
    assert np.allclose(losses, expected, rtol=1e-4, atol=1e-6)
    assert losses[-1] < losses[0]

    # The trained head is the model's: its weights changed, the CNN's did not, and the model on
    # clips gives what the head gives on the cached features.
    assert all(torch.equal(v, cnn_before[k]) for k, v in model.encoder.state_dict().items())
    assert not any(torch.equal(v, lstm_before[k]) for k, v in model.lstm.state_dict().items())
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(clips), model.recurrent_head(features), atol=1e-5)
        assert torch.allclose(model(clips), end_to_end.eval()(clips), atol=1e-4)


def test_feature_cache_needs_a_frozen_cnn():
    model = create_model("lrcn", num_classes=2, hidden_size=8)
    loader = DataLoader(TensorDataset(torch.randn(2, 3, 2, 16, 16), torch.tensor([0, 1])), batch_size=2)
    with pytest.raises(BadArgumentError, match="freeze_cnn=True"):
        cache_frame_features(model, loader, "cpu")
    with pytest.raises(BadArgumentError, match="freeze_cnn=True"):
        train_on_cached_features(model, torch.randn(2, 2, 128), torch.tensor([0, 1]))


# --- recurrent convolutional network --------------------------------------------------------


def test_recurrent_conv_shapes_over_clip_sizes():
    model = create_model("recurrent_conv", num_classes=5, widths=(4, 8, 12)).eval()
    for t, h, w in [(1, 16, 16), (4, 24, 40), (9, 17, 9)]:
        x = torch.randn(2, 3, t, h, w)
        with torch.no_grad():
            # Each of the 3 layers halves H and W, rounding up (3x3 convs, stride 2, padding 1).
            size = (math.ceil(h / 8), math.ceil(w / 8))
            assert model.hidden_states(x).shape == (2, t, 12, *size)
            assert model.features(x).shape == (2, 12)
            assert model(x).shape == (2, 5)


def test_recurrent_conv_weights_are_per_layer_and_shared_across_time():
    # Ballas et al.: different weights at each layer, shared across time. The count below has no T
    # in it, and the same model takes clips of any length.
    model = create_model("recurrent_conv", num_classes=101)
    widths = (16, 32, 64, 128)
    expected = sum(conv_gru_params(c_in, c_out) for c_in, c_out in zip((3, *widths), widths))
    assert params(model) == expected + 128 * 101 + 101
    assert params(model) == 892_869  # the figure docs/models-long-range.md quotes
    assert len(model.layers) == 4 and all(isinstance(layer, ConvGRU) for layer in model.layers)


def test_recurrent_conv_is_causal():
    model = create_model("recurrent_conv", num_classes=3, widths=(4, 8)).eval()
    x = torch.randn(1, 3, 6, 16, 16)
    changed = x.clone()
    changed[:, :, 3] += 1.0
    with torch.no_grad():
        before, after = model.hidden_states(x), model.hidden_states(changed)
    assert torch.allclose(before[:, :3], after[:, :3], atol=1e-6)  # no state before frame 3 changes
    assert all(
        not torch.allclose(before[:, t], after[:, t], atol=1e-4) for t in range(3, 6)
    )  # every later one does


def test_conv_gru_follows_the_gru_equations():
    # One layer, one step at a time, written out with the layer's own weights (Ballas et al. 2016, eq. 4-7).
    torch.manual_seed(0)
    layer = ConvGRU(3, 5)
    x = torch.randn(2, 4, 3, 10, 10)
    w_z, w_r, w = layer.input_conv.weight.chunk(3)
    b_z, b_r, b = layer.input_conv.bias.chunk(3)
    u_z, u_r = layer.gate_conv.weight.chunk(2)
    u = layer.candidate_conv.weight

    def conv(inputs, weight, bias=None, stride=1):
        return F.conv2d(inputs, weight, bias, stride=stride, padding=1)

    h = torch.zeros(2, 5, 5, 5)
    expected = []
    for t in range(4):
        z = torch.sigmoid(conv(x[:, t], w_z, b_z, 2) + conv(h, u_z))
        r = torch.sigmoid(conv(x[:, t], w_r, b_r, 2) + conv(h, u_r))
        candidate = torch.tanh(conv(x[:, t], w, b, 2) + conv(r * h, u))
        h = (1 - z) * h + z * candidate
        expected.append(h)
    with torch.no_grad():
        assert torch.allclose(layer(x), torch.stack(expected, dim=1), atol=1e-6)


# --- TSN ------------------------------------------------------------------------------------


def test_tsn_consensus_over_segment_scores():
    x = torch.randn(2, 3, 3, 32, 32)
    torch.manual_seed(0)
    average = create_model("tsn", num_classes=6).eval()
    torch.manual_seed(0)
    maximum = create_model("tsn", num_classes=6, consensus="max").eval()
    with torch.no_grad():
        scores = average.frame_logits(x)
        assert scores.shape == (2, 3, 6)
        # Each segment is scored on its own by the shared 2D network.
        for k in range(3):
            assert torch.allclose(scores[:, k], average.frame_logits(x[:, :, k : k + 1])[:, 0], atol=1e-5)
        assert torch.allclose(average(x), scores.mean(dim=1), atol=1e-6)
        assert torch.allclose(maximum(x), scores.amax(dim=1), atol=1e-6)
        # single_frame with the same weights scores the frames alike but averages probabilities.
        torch.manual_seed(0)
        per_frame = create_model("single_frame", num_classes=6).eval()
        assert torch.allclose(per_frame.frame_logits(x), scores, atol=1e-6)
        assert not torch.allclose(per_frame(x), average(x), atol=1e-3)
        # A consensus does not see the order of the segments.
        assert torch.allclose(average(x), average(x.flip(2)), atol=1e-5)


def test_tsn_shapes_over_clip_sizes():
    model = create_model("tsn", num_classes=4).eval()
    for t, h, w in [(1, 16, 16), (3, 32, 48), (7, 24, 16)]:
        with torch.no_grad():
            assert model(torch.randn(2, 3, t, h, w)).shape == (2, 4)
            assert model.features(torch.randn(2, 3, t, h, w)).shape == (2, TOWER_FEATURES)


# --- non-local blocks -----------------------------------------------------------------------


def test_non_local_block_is_the_embedded_gaussian_formula():
    torch.manual_seed(0)
    block = NonLocalBlock(8).eval()
    nn.init.normal_(block.out[1].weight)  # leave the identity start, so the response shows
    x = torch.randn(2, 8, 3, 6, 5)
    with torch.no_grad():
        theta = rearrange(block.theta(x), "b c t h w -> b (t h w) c")
        # phi and g max-pooled 1x2x2, rounding up: 6 x 5 -> 3 x 3.
        phi = rearrange(F.max_pool3d(block.phi(x), (1, 2, 2), ceil_mode=True), "b c t h w -> b (t h w) c")
        g = rearrange(F.max_pool3d(block.g(x), (1, 2, 2), ceil_mode=True), "b c t h w -> b (t h w) c")
        assert theta.shape == (2, 3 * 6 * 5, 4) and phi.shape == (2, 3 * 3 * 3, 4)
        # Embedded Gaussian: f(x_i, x_j) = exp(theta_i . phi_j), normalised over j; no 1/sqrt(d).
        attention = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)
        response = rearrange(attention @ g, "b (t h w) c -> b c t h w", t=3, h=6, w=5)
        assert torch.allclose(block(x), x + block.out(response), atol=1e-5)


def test_non_local_block_without_subsampling_attends_to_every_position():
    block = NonLocalBlock(4, inner_channels=3, subsample=False)
    assert block.theta.out_channels == 3
    assert isinstance(block.subsample, nn.Identity)


def test_a_new_non_local_block_is_the_identity():
    block = NonLocalBlock(16)
    x = torch.randn(2, 16, 4, 6, 6)
    assert torch.equal(block(x), x)  # batch norm's gamma is 0: the residual branch adds exactly 0
    # Inserting blocks into a network leaves its eval-mode outputs unchanged.
    torch.manual_seed(0)
    model = slow_fusion(num_classes=5).eval()
    clips = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        before = model(clips)
        with_blocks = insert_non_local(model, after=("backbone.block2", "backbone.block3")).eval()
        assert torch.equal(with_blocks(clips), before)


def test_after_a_gradient_step_the_block_is_no_longer_the_identity():
    torch.manual_seed(0)
    model = create_model("slow_fusion_nl", num_classes=3)
    block = model.backbone.block3[-1]
    assert isinstance(block, NonLocalBlock)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(torch.randn(4, 3, 8, 32, 32)), torch.tensor([0, 1, 2, 0])).backward()
    optimizer.step()
    x = torch.randn(2, 128, 2, 2, 2)
    block.eval()
    with torch.no_grad():
        assert not torch.allclose(block(x), x, atol=1e-4)


def test_non_local_attention_reaches_distant_frames():
    torch.manual_seed(0)
    block = NonLocalBlock(8).eval()
    nn.init.ones_(block.out[1].weight)
    conv = nn.Conv3d(8, 8, 3, padding=1)
    x = torch.randn(1, 8, 8, 4, 4)
    changed = x.clone()
    changed[:, :, 0] += 1.0  # frame 0 only
    with torch.no_grad():
        # Every position of the last frame (7 frames away) sees the change through attention...
        difference = (block(changed) - block(x))[:, :, -1].abs().amax(dim=1)
        assert (difference > 1e-4).all()
        # ...where a 3x3x3 convolution reaches one frame: its last frame is unchanged.
        assert torch.equal(conv(changed)[:, :, -1], conv(x)[:, :, -1])


def test_non_local_parameters_by_hand():
    assert non_local_params(128) == 3 * (128 * 64 + 64) + 64 * 128 + 256 == 33_216
    assert params(NonLocalBlock(128)) == non_local_params(128)
    assert params(NonLocalBlock(256)) == non_local_params(256)


def test_r3d_18_nl_is_r3d_18_plus_two_blocks():
    with torch.device("meta"):
        model = create_model("r3d_18_nl", num_classes=400)
        plain = create_model("r3d_18", num_classes=400)
    # torchvision's R3D-18 (400 classes) has 33,371,472 parameters; blocks after layer2 (128
    # channels) and layer3 (256 channels).
    assert params(model) == 33_371_472 + non_local_params(128) + non_local_params(256)
    # The blocks are appended to the stages, so every torchvision key keeps its name.
    keys = set(model.state_dict())
    assert set(plain.state_dict()) <= keys
    assert {"layer2.2.theta.weight", "layer3.2.out.1.weight"} <= keys
    # Cost: torchvision's 40.697 GFLOPs plus the blocks' multiply-adds. At 16 x 112 x 112, layer2
    # gives 128 x 8 x 28 x 28 and layer3 256 x 4 x 14 x 14. Per block with N positions, M = N/4
    # pooled ones and C' = C/2: theta, phi, g and W_z (4 N C C'), then two N x M x C' products.
    sizes = ((128, 8 * 28 * 28), (256, 4 * 14 * 14))  # (C, N)
    blocks = sum(4 * n * c * (c // 2) + 2 * n * (n // 4) * (c // 2) for c, n in sizes)
    flops = summarize(model, (3, 16, 112, 112), receptive_fields=False).total_flops
    assert round((flops - blocks) / 1e9, 3) == 40.697


def test_insert_non_local_finds_channels_and_reports_bad_names():
    torch.manual_seed(0)
    model = insert_non_local(slow_fusion(num_classes=3), after=("backbone.block1", "backbone.block3"))
    assert model.backbone.block1[-1].theta.in_channels == 32
    assert model.backbone.block3[-1].theta.in_channels == 128
    with torch.device("meta"):
        resnet = create_model("r3d_18", num_classes=10)
    with pytest.raises(BadArgumentError, match="layer9.*valid names: stem, layer1, layer2, layer3, layer4"):
        insert_non_local(resnet, after=("layer9",))
    with pytest.raises(BadArgumentError, match="valid names: backbone.stem, backbone.pool1"):
        insert_non_local(slow_fusion(num_classes=3), after=("backbone.block7",))
    with pytest.raises(BadArgumentError, match="B x C x T x H x W"):
        insert_non_local(resnet, after=("fc",))


def test_non_local_models_shapes_over_clip_sizes():
    with torch.device("meta"):
        resnet = create_model("r3d_18_nl", num_classes=7)
    for t, h, w in [(1, 32, 32), (8, 128, 171), (16, 112, 112)]:
        assert resnet(torch.empty(2, 3, t, h, w, device="meta")).shape == (2, 7)
    model = create_model("slow_fusion_nl", num_classes=7).eval()
    for t, h, w in [(4, 16, 16), (7, 48, 64)]:
        with torch.no_grad():
            assert model(torch.randn(2, 3, t, h, w)).shape == (2, 7)
            assert model.features(torch.randn(2, 3, t, h, w)).shape == (2, TOWER_FEATURES)


# --- export ---------------------------------------------------------------------------------

EXPORT_CASES = {
    "lrcn": ({"mode": "many_to_many", "freeze_cnn": True, "hidden_size": 16}, (4, 32, 32)),
    "recurrent_conv": ({"widths": (4, 8)}, (3, 16, 16)),
    "tsn": ({}, (3, 32, 32)),
    "r3d_18_nl": ({}, (2, 16, 16)),
}


@pytest.mark.parametrize("name", list(EXPORT_CASES))
def test_export_and_onnx(name, tmp_path):
    options, (t, h, w) = EXPORT_CASES[name]
    torch.manual_seed(0)
    assert_exports(create_model(name, num_classes=5, **options).eval(), torch.randn(1, 3, t, h, w), tmp_path)


# --- training on tiny synthetic problems ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "frames", "size"),
    [
        ("lrcn", {"hidden_size": 32}, 6, 16),
        ("lrcn", {"hidden_size": 32, "mode": "many_to_many"}, 6, 16),
        ("recurrent_conv", {"widths": (8, 16)}, 6, 16),
        ("slow_fusion_nl", {}, 8, 16),
    ],
)
def test_temporal_models_learn_the_order_of_frames(name, options, frames, size):
    torch.manual_seed(0)
    model = create_model(name, num_classes=2, **options)
    train = square_clips(30 * 16, frames, size, seed=1)
    test = square_clips(64, frames, size, seed=2)
    assert train_and_test(model, train, test, steps=30) >= 0.8  # chance is 0.5


def test_tsn_learns_from_sparse_segments():
    # 24-frame videos of a red (class 0) or green (class 1) square; K = 3 frames per video drawn
    # with TSN's segment sampler.
    videos, labels = square_clips(20 * 16 + 64, 24, 16, seed=3, colour_changes=False)
    rng = np.random.default_rng(0)
    clips = torch.stack([video[:, tsn_segments(24, 3, rng=rng).indices.tolist()] for video in videos])
    assert clips.shape == (len(videos), 3, 3, 16, 16)
    torch.manual_seed(0)
    model = create_model("tsn", num_classes=2)
    accuracy = train_and_test(model, (clips[:-64], labels[:-64]), (clips[-64:], labels[-64:]), steps=20)
    assert accuracy >= 0.8  # chance is 0.5
