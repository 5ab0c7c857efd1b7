"""Clip transforms: shapes, crop positions and values against hand-computed numbers.

Position tests use "coordinate frames": pixel (t, y, x) holds (y, x, t) in its R, G, B channels,
so a crop's top-left pixel reads out its own offsets.

``vidlearn.data.transforms`` is imported as a module: its ``test_views`` would otherwise be
imported under a test-looking name.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vidlearn.data.transforms as tf
from vidlearn.data.samplers import ClipSpec
from vidlearn.errors import BadArgumentError

IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}


def coordinate_frames(t: int, h: int, w: int) -> torch.Tensor:
    tt, yy, xx = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([yy, xx, tt], dim=-1).to(torch.uint8)


def top_left(crop: torch.Tensor) -> tuple[int, int]:
    return int(crop[0, 0, 0, 0]), int(crop[0, 0, 0, 1])


# --- resizing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((240, 320), (128, 170)),  # 320 * 128 / 240 = 170.67 -> floor 170
        ((320, 240), (170, 128)),  # portrait: same rule on the height
        ((256, 340), (128, 170)),  # 340 * 128 / 256 = 170 exactly
        ((1080, 1920), (128, 227)),  # 1920 * 128 / 1080 = 227.56 -> 227
        ((144, 176), (128, 156)),  # 176 * 128 / 144 = 156.44 -> 156 (upscaling)
        ((128, 128), (128, 128)),
    ],
)
def test_resize_short_side_floors_the_long_side(shape, expected):
    assert tf.short_side_shape(*shape, 128) == expected
    frames = torch.zeros((2, *shape, 3), dtype=torch.uint8)
    out = tf.resize_short_side(frames, 128)
    assert tuple(out.shape) == (2, *expected, 3) and out.dtype == torch.uint8


def test_resize_keeps_a_constant_frame_constant():
    frames = torch.full((3, 240, 320, 3), 77, dtype=torch.uint8)
    assert (tf.resize_short_side(frames, 128) == 77).all()


def test_resize_preserves_a_linear_ramp_inside_the_frame():
    # Width 128 -> 64 (scale 2): output column j is centred on input x = 2j + 0.5. Any symmetric,
    # normalised filter keeps a linear function, so a ramp 2x gives 2 * (2j + 0.5) = 4j + 1.
    # The antialiased bilinear filter reaches 2 input pixels each side, so columns 0 and 63 are
    # truncated at the border and left out.
    ramp = (2 * torch.arange(128)).to(torch.uint8).view(1, 1, 128, 1).expand(2, 4, 128, 3)
    out = tf.resize(ramp, (4, 64))
    j = torch.arange(1, 63)
    assert (out[:, :, 1:63, :] == (4 * j + 1).to(torch.uint8).view(1, 1, 62, 1)).all()


def test_resize_matches_pillow_antialiased_bilinear():
    image_module = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)
    reference = np.asarray(image_module.fromarray(frame).resize((48, 36), image_module.Resampling.BILINEAR))
    out = tf.resize(frame[None], (36, 48))[0].numpy()
    assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1


def test_float_resize_path_agrees_with_the_native_uint8_kernel():
    # Off the CPU the resize goes through float; both must give the same picture to within rounding.
    rng = np.random.default_rng(1)
    tchw = torch.from_numpy(rng.integers(0, 256, size=(2, 3, 90, 120), dtype=np.uint8))
    native = tf._interpolate_uint8(tchw, (45, 64))
    via_float = tf._interpolate_via_float(tchw, (45, 64))
    assert via_float.dtype == torch.uint8
    assert (native.int() - via_float.int()).abs().max() <= 1


def test_resize_to_the_current_size_is_a_no_op():
    frames = torch.zeros((2, 128, 170, 3), dtype=torch.uint8)
    assert tf.resize_short_side(frames, 128) is frames


def test_numpy_frames_are_accepted():
    frames = np.zeros((2, 240, 320, 3), dtype=np.uint8)
    assert tuple(tf.resize_short_side(frames, 128).shape) == (2, 128, 170, 3)


# --- crops -----------------------------------------------------------------------------------


def test_center_crop_position():
    # 128 x 171 -> 112: top ceil(16 / 2) = 8, left ceil(59 / 2) = 30.
    crop = tf.center_crop(coordinate_frames(2, 128, 171), 112)
    assert tuple(crop.shape) == (2, 112, 112, 3)
    assert top_left(crop) == (8, 30)
    # An odd vertical margin: 129 - 112 = 17 -> ceil(8.5) = 9.
    assert top_left(tf.center_crop(coordinate_frames(1, 129, 112), 112)) == (9, 0)


def test_center_crop_rectangular_size():
    # 100 x 150 -> (50, 60): top 25, left 45.
    crop = tf.center_crop(coordinate_frames(1, 100, 150), (50, 60))
    assert tuple(crop.shape) == (1, 50, 60, 3) and top_left(crop) == (25, 45)


def test_three_crop_landscape_goes_along_the_width():
    # 128 x 171 -> 112: x = 0, ceil(59 / 2) = 30, 171 - 112 = 59; y centred at 8.
    crops = tf.three_crop(coordinate_frames(2, 128, 171), 112)
    assert [top_left(c) for c in crops] == [(8, 0), (8, 30), (8, 59)]
    assert all(tuple(c.shape) == (2, 112, 112, 3) for c in crops)


def test_three_crop_portrait_goes_along_the_height():
    crops = tf.three_crop(coordinate_frames(1, 171, 128), 112)
    assert [top_left(c) for c in crops] == [(0, 8), (30, 8), (59, 8)]


def test_three_crop_square_goes_along_the_width():
    # 120 x 120 -> 112: margin 8, offsets 0, 4, 8 along x; y centred at 4.
    crops = tf.three_crop(coordinate_frames(1, 120, 120), 112)
    assert [top_left(c) for c in crops] == [(4, 0), (4, 4), (4, 8)]


def test_three_crop_middle_is_the_center_crop():
    frames = coordinate_frames(1, 128, 171)
    assert torch.equal(tf.three_crop(frames, 112)[1], tf.center_crop(frames, 112))


def test_random_crop_reaches_every_position_and_copies_the_right_pixels():
    # 10 x 12 -> 8: tops 0..2, lefts 0..4, 15 positions.
    frames = coordinate_frames(2, 10, 12)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        crop = tf.random_crop(frames, 8, rng)
        top, left = top_left(crop)
        assert torch.equal(crop, frames[:, top : top + 8, left : left + 8])
        seen.add((top, left))
    assert seen == {(y, x) for y in range(3) for x in range(5)}


def test_crop_larger_than_frame_raises():
    frames = torch.zeros((1, 100, 150, 3), dtype=torch.uint8)
    with pytest.raises(BadArgumentError, match="does not fit"):
        tf.center_crop(frames, 112)
    with pytest.raises(BadArgumentError):
        tf.random_crop(frames, (50, 151), np.random.default_rng(0))
    with pytest.raises(BadArgumentError):
        tf.three_crop(frames, 0)


# --- flip and frame dropout ------------------------------------------------------------------


def test_horizontal_flip_mirrors_and_is_its_own_inverse():
    frames = coordinate_frames(2, 5, 7)
    flipped = tf.horizontal_flip(frames)
    assert (flipped[..., 1] == 6 - frames[..., 1]).all()  # x -> W - 1 - x
    assert torch.equal(flipped[..., 0], frames[..., 0])
    assert torch.equal(tf.horizontal_flip(flipped), frames)


def test_frame_dropout_p0_keeps_everything():
    frames = coordinate_frames(8, 4, 4)
    assert torch.equal(tf.frame_dropout(frames, 0.0, np.random.default_rng(0)), frames)


def test_frame_dropout_p1_repeats_the_first_frame():
    frames = coordinate_frames(8, 4, 4)
    out = tf.frame_dropout(frames, 1.0, np.random.default_rng(0))
    assert out.shape == frames.shape
    assert (out[..., 2] == 0).all()  # every frame shows time 0


def test_frame_dropout_shows_the_latest_kept_frame():
    rng = np.random.default_rng(1)
    for _ in range(50):
        out = tf.frame_dropout(coordinate_frames(16, 2, 2), 0.5, rng)
        shown = out[:, 0, 0, 2].numpy().astype(int)
        assert shown[0] == 0
        assert (shown <= np.arange(16)).all()
        assert (np.diff(shown) >= 0).all()
        # A frame either shows itself (kept) or the frame its predecessor shows (dropped).
        assert all(shown[t] in (t, shown[t - 1]) for t in range(1, 16))


def test_frame_dropout_bad_probability():
    with pytest.raises(BadArgumentError):
        tf.frame_dropout(coordinate_frames(2, 2, 2), 1.5, np.random.default_rng(0))


# --- normalisation ---------------------------------------------------------------------------


def test_kinetics_constants():
    assert tf.KINETICS_MEAN == (0.43216, 0.394666, 0.37645)
    assert tf.KINETICS_STD == (0.22803, 0.22145, 0.216989)


def test_to_float_cthw_normalises_a_constant_frame():
    # (128 / 255 - mean) / std per channel with the Kinetics statistics:
    # R (0.501961 - 0.43216) / 0.22803 = 0.30610, G (0.501961 - 0.394666) / 0.22145 = 0.48451,
    # B (0.501961 - 0.37645) / 0.216989 = 0.57842.
    frames = torch.full((4, 6, 5, 3), 128, dtype=torch.uint8)
    out = tf.to_float_cthw(frames)
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, 4, 6, 5) and out.is_contiguous()
    for channel, value in enumerate((0.30610, 0.48451, 0.57842)):
        assert torch.allclose(out[channel], torch.tensor(value), atol=1e-4)


def test_to_float_cthw_extremes():
    # 0 -> -mean / std; 255 -> (1 - mean) / std. R: -1.89519 and 2.49019.
    black = tf.to_float_cthw(torch.zeros((1, 1, 1, 3), dtype=torch.uint8))
    white = tf.to_float_cthw(torch.full((1, 1, 1, 3), 255, dtype=torch.uint8))
    assert black[0].item() == pytest.approx(-0.43216 / 0.22803, abs=1e-5) == pytest.approx(-1.89519, abs=1e-4)
    assert (
        white[0].item()
        == pytest.approx((1 - 0.43216) / 0.22803, abs=1e-5)
        == pytest.approx(2.49019, abs=1e-4)
    )


def test_to_float_cthw_layout():
    # With mean 0 and std 1 the output is pixel / 255, so out[c, t, y, x] = frames[t, y, x, c] / 255.
    frames = coordinate_frames(3, 4, 5)
    out = tf.to_float_cthw(frames, **IDENTITY)
    assert out[0, 2, 3, 4].item() == pytest.approx(3 / 255)  # R holds y
    assert out[1, 2, 3, 4].item() == pytest.approx(4 / 255)  # G holds x
    assert out[2, 2, 3, 4].item() == pytest.approx(2 / 255)  # B holds t


def test_uint8_clips_normalised_as_a_batch_equal_clips_normalised_one_by_one():
    """The training loop moves uint8 batches and normalises them where they land: bit for bit the
    floats each clip would have been."""
    generator = torch.Generator().manual_seed(0)
    clips = [torch.randint(0, 256, (4, 6, 5, 3), dtype=torch.uint8, generator=generator) for _ in range(3)]
    compact = torch.stack([tf.to_uint8_cthw(clip) for clip in clips])
    assert (
        compact.dtype == torch.uint8 and tuple(compact.shape) == (3, 3, 4, 6, 5) and compact.is_contiguous()
    )
    assert torch.equal(tf.normalize_clips(compact), torch.stack([tf.to_float_cthw(clip) for clip in clips]))
    assert torch.equal(tf.normalize_clips(compact[1], **IDENTITY), tf.to_float_cthw(clips[1], **IDENTITY))
    with pytest.raises(BadArgumentError, match="uint8"):
        tf.normalize_clips(compact.float())


@pytest.mark.parametrize("kwargs", [{"mean": (0.5, 0.5)}, {"std": (0.2, 0.0, 0.2)}])
def test_to_float_cthw_bad_statistics(kwargs):
    with pytest.raises(BadArgumentError):
        tf.to_float_cthw(torch.zeros((1, 2, 2, 3), dtype=torch.uint8), **kwargs)


@pytest.mark.parametrize(
    "bad",
    [
        torch.zeros((2, 4, 4, 3), dtype=torch.float32),
        torch.zeros((2, 4, 4, 4), dtype=torch.uint8),
        torch.zeros((4, 4, 3), dtype=torch.uint8),
        torch.zeros((0, 4, 4, 3), dtype=torch.uint8),
        [[1, 2, 3]],
    ],
)
def test_bad_frames_raise(bad):
    with pytest.raises(BadArgumentError):
        tf.horizontal_flip(bad)


# --- pipelines -------------------------------------------------------------------------------


def test_train_views_shape_and_determinism():
    frames = torch.randint(0, 256, (16, 240, 320, 3), dtype=torch.uint8)
    spec = ClipSpec()
    out = tf.train_views(frames, spec, np.random.default_rng(0))
    assert tuple(out.shape) == (3, 16, 112, 112) and out.dtype == torch.float32 and out.is_contiguous()
    assert torch.equal(out, tf.train_views(frames, spec, np.random.default_rng(0)))


def test_train_views_crop_lies_inside_and_flips_half_the_time():
    # 128 x 160 frames are already at the short side: no resize, so the values are coordinates.
    # A 112 crop starts at y in 0..16, x in 0..48; a flipped crop has x decreasing along a row.
    frames = coordinate_frames(2, 128, 160)
    rng = np.random.default_rng(0)
    flips = 0
    for _ in range(100):
        out = (tf.train_views(frames, ClipSpec(), rng, **IDENTITY) * 255).round().to(torch.int64)
        ys, xs = out[0, 0], out[1, 0]
        assert 0 <= int(ys[0, 0]) <= 16 and int(ys[-1, 0]) == int(ys[0, 0]) + 111
        first_x, last_x = int(xs[0, 0]), int(xs[0, -1])
        flipped = first_x > last_x
        flips += flipped
        assert 0 <= min(first_x, last_x) <= 48 and abs(last_x - first_x) == 111
    # Binomial(100, 1/2): mean 50, sd 5; 30..70 is 4 sd either side.
    assert 30 <= flips <= 70


def test_test_views_one_crop_is_the_centre():
    # 128 x 170: centre crop x = ceil(58 / 2) = 29, y = 8.
    frames = coordinate_frames(2, 128, 170)
    views = tf.test_views(frames, ClipSpec(num_crops=1), **IDENTITY)
    assert len(views) == 1 and tuple(views[0].shape) == (3, 2, 112, 112)
    assert round(views[0][0, 0, 0, 0].item() * 255) == 8
    assert round(views[0][1, 0, 0, 0].item() * 255) == 29


def test_test_views_three_crops():
    # 128 x 170: x = 0, 29, 58.
    frames = coordinate_frames(2, 128, 170)
    views = tf.test_views(frames, ClipSpec(num_crops=3), **IDENTITY)
    assert [round(v[1, 0, 0, 0].item() * 255) for v in views] == [0, 29, 58]


def test_test_views_resize_then_crop():
    frames = torch.randint(0, 256, (4, 240, 320, 3), dtype=torch.uint8)
    views = tf.test_views(frames, ClipSpec(num_crops=3, size=112, short_side=128))
    assert [tuple(v.shape) for v in views] == [(3, 4, 112, 112)] * 3
    resized = tf.resize_short_side(frames, 128)
    assert torch.allclose(views[2], tf.to_float_cthw(resized[:, 8:120, 58:170]))


def test_test_views_is_not_collected_as_a_test():
    assert tf.test_views.__test__ is False


def test_random_resized_crop_covers_the_drawn_area_and_keeps_frames_aligned():
    # Each pixel encodes its (row, column): the crop's corners say where it came from.
    rows, cols = torch.meshgrid(torch.arange(60), torch.arange(80), indexing="ij")
    frame = torch.stack([rows, cols, torch.zeros_like(rows)], -1).to(torch.uint8)
    frames = torch.stack([frame, frame])
    rng = np.random.default_rng(0)
    for _ in range(20):
        crop = tf.random_resized_crop(frames, 16, rng, scale=(0.25, 0.5))
        assert crop.shape == (2, 16, 16, 3) and torch.equal(crop[0], crop[1])
        height = float(crop[0, -1, 0, 0]) - float(crop[0, 0, 0, 0])
        width = float(crop[0, 0, -1, 1]) - float(crop[0, 0, 0, 1])
        area = (height + height / 15) * (width + width / 15) / (60 * 80)  # corner centres -> full size
        assert 0.2 < area < 0.6, area
    # A scale no crop can satisfy falls back to the largest centred crop within the ratios.
    whole = tf.random_resized_crop(frames, (60, 80), rng, scale=(2.0, 3.0))
    assert torch.equal(whole, frames)


def test_colour_jitter_changes_every_frame_alike_and_zero_is_identity():
    rng = np.random.default_rng(1)
    frames = torch.from_numpy(rng.integers(0, 256, size=(1, 8, 8, 3), dtype=np.uint8)).expand(3, 8, 8, 3)
    assert tf.colour_jitter(frames, 0.0, rng) is not None and torch.equal(
        tf.colour_jitter(frames, 0.0, rng), frames
    )
    jittered = tf.colour_jitter(frames, 0.5, rng)
    assert jittered.dtype == torch.uint8 and not torch.equal(jittered, frames)
    assert torch.equal(jittered[0], jittered[1]) and torch.equal(jittered[1], jittered[2])
    grey = torch.full((2, 4, 4, 3), 100, dtype=torch.uint8)  # no colour to saturate, no contrast to stretch
    brightened = tf.colour_jitter(grey, 0.5, np.random.default_rng(2))
    assert (brightened == brightened[0, 0, 0, 0]).all()
    with pytest.raises(BadArgumentError, match="colour_jitter"):
        ClipSpec(colour_jitter=1.5)
    with pytest.raises(BadArgumentError, match="crop_scale"):
        ClipSpec(crop_scale=0)


def test_train_views_use_the_spec_augmentations():
    frames = torch.from_numpy(np.random.default_rng(3).integers(0, 256, size=(4, 48, 64, 3), dtype=np.uint8))
    plain = ClipSpec(num_frames=4, size=32, short_side=48, hflip=False)
    augmented = ClipSpec(num_frames=4, size=32, short_side=48, hflip=False, crop_scale=0.3, colour_jitter=0.4)
    a = tf.train_views(frames, plain, np.random.default_rng(0), normalize=False)
    b = tf.train_views(frames, augmented, np.random.default_rng(0), normalize=False)
    assert a.shape == b.shape == (3, 4, 32, 32) and not torch.equal(a, b)
