"""VideoMAE pre-training: tube masking, the asymmetric encoder/decoder, the loss, reconstruction and
the hand-over of the encoder to ``vit_video``.

Expected numbers come from the VideoMAE paper and official code (Tong et al., NeurIPS 2022: ratio
0.9, ``int(0.9 * 196) = 176`` masked positions per temporal index, 87 M parameters for ViT-B) and
from hand arithmetic; never from running our own code.
"""

from __future__ import annotations

import pytest
import torch

from vidlearn.errors import BadArgumentError
from vidlearn.models import create_model
from vidlearn.ssl import VideoMAE

# 4 frames of 64 x 64 in 2 x 16 x 16 tubelets: 2 temporal indices of 16 positions, N = 32 tokens.
# Ratio 0.75 masks int(0.75 * 16) = 12 positions, so 2 x 4 = 8 tokens stay visible.
CLIP = (3, 4, 64, 64)


def tiny_mae(mask_ratio: float = 0.75) -> VideoMAE:
    torch.manual_seed(0)
    return VideoMAE("tiny", num_frames=CLIP[1], frame_size=CLIP[2:], mask_ratio=mask_ratio)


def clips(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, *CLIP, generator=torch.Generator().manual_seed(seed))


def test_tube_masks_have_the_papers_counts():
    # 16 x 224 x 224, ratio 0.9: 8 temporal indices of 196 positions; int(0.9 * 196) = 176 masked per
    # index, 20 visible, so 8 * 20 = 160 of 1568 tokens reach the encoder.
    model = VideoMAE("tiny", num_frames=16, frame_size=224, mask_ratio=0.9)
    mask = model.tube_mask(3, torch.Generator().manual_seed(0))
    assert mask.shape == (3, 1568) and mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [8 * 176] * 3
    assert model.num_visible == 160
    # A tube: the same positions are masked at every temporal index.
    per_index = mask.view(3, 8, 196)
    assert torch.equal(per_index, per_index[:, :1].expand(-1, 8, -1))
    assert not torch.equal(per_index[0], per_index[1])  # each clip draws its own


