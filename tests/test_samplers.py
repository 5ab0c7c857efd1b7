"""Clip samplers against hand-computed indices (every expected number is worked out in a comment)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from vidlearn.data.samplers import (
    Clip,
    ClipSpec,
    apply_short_policy,
    random_clip,
    sliding_windows,
    tsn_segments,
    uniform_clips,
)
from vidlearn.errors import BadArgumentError, VidlearnError

VIDEOS = Path("/work/shared/videos")


# --- ClipSpec: step, offsets, span -----------------------------------------------------------


def test_default_spec_takes_16_consecutive_frames():
    spec = ClipSpec()
    assert (spec.num_frames, spec.size, spec.short_side, spec.num_clips, spec.num_crops) == (
        16,
        112,
        128,
        1,
        1,
    )
    assert spec.step() == 1.0
    np.testing.assert_array_equal(spec.offsets(), np.arange(16))
    assert spec.span() == 16


def test_stride_2_span():
    # T=16, stride 2: offsets 0, 2, ..., 30; the clip covers frames 0..30, 31 frames.
    spec = ClipSpec(num_frames=16, stride=2)
    np.testing.assert_array_equal(spec.offsets(), np.arange(0, 31, 2))
    assert spec.span() == 31


def test_target_fps_30_to_7_5_gives_step_4():
    # 30 fps sampled at 7.5 fps: step 30 / 7.5 = 4; offsets 0, 4, ..., 60; span 61.
    spec = ClipSpec(num_frames=16, target_fps=7.5)
    assert spec.step(30.0) == 4.0
    np.testing.assert_array_equal(spec.offsets(30.0), np.arange(0, 61, 4))
    assert spec.span(30.0) == 61


def test_fractional_step_floors():
    # 25 fps at 10 fps: step 2.5; i * 2.5 = 0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5 -> floor 0 2 5 7 10 12 15 17.
    spec = ClipSpec(num_frames=8, target_fps=10)
    np.testing.assert_array_equal(spec.offsets(25), [0, 2, 5, 7, 10, 12, 15, 17])
    assert spec.span(25) == 18


def test_ntsc_step_that_should_be_whole_lands_on_whole_frames():
    # 29.97 fps (30000/1001) at half that rate: the step is 2 in exact arithmetic, whatever the float says.
    ntsc = 30000 / 1001
    spec = ClipSpec(num_frames=16, target_fps=ntsc / 2)
    np.testing.assert_array_equal(spec.offsets(ntsc), np.arange(0, 31, 2))
    same_rate = ClipSpec(num_frames=300, target_fps=ntsc)
    np.testing.assert_array_equal(same_rate.offsets(ntsc), np.arange(300))


def test_target_fps_above_video_fps_repeats_frames():
    # 10 fps video at 20 fps: step 0.5, offsets floor(0, .5, 1, 1.5, 2, 2.5) = 0 0 1 1 2 2.
    spec = ClipSpec(num_frames=6, target_fps=20)
    np.testing.assert_array_equal(spec.offsets(10), [0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_frames": 0},
        {"num_frames": 2.0},
        {"stride": 0},
        {"stride": -2},
        {"stride": 1.5},
        {"stride": 2, "target_fps": 7.5},
        {"target_fps": 0},
        {"target_fps": -5.0},
        {"target_fps": float("nan")},
        {"short_policy": "wrap"},
        {"num_clips": 0},
        {"num_crops": 2},
        {"size": 0},
        {"size": 160, "short_side": 128},
    ],
)
def test_invalid_spec_raises_bad_argument(kwargs):
    with pytest.raises(BadArgumentError):
        ClipSpec(**kwargs)


def test_target_fps_needs_video_fps():
    spec = ClipSpec(target_fps=7.5)
    with pytest.raises(BadArgumentError, match="fps"):
        random_clip(300, spec, np.random.default_rng(0))
    with pytest.raises(BadArgumentError):
        uniform_clips(300, spec, video_fps=0.0)


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClipSpec().num_frames = 8


# --- uniform (test) clips ---------------------------------------------------------------------


def test_uniform_clips_300_frames_t16_stride2_three_clips():
    # span 31 -> valid starts 0..269, M = 270. Three equal parts of [0, 270): [0, 90), [90, 180),
    # [180, 270); centres 45, 135, 225. Clip k holds start + 0, 2, ..., 30.
    spec = ClipSpec(num_frames=16, stride=2, num_clips=3)
    clips = uniform_clips(300, spec)
    assert [c.start for c in clips] == [45, 135, 225]
    assert [c.end for c in clips] == [75, 165, 255]
    np.testing.assert_array_equal(clips[0].indices, np.arange(45, 76, 2))
    assert not any(c.pad_mask.any() for c in clips)


def test_uniform_single_clip_is_the_centre_clip():
    # M = 270, one part [0, 270), centre 135: frames 135..165, whose middle (150) is the video's middle.
    clips = uniform_clips(300, ClipSpec(num_frames=16, stride=2))
    assert len(clips) == 1 and clips[0].start == 135


def test_uniform_clips_at_target_fps():
    # 30 fps at 7.5 fps: span 61, M = 300 - 61 + 1 = 240; centres of 3 parts of 80: 40, 120, 200.
    clips = uniform_clips(300, ClipSpec(num_frames=16, target_fps=7.5, num_clips=3), video_fps=30)
    assert [c.start for c in clips] == [40, 120, 200]
    np.testing.assert_array_equal(clips[1].indices, np.arange(120, 181, 4))


def test_uniform_clips_floor_of_fractional_centre():
    # L = 100, T = 10 consecutive: M = 91. Centres (k + 1/2) * 91 / 4 = 11.375, 34.125, 56.875, 79.625.
    clips = uniform_clips(100, ClipSpec(num_frames=10, num_clips=4))
    assert [c.start for c in clips] == [11, 34, 56, 79]


def test_uniform_clips_span_equals_length():
    # L = 31 = span: the only start is 0; all 3 clips are the whole video, no padding.
    clips = uniform_clips(31, ClipSpec(num_frames=16, stride=2, num_clips=3, short_policy="error"))
    assert [c.start for c in clips] == [0, 0, 0]
    assert clips[0].end == 30


def test_uniform_clips_short_video_keeps_clip_count():
    clips = uniform_clips(5, ClipSpec(num_frames=8, num_clips=3, short_policy="repeat_last"))
    assert len(clips) == 3
    for clip in clips:
        np.testing.assert_array_equal(clip.indices, [0, 1, 2, 3, 4, 4, 4, 4])


# --- short-video policies --------------------------------------------------------------------


def test_short_policy_loop():
    # L = 5, T = 8: raw 0..7; 5, 6, 7 wrap to 0, 1, 2.
    clip = uniform_clips(5, ClipSpec(num_frames=8, short_policy="loop"))[0]
    np.testing.assert_array_equal(clip.indices, [0, 1, 2, 3, 4, 0, 1, 2])
    assert not clip.pad_mask.any()


def test_short_policy_loop_with_stride():
    # L = 5, T = 4, stride 2: raw 0, 2, 4, 6; 6 mod 5 = 1.
    clip = random_clip(5, ClipSpec(num_frames=4, stride=2, short_policy="loop"), np.random.default_rng(0))
    np.testing.assert_array_equal(clip.indices, [0, 2, 4, 1])


def test_short_policy_repeat_last():
    clip = uniform_clips(5, ClipSpec(num_frames=8, short_policy="repeat_last"))[0]
    np.testing.assert_array_equal(clip.indices, [0, 1, 2, 3, 4, 4, 4, 4])
    assert not clip.pad_mask.any()


def test_short_policy_pad_marks_padding():
    clip = uniform_clips(5, ClipSpec(num_frames=8, short_policy="pad"))[0]
    np.testing.assert_array_equal(clip.indices, [0, 1, 2, 3, 4, 4, 4, 4])
    np.testing.assert_array_equal(clip.pad_mask, [False] * 5 + [True] * 3)


def test_short_policy_error_names_both_lengths():
    with pytest.raises(BadArgumentError, match=r"spans 31 frames.*only 20"):
        random_clip(20, ClipSpec(num_frames=16, stride=2, short_policy="error"), np.random.default_rng(0))


@pytest.mark.parametrize("policy", ["loop", "repeat_last", "pad"])
def test_one_frame_video(policy):
    clip = random_clip(1, ClipSpec(num_frames=16, short_policy=policy), np.random.default_rng(0))
    np.testing.assert_array_equal(clip.indices, np.zeros(16))
    np.testing.assert_array_equal(clip.pad_mask, [False] + [policy == "pad"] * 15)


@pytest.mark.parametrize("length", [0, -3, 2.5, "10"])
def test_bad_frame_counts_raise(length):
    spec = ClipSpec()
    for sample in (
        lambda: random_clip(length, spec, np.random.default_rng(0)),
        lambda: uniform_clips(length, spec),
        lambda: sliding_windows(length, spec, step=4),
        lambda: tsn_segments(length, 3),
    ):
        with pytest.raises(BadArgumentError):
            sample()


def test_apply_short_policy_rejects_unknown_policy():
    with pytest.raises(BadArgumentError, match="short_policy"):
        apply_short_policy(np.arange(3), 10, "mirror")


def test_errors_belong_to_the_family():
    assert issubclass(BadArgumentError, VidlearnError)


# --- random (training) clips -----------------------------------------------------------------


def test_random_clip_span_equals_length_always_starts_at_zero():
    rng = np.random.default_rng(1)
    spec = ClipSpec(num_frames=16, stride=2, short_policy="error")
    assert {random_clip(31, spec, rng).start for _ in range(50)} == {0}


def test_random_clip_starts_are_uniform_over_valid_starts():
    # L = 100, span 31 -> 70 valid starts (0..69). 35,000 draws, 500 expected per start.
    # Pearson chi-square with 69 degrees of freedom: the 0.999 quantile is about 111.1
    # (Wilson-Hilferty: 69 * (1 - 2/621 + 3.090 * sqrt(2/621))^3).
    rng = np.random.default_rng(2024)
    spec = ClipSpec(num_frames=16, stride=2)
    starts = np.array([random_clip(100, spec, rng).start for _ in range(35_000)])
    counts = np.bincount(starts, minlength=70)
    assert counts.shape == (70,), "a start beyond 69 was drawn"
    assert counts.min() > 0
    chi_square = ((counts - 500.0) ** 2 / 500.0).sum()
    assert chi_square < 111.1


def test_random_clips_stay_in_range_and_keep_their_offsets():
    rng = np.random.default_rng(7)
    specs = [
        (ClipSpec(num_frames=16, stride=2), None),
        (ClipSpec(num_frames=8, target_fps=10), 25.0),
        (ClipSpec(num_frames=32, target_fps=7.5), 30.0),
        (ClipSpec(num_frames=4, stride=5), None),
    ]
    for spec, fps in specs:
        offsets = spec.offsets(fps)
        for length in range(spec.span(fps), spec.span(fps) + 40):
            for _ in range(20):
                clip = random_clip(length, spec, rng, video_fps=fps)
                assert clip.start >= 0 and clip.end < length
                np.testing.assert_array_equal(clip.indices - clip.start, offsets)


def test_random_clip_is_reproducible_from_the_generator():
    spec = ClipSpec(num_frames=16, stride=2)
    first = [random_clip(300, spec, np.random.default_rng(5)).start for _ in range(3)]
    assert first[0] == first[1] == first[2]


# --- sliding windows -------------------------------------------------------------------------


def test_sliding_windows_cover_the_end():
    # L = 100, span 16, valid starts 0..84. Step 20: 0, 20, 40, 60, 80; 80 + 15 = 95 < 99, so a
    # final window starts at 84 and ends at 99.
    windows = sliding_windows(100, ClipSpec(num_frames=16), step=20)
    assert [w.start for w in windows] == [0, 20, 40, 60, 80, 84]
    assert [w.end for w in windows] == [15, 35, 55, 75, 95, 99]


def test_sliding_windows_no_duplicate_when_grid_hits_the_end():
    # Step 21: 0, 21, 42, 63, 84; 84 is already the last valid start.
    windows = sliding_windows(100, ClipSpec(num_frames=16), step=21)
    assert [w.start for w in windows] == [0, 21, 42, 63, 84]


def test_sliding_windows_with_stride_and_exact_fit():
    # L = 31 = span (T = 16, stride 2): exactly one window 0..30.
    windows = sliding_windows(31, ClipSpec(num_frames=16, stride=2), step=8)
    assert [(w.start, w.end) for w in windows] == [(0, 30)]


def test_sliding_windows_short_video():
    windows = sliding_windows(10, ClipSpec(num_frames=16, short_policy="pad"), step=4)
    assert len(windows) == 1
    assert windows[0].pad_mask.sum() == 6


@pytest.mark.parametrize("step", [0, -1, 2.5])
def test_sliding_windows_bad_step(step):
    with pytest.raises(BadArgumentError):
        sliding_windows(100, ClipSpec(), step=step)


# --- TSN segments ----------------------------------------------------------------------------


def test_tsn_test_mode_takes_segment_centres():
    # L = 100, K = 3, snippet 1: M = 100; centres (k + 1/2) * 100 / 3 = 16.67, 50, 83.33.
    np.testing.assert_array_equal(tsn_segments(100, 3).indices, [16, 50, 83])


def test_tsn_test_mode_with_snippets():
    # L = 50, snippet 5: M = 46 starts; centres (k + 1/2) * 46 / 3 = 7.67, 23, 38.33.
    clip = tsn_segments(50, 3, snippet_len=5)
    np.testing.assert_array_equal(clip.indices, [7, 8, 9, 10, 11, 23, 24, 25, 26, 27, 38, 39, 40, 41, 42])


def test_tsn_training_offsets_cover_each_segment_and_stay_inside():
    # L = 30, K = 3: segments of starts [0, 10), [10, 20), [20, 30) exactly.
    rng = np.random.default_rng(3)
    draws = np.array([tsn_segments(30, 3, rng=rng).indices for _ in range(2000)])
    assert draws[:, 0].min() == 0 and draws[:, 0].max() == 9
    assert draws[:, 1].min() == 10 and draws[:, 1].max() == 19
    assert draws[:, 2].min() == 20 and draws[:, 2].max() == 29


def test_tsn_training_bounds_with_uneven_segments():
    # L = 100, K = 3: segments [0, 33.3), [33.3, 66.7), [66.7, 100); floors lie in 0..33, 33..66, 66..99.
    rng = np.random.default_rng(4)
    draws = np.array([tsn_segments(100, 3, rng=rng).indices for _ in range(3000)])
    for k, (low, high) in enumerate([(0, 33), (33, 66), (66, 99)]):
        assert draws[:, k].min() >= low and draws[:, k].max() <= high
        # Each segment is really explored, not stuck at one point.
        assert draws[:, k].max() - draws[:, k].min() >= 30


def test_tsn_training_snippets_are_consecutive_and_inside():
    rng = np.random.default_rng(5)
    for length in range(8, 60):
        clip = tsn_segments(length, 4, snippet_len=8, rng=rng)
        snippets = clip.indices.reshape(4, 8)
        np.testing.assert_array_equal(snippets - snippets[:, :1], np.tile(np.arange(8), (4, 1)))
        assert clip.end < length
        assert (np.diff(snippets[:, 0]) >= 0).all()


def test_tsn_fewer_frames_than_segments_shares_frames():
    # L = 2, K = 4: M = 2; centres (k + 1/2) * 2 / 4 = 0.25, 0.75, 1.25, 1.75 -> 0, 0, 1, 1.
    np.testing.assert_array_equal(tsn_segments(2, 4).indices, [0, 0, 1, 1])


def test_tsn_video_shorter_than_a_snippet_loops():
    # L = 3, snippet 5: every snippet starts at 0; raw 0..4 loops to 0, 1, 2, 0, 1.
    clip = tsn_segments(3, 2, snippet_len=5)
    np.testing.assert_array_equal(clip.indices, [0, 1, 2, 0, 1, 0, 1, 2, 0, 1])


@pytest.mark.parametrize("kwargs", [{"num_segments": 0}, {"num_segments": 3, "snippet_len": 0}])
def test_tsn_bad_arguments(kwargs):
    with pytest.raises(BadArgumentError):
        tsn_segments(100, **kwargs)


# --- the Clip record -------------------------------------------------------------------------


def test_clip_times_follow_frame_times():
    # 30 fps: frame k presents at k / 30 s; clip 45, 47, ..., 75 -> 1.5 s, ..., 2.5 s.
    clip = uniform_clips(300, ClipSpec(num_frames=16, stride=2, num_clips=3))[0]
    times = clip.times(np.arange(300) / 30.0)
    assert times[0] == pytest.approx(1.5) and times[-1] == pytest.approx(2.5)


def test_clip_arrays_are_read_only():
    clip = Clip(np.arange(4))
    assert clip.indices.dtype == np.int64 and clip.pad_mask.dtype == bool
    assert len(clip) == 4
    with pytest.raises(ValueError):
        clip.indices[0] = 3
    with pytest.raises(BadArgumentError):
        Clip(np.arange(4), pad_mask=np.zeros(3, dtype=bool))


# --- with a real video -----------------------------------------------------------------------


def test_uniform_clips_decode_from_a_real_video():
    io = pytest.importorskip("vidlearn.io")
    path = VIDEOS / "mmaction2_test.mp4"  # manifest: 300 frames, 30 fps, 340x256
    if not path.exists():
        pytest.skip("sample videos not available")
    info = io.probe(path)
    clips = uniform_clips(info.frames, ClipSpec(num_frames=16, stride=2, num_clips=3), video_fps=info.fps)
    assert [c.start for c in clips] == [45, 135, 225]  # worked out in the 300-frame test above
    frames = io.read_frames(path, clips[0].indices)
    assert frames.shape == (16, 256, 340, 3) and frames.dtype == np.uint8


def test_loop_policy_on_a_three_frame_video():
    io = pytest.importorskip("vidlearn.io")
    path = VIDEOS / "decord_video_0.mov"  # manifest: 3 frames
    if not path.exists():
        pytest.skip("sample videos not available")
    clip = random_clip(io.probe(path).frames, ClipSpec(num_frames=8), np.random.default_rng(0))
    np.testing.assert_array_equal(clip.indices, [0, 1, 2, 0, 1, 2, 0, 1])
    frames = io.read_frames(path, clip.indices)
    np.testing.assert_array_equal(frames[3], frames[0])
    np.testing.assert_array_equal(frames[7], frames[1])