def test_masks_are_reproducible_from_a_generator():
    model = tiny_mae()
    first = model.tube_mask(4, torch.Generator().manual_seed(7))
    assert torch.equal(first, model.tube_mask(4, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, model.tube_mask(4, torch.Generator().manual_seed(8)))
    _, _, mask = model(clips(), generator=torch.Generator().manual_seed(7))
    assert torch.equal(mask, first[:2])


def test_the_encoder_sees_only_the_visible_tokens():
    model = tiny_mae()
    seen = {}
    model.encoder.blocks[0].register_forward_pre_hook(
        lambda _m, args: seen.__setitem__("encoder", args[0].shape)
    )
    model.decoder_blocks[0].register_forward_pre_hook(
        lambda _m, args: seen.__setitem__("decoder", args[0].shape)
    )
    loss, prediction, mask = model(clips())
    # N_visible = N (1 - ratio) = 32 * 0.25 = 8 of width 192; the decoder gets all 32 tokens, 96 wide.
    assert seen["encoder"] == (2, 8, 192)
    assert seen["decoder"] == (2, 32, 96)
    # One prediction per masked tubelet: 2 x 16 x 16 pixels x 3 channels.
    assert prediction.shape == (2, 24, 2 * 16 * 16 * 3)
    assert loss.ndim == 0


def test_predictions_do_not_depend_on_the_masked_pixels():
    # The encoder gets only visible tubelets and the decoder only positions at masked ones, so no
    # pixel of a masked tubelet can leak into the prediction.
    model = tiny_mae().eval()
    x = clips()
    _, prediction, mask = model(x)
    hidden = hidden_pixels(mask)
    changed = x.masked_fill(hidden, 100.0)
    torch.testing.assert_close(model(changed, mask=mask)[1], prediction, rtol=0, atol=1e-6)
    # ...while a visible pixel does reach it.
    changed = x + (~hidden).float()
    assert not torch.allclose(model(changed, mask=mask)[1], prediction, atol=1e-3)


def tubelet(token: int) -> tuple[slice, ...]:
    """Where the tubelet of ``token`` (in (t', h', w') order on the 2 x 4 x 4 grid) lies in a C x T x H x W clip."""
    t, rest = divmod(token, 16)
    h, w = divmod(rest, 4)
    return slice(None), slice(2 * t, 2 * t + 2), slice(16 * h, 16 * h + 16), slice(16 * w, 16 * w + 16)


def hidden_pixels(mask: torch.Tensor) -> torch.Tensor:
    """``B x N`` tubelet mask -> ``B x C x T x H x W`` pixel mask."""
    grid = mask.view(-1, 2, 4, 4).repeat_interleave(2, 1).repeat_interleave(16, 2).repeat_interleave(16, 3)
    return grid[:, None].expand(-1, 3, -1, -1, -1)


def test_the_loss_is_the_mse_against_normalised_masked_tubelets_only():
    # Targets by hand, tubelet by tubelet: each channel of a masked 2 x 16 x 16 block minus its mean,
    # divided by its unbiased standard deviation + 1e-6, flattened in (t, h, w, c) order. Visible
    # tubelets are in no target: they reach the loss only through the encoder's input.
    model = tiny_mae()
    x = clips()
    loss, prediction, mask = model(x)
    targets = []
    for b in range(2):
        for token in mask[b].nonzero().flatten().tolist():
            block = x[b][tubelet(token)].reshape(3, -1)
            block = (block - block.mean(1, keepdim=True)) / (block.std(1, keepdim=True) + 1e-6)
            targets.append(block.T.reshape(-1))
    by_hand = torch.stack(targets).view(2, 24, -1)
    torch.testing.assert_close(loss, ((prediction - by_hand) ** 2).mean())


def test_reconstruction_pastes_visible_tubelets_and_denormalises_predictions():
    model = tiny_mae()
    x = clips()
    _, prediction, mask = model(x, generator=torch.Generator().manual_seed(3))
    masked_clip, reconstructed = model.reconstruct(x, generator=torch.Generator().manual_seed(3))
    hidden = hidden_pixels(mask)
    assert torch.equal(masked_clip[~hidden], x[~hidden]) and not masked_clip[hidden].any()
    assert torch.equal(reconstructed[~hidden], x[~hidden])
    # At a masked tubelet: prediction * (true std + 1e-6) + true mean, per channel.
    region = tubelet(int(mask[0].nonzero()[0]))
    true, rebuilt = x[0][region].reshape(3, -1), reconstructed[0][region].reshape(3, -1)
    normalised = (rebuilt - true.mean(1, keepdim=True)) / (true.std(1, keepdim=True) + 1e-6)
    torch.testing.assert_close(normalised.T.reshape(-1), prediction[0, 0].detach(), atol=1e-4, rtol=1e-4)


def test_the_loss_decreases_on_a_fixed_batch():
    model = tiny_mae()
    # Each clip repeats one random tubelet everywhere, so every masked tubelet can be inferred
    # from the visible ones. Predicting zeros would score about 1 (the targets are normalised).
    x = torch.randn(4, 3, 2, 16, 16, generator=torch.Generator().manual_seed(5)).repeat(1, 1, 2, 4, 4)
    mask = model.tube_mask(4, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    losses = []
    for _ in range(30):
        loss, _, _ = model(x, mask=mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 0.9 and losses[-1] < 0.25


def test_the_encoder_loads_into_vit_video_and_computes_the_same_tokens():
    model = tiny_mae(mask_ratio=0.0)
    classifier = create_model("vit_video", num_classes=10, **model.backbone_options)
    missing, unexpected = classifier.load_state_dict(model.encoder_state_dict(), strict=False)
    # VideoMAE's encoder has no pooled norm and no head: only those start untrained.
    assert sorted(missing) == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]
    assert not unexpected
    # With nothing masked the encoder's blocks see every token, exactly as the classifier's do.
    seen = {}
    model.encoder.blocks.register_forward_hook(lambda _m, _a, out: seen.__setitem__("mae", out))
    classifier.blocks.register_forward_hook(lambda _m, _a, out: seen.__setitem__("vit", out))
    x = clips()
    with torch.no_grad():
        model(x)
        classifier(x)
    torch.testing.assert_close(seen["mae"], seen["vit"])


def test_vit_b_encoder_has_videomaes_87m_parameters():
    with torch.device("meta"):
        model = VideoMAE("base")
    d = 768
    block = 4 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d)
    encoder = sum(p.numel() for p in model.encoder.parameters())
    assert encoder == 3 * 2 * 16 * 16 * d + d + 12 * block  # tubelet embedding and 12 blocks
    assert abs(encoder / 87e6 - 1) < 0.01  # VideoMAE: ViT-B, 87 M (with its classifier head)
    # The decoder: 4 blocks of width 384 predicting 1536 pixels per tubelet.
    assert model.decoder_head.out_features == 2 * 16 * 16 * 3 and len(model.decoder_blocks) == 4


def test_bad_masks_and_ratios_are_reported():
    for ratio in (1.0, -0.1, "0.9"):
        with pytest.raises(BadArgumentError, match="mask_ratio"):
            VideoMAE("tiny", num_frames=4, frame_size=64, mask_ratio=ratio)
    model = tiny_mae()
    with pytest.raises(BadArgumentError, match="hide 24 of 32"):
        model(clips(), mask=torch.zeros(2, 32, dtype=torch.bool))
    with pytest.raises(BadArgumentError, match="bool tensor of shape"):
        model(clips(), mask=torch.zeros(2, 32))
    with pytest.raises(BadArgumentError, match="num_frames=6"):
        model(torch.randn(1, 3, 6, 64, 64))
