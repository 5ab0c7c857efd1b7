"""SynthActions: trajectories, the renderer against pixel measurements, and the dataset on disk.

Expected numbers come from geometry (disc areas, centroids, frequencies), from parsing the
written files with the csv module and plain string splitting, and from probing and decoding the
videos with vidlearn.io, never from the generator's own bookkeeping.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidlearn.data import synth
from vidlearn.data.synth import (
    CLASS_NAMES,
    CLASSES,
    TIME_REVERSED_PAIRS,
    Appearance,
    Background,
    Camera,
    Scene,
    Track,
    class_by_name,
    draw_motion,
    make_pose,
    plan_clip,
    plan_untrimmed,
    render_array,
    split_groups,
    synthesize,
)
from vidlearn.errors import BadArgumentError, VidlearnError
from vidlearn.io import probe, read_frames, write_video

U = np.linspace(0.0, 1.0, 61)


@functools.cache
def motions(count: int, seed: int, duration: float = 4.0) -> tuple:
    rng = np.random.default_rng(seed)
    return tuple(draw_motion(rng, duration) for _ in range(count))


def trajectory(name: str):
    return class_by_name(name).trajectory


# ---------------------------------------------------------------------------------------------
# Classes and trajectories
# ---------------------------------------------------------------------------------------------


def test_class_table():
    assert 16 <= len(CLASSES) <= 18
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", name) for name in CLASS_NAMES)
    paired = [name for pair in TIME_REVERSED_PAIRS for name in pair]
    assert len(set(paired)) == 10 and set(paired) <= set(CLASS_NAMES)
    families = {c.name: c.family for c in CLASSES}
    assert all(families[name] == "time-reversed" for name in paired)
    assert {"Bounce", "ZigZag", "Orbit", "Shake"} <= {n for n, f in families.items() if f == "motion"}
    # Appearance classes own their shape: no other class may draw it.
    for action in CLASSES:
        if action.family == "appearance":
            assert all(action.kinds[0] not in other.kinds for other in CLASSES if other is not action)
    with pytest.raises(BadArgumentError, match="Jump"):
        class_by_name("Jump")


@pytest.mark.parametrize("forward, backward", TIME_REVERSED_PAIRS)
def test_pair_is_its_twin_played_backwards(forward, backward):
    for m in motions(20, seed=1):
        a, b = trajectory(forward)(U, m), trajectory(backward)(U, m)
        for field in ("x", "y", "scale", "angle", "alpha"):
            np.testing.assert_allclose(getattr(b, field), getattr(a, field)[::-1], atol=1e-12)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance: the largest gap between the empirical CDFs."""
    a, b = np.sort(a), np.sort(b)
    points = np.concatenate([a, b])
    return float(
        np.max(
            np.abs(
                np.searchsorted(a, points, "right") / len(a) - np.searchsorted(b, points, "right") / len(b)
            )
        )
    )


def pose_values(name: str, ms, frames=slice(None)) -> dict[str, np.ndarray]:
    poses = [trajectory(name)(U, m) for m in ms]
    return {
        "x": np.concatenate([p.x[frames].ravel() for p in poses]),
        "y": np.concatenate([p.y[frames].ravel() for p in poses]),
        "scale": np.concatenate([p.scale[frames].ravel() for p in poses]),
        "angle": np.concatenate([np.mod(p.angle[frames], 360).ravel() for p in poses]),
        "alpha": np.concatenate([p.alpha[frames].ravel() for p in poses]),
    }


@pytest.mark.parametrize("forward, backward", TIME_REVERSED_PAIRS)
def test_pair_single_frames_are_indistinguishable(forward, backward):
    # Independent draws for the two classes: the distributions, not the samples, must agree. The
    # KS bound is the 0.1% critical value for as many samples as videos (frames of one video are
    # not independent, so counting videos is the conservative choice).
    n = 2000
    bound = 1.95 * math.sqrt(2 / n)
    fwd_draws, bwd_draws = motions(n, 2), motions(n, 3)
    fwd_all, bwd_all = pose_values(forward, fwd_draws), pose_values(backward, bwd_draws)
    fwd_first, bwd_last = pose_values(forward, fwd_draws, 0), pose_values(backward, bwd_draws, -1)
    fwd_last, bwd_first = pose_values(forward, fwd_draws, -1), pose_values(backward, bwd_draws, 0)
    for field in fwd_all:
        assert ks_statistic(fwd_all[field], bwd_all[field]) < bound, field
        assert ks_statistic(fwd_first[field], bwd_last[field]) < bound, field
        assert ks_statistic(fwd_last[field], bwd_first[field]) < bound, field
    # ...while the order of frames does tell them apart: the change from first to last frame.
    fwd_change, bwd_change = pose_change(forward, fwd_draws), pose_change(backward, bwd_draws)
    assert max(ks_statistic(fwd_change[:, f], bwd_change[:, f]) for f in range(5)) > 0.99


def pose_change(name: str, ms) -> np.ndarray:
    poses = [trajectory(name)(U, m) for m in ms]
    return np.array(
        [[getattr(p, f)[-1] - getattr(p, f)[0] for f in ("x", "y", "scale", "angle", "alpha")] for p in poses]
    )


def test_monotone_trajectories():
    for m in motions(30, seed=8):
        names = ("MoveLeft", "Grow", "RotateAnticlockwise", "Approach", "FadeIn")
        left, grow, turn, near, fade = (trajectory(n)(U, m) for n in names)
        assert np.all(np.diff(left.x) < 0) and np.ptp(left.y) == 0 and left.x[0] - left.x[-1] > 0.35
        assert np.all(np.diff(grow.scale) > 0) and np.ptp(grow.x) == 0 and grow.scale[-1] / grow.scale[0] > 2
        assert np.all(np.diff(turn.angle) > 0) and 100 < turn.angle[-1] - turn.angle[0] < 300
        # Perspective: nearer is larger and lower in the frame (y grows downwards), together.
        assert np.all(np.diff(near.scale) > 0) and np.all(np.diff(near.y) > 0)
        assert np.all(np.diff(fade.alpha) > 0) and fade.alpha[0] <= 0.1 and fade.alpha[-1] >= 0.9
        for pose in (left, grow, turn, near, fade):
            assert np.all((pose.x > 0.1) & (pose.x < 0.9) & (pose.y > 0.25) & (pose.y < 0.8))


@pytest.mark.parametrize("name", ["Ring", "Crescent", "Hourglass"])
def test_appearance_classes_barely_move(name):
    for m in motions(30, seed=9):
        pose = trajectory(name)(U, m)
        assert np.hypot(pose.x - pose.x[0], pose.y - pose.y[0]).max() < 0.035
        assert np.ptp(pose.scale) == 0 and np.ptp(pose.alpha) == 0 and np.ptp(pose.angle) == 0


def count_sign_changes(values: np.ndarray) -> int:
    signs = np.sign(values[np.abs(values) > 1e-9])
    return int(np.sum(signs[1:] != signs[:-1]))


def test_periodic_motions_keep_real_time_rates():
    u = np.linspace(0.0, 1.0, 2001)
    for duration in (2.0, 6.0):
        for m in motions(10, seed=10, duration=duration):
            # Shake: a sinusoid crosses its centre twice a cycle.
            shake = trajectory("Shake")(u, m)
            offset = (shake.x - m.anchor_x) * math.cos(math.radians(m.shake_direction)) + (
                shake.y - m.anchor_y
            ) * math.sin(math.radians(m.shake_direction))
            assert abs(count_sign_changes(offset) - 2 * synth.SHAKE_HZ * m.tempo * duration) <= 2
            # Bounce: the actor touches the ground once a cycle and never goes below it.
            bounce = trajectory("Bounce")(u, m)
            assert bounce.y.max() <= m.ground_y + 1e-9
            touches = np.sum((bounce.y[1:-1] > bounce.y[:-2]) & (bounce.y[1:-1] >= bounce.y[2:]))
            assert abs(touches - synth.BOUNCE_HZ * m.tempo * duration) <= 1.01
            # Orbit: stays on its ellipse and sweeps the expected angle.
            orbit = trajectory("Orbit")(u, m)
            dx, dy = (orbit.x - m.anchor_x) / m.orbit_radius_x, (orbit.y - m.anchor_y) / m.orbit_radius_y
            np.testing.assert_allclose(np.hypot(dx, dy), 1.0, atol=1e-9)
            swept = np.unwrap(np.arctan2(dy, dx))
            turns = m.direction * synth.ORBIT_HZ * m.tempo * duration
            np.testing.assert_allclose((swept[-1] - swept[0]) / (2 * np.pi), turns, atol=1e-6)
            # ZigZag: crosses the frame one way while y turns around twice a cycle.
            zig = trajectory("ZigZag")(u, m)
            assert np.all(np.sign(np.diff(zig.x)) == m.direction)
            assert abs(count_sign_changes(np.diff(zig.y)) - 2 * synth.ZIGZAG_HZ * m.tempo * duration) <= 2


def test_there_and_back_returns_at_move_speed():
    for m in motions(20, seed=11):
        pose = trajectory("ThereAndBack")(U, m)
        middle = len(U) // 2
        assert pose.x[0] == pytest.approx(pose.x[-1]) and pose.x[middle] == pytest.approx(
            (m.left_x + m.right_x) / 2
        )
        first_half = np.diff(pose.x[: middle + 1])
        assert np.all(np.sign(first_half) == m.direction) and np.all(
            np.sign(np.diff(pose.x[middle:])) == -m.direction
        )
        # Locally as fast as MoveLeft, so a short clip of either half looks like a Move* clip.
        move_speed = abs(np.diff(trajectory("MoveLeft")(U, m).x)).mean()
        assert abs(first_half).mean() == pytest.approx(move_speed)


# ---------------------------------------------------------------------------------------------
# The renderer, measured on its pixels
# ---------------------------------------------------------------------------------------------

GREY = (40, 40, 40)


def plain_scene(track: Track, width=160, height=120, noise=0.0, jitter=None) -> Scene:
    frames = len(track.pose)
    return Scene(
        camera=Camera(width, height, 20, 0.0, noise),
        frames=frames,
        background=Background("striped", (GREY, GREY), 10.0, 0.0, 0),
        drift=np.zeros((frames, 2), np.int64),
        jitter=np.zeros((frames, 2), np.int64) if jitter is None else np.asarray(jitter, np.int64),
        tracks=(track,),
        noise_seed=0,
    )


def white(kind: str, size: float) -> Appearance:
    return Appearance(kind, "white", "solid", size, 0.0, 0.5)


def coverage(frames: np.ndarray) -> np.ndarray:
    """How much of each pixel the white actor covers (0..1), from its contrast with the grey."""
    return (frames.astype(np.float64).mean(axis=-1) - GREY[0]) / (245 - GREY[0])


def centroid(weights: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(weights.shape)
    return float((cols * weights).sum() / weights.sum()), float((rows * weights).sum() / weights.sum())


def test_actor_follows_its_trajectory():
    m = motions(1, seed=12)[0]
    u = np.linspace(0, 1, 9)
    pose = trajectory("MoveLeft")(u, m)
    frames = render_array(plain_scene(Track(white("circle", 0.25), pose)))
    for k in range(len(u)):
        cx, cy = centroid(coverage(frames[k]))
        assert cx == pytest.approx(pose.x[k] * 160, abs=0.6) and cy == pytest.approx(pose.y[k] * 120, abs=0.6)


def test_size_and_opacity_are_rendered():
    u = np.linspace(0, 1, 6)
    scales = np.linspace(0.5, 1.5, 6)
    frames = render_array(plain_scene(Track(white("circle", 0.3), make_pose(u, 0.5, 0.5, scale=scales))))
    for k, scale in enumerate(scales):
        radius = 0.3 / 2 * 120 * scale
        assert coverage(frames[k]).sum() == pytest.approx(math.pi * radius**2, rel=0.015)
    alphas = np.linspace(0.1, 1.0, 6)
    frames = render_array(plain_scene(Track(white("square", 0.3), make_pose(u, 0.5, 0.5, alpha=alphas))))
    opaque = coverage(frames[-1]).sum()
    for k, alpha in enumerate(alphas):
        assert coverage(frames[k]).sum() / opaque == pytest.approx(alpha, abs=0.01)


def test_positive_angles_turn_anticlockwise_on_screen():
    # A crescent's mass lies left of its centre; turning anticlockwise on screen (y down) carries
    # "left" to "below" after 90 degrees and to "above" after -90 degrees.
    u = np.zeros(3)
    pose = make_pose(u, 0.5, 0.5, angle=[0.0, 90.0, -90.0])
    frames = render_array(plain_scene(Track(white("crescent", 0.5), pose)))
    offsets = [np.subtract(centroid(coverage(f)), (80, 60)) for f in frames]
    assert offsets[0][0] < -3 and abs(offsets[0][1]) < abs(offsets[0][0]) / 2
    assert offsets[1][1] > 3 and abs(offsets[1][0]) < offsets[1][1] / 2
    assert offsets[2][1] < -3 and abs(offsets[2][0]) < -offsets[2][1] / 2


def test_camera_jitter_moves_the_scene_the_other_way():
    pose = make_pose(np.zeros(2), 0.5, 0.5)
    frames = render_array(plain_scene(Track(white("circle", 0.3), pose), jitter=[(0, 0), (3, -2)]))
    (x0, y0), (x1, y1) = centroid(coverage(frames[0])), centroid(coverage(frames[1]))
    assert (x1 - x0, y1 - y0) == (pytest.approx(-3, abs=0.05), pytest.approx(2, abs=0.05))


def test_sensor_noise_has_the_requested_spread():
    track = Track(white("circle", 0.1), make_pose(np.zeros(4), 0.5, 0.5, alpha=0.0))
    frames = render_array(plain_scene(track, noise=4.0)).astype(np.float64)
    assert frames.mean() == pytest.approx(GREY[0], abs=0.1)
    assert frames.std() == pytest.approx(4.0, rel=0.05)
    assert not np.array_equal(frames[0], frames[1])


def test_plans_are_determined_by_seed_and_identity():
    a, b, c = plan_clip(3, 5, 2, 1), plan_clip(3, 5, 2, 1), plan_clip(4, 5, 2, 1)
    assert a.caption == b.caption
    first = render_array(a.scene)
    np.testing.assert_array_equal(first, render_array(b.scene))
    other = render_array(c.scene)
    assert first.shape != other.shape or not np.array_equal(first, other)
    # Every clip draws its own camera, background and actor look, so no class is tied to a look.
    sibling = plan_clip(3, 5, 2, 2)
    assert sibling.scene.camera != a.scene.camera
    assert sibling.scene.background != a.scene.background
    assert sibling.scene.tracks[0].appearance != a.scene.tracks[0].appearance


def test_untrimmed_plan_leaves_gaps_of_background():
    for index in range(1, 6):
        plan = plan_untrimmed(0, index)
        scene = plan.scene
        assert 20 <= scene.frames / scene.camera.fps <= 40
        actors = scene.tracks[: len(plan.segments)]
        for segment, actor in zip(plan.segments, actors):
            assert (actor.start, actor.start + len(actor.pose)) == (segment.start_frame, segment.end_frame)
        # Every other track lasts the whole video: distractors, not actors.
        assert all(len(t.pose) == scene.frames and t.start == 0 for t in scene.tracks[len(plan.segments) :])


# ---------------------------------------------------------------------------------------------
# The dataset on disk
# ---------------------------------------------------------------------------------------------

PER_CLASS = 2
SEED = 3


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = synthesize(
        out, num_videos=PER_CLASS * len(CLASSES), seed=SEED, workers=2, num_untrimmed=1, progress=False
    )
    return out, summary


def read_lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def test_layout_and_split_files(dataset):
    out, summary = dataset
    lists = out / "ucfTrainTestlist"
    class_ind = read_lines(lists / "classInd.txt")
    assert [int(i) for i, _ in class_ind] == list(range(1, len(CLASSES) + 1))
    names = {int(i): name for i, name in class_ind}
    assert list(names.values()) == list(CLASS_NAMES)

    train, test = read_lines(lists / "trainlist01.txt"), read_lines(lists / "testlist01.txt")
    assert all(len(row) == 2 for row in train) and all(len(row) == 1 for row in test)
    on_disk = sorted(str(p.relative_to(out / "clips")) for p in (out / "clips").glob("*/*.mp4"))
    assert sorted([row[0] for row in train] + [row[0] for row in test]) == on_disk
    assert len(on_disk) == summary.clips == PER_CLASS * len(CLASSES)
    assert (summary.train_clips, summary.test_clips) == (len(train), len(test))

    groups = defaultdict(lambda: {"train": set(), "test": set()})
    per_class = defaultdict(int)
    for split, rows in (("train", train), ("test", test)):
        for row in rows:
            folder, file = row[0].split("/")
            match = re.fullmatch(rf"{folder}_g(\d\d)_c(\d\d)\.mp4", file)
            assert match, row
            if split == "train":
                assert names[int(row[1])] == folder
            groups[folder][split].add(int(match.group(1)))
            per_class[folder] += 1
    assert set(per_class.values()) == {PER_CLASS}
    for folder, g in groups.items():
        assert g["train"] and g["test"] and not g["train"] & g["test"], folder
        assert min(g["test"]) > max(g["train"])  # held-out groups are the last ones


def test_captions_describe_every_clip(dataset):
    out, _ = dataset
    with open(out / "captions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    clips = sorted(str(p.relative_to(out / "clips")) for p in (out / "clips").glob("*/*.mp4"))
    assert sorted(r["path"] for r in rows) == clips
    for row in rows:
        assert row["path"].split("/")[0] == row["label"]
        action = class_by_name(row["label"])
        assert row["caption"].startswith("a ") and " background" in row["caption"]
        assert any(kind in row["caption"] for kind in action.kinds)
        verb = action.phrase.split("{")[0].strip()
        assert verb in row["caption"], row


def test_videos_are_what_was_planned(dataset):
    out, _ = dataset
    for label, name in enumerate(CLASS_NAMES):
        for path in sorted((out / "clips" / name).glob("*.mp4")):
            group, clip = map(int, re.findall(r"_g(\d+)_c(\d+)", path.name)[0])
            info, plan = probe(path), plan_clip(SEED, label, group, clip)
            assert info.codec == "h264" and info.width % 2 == 0 and info.height % 2 == 0
            assert (
                128 <= info.width <= 320
                and min(abs(info.width / info.height - r) for r in (4 / 3, 16 / 9)) < 0.05
            )
            assert 12 <= info.fps <= 30 and 2 - 1 / info.fps <= info.duration <= 6 + 1 / info.fps
            camera = plan.scene.camera
            assert (info.width, info.height, info.frames) == (camera.width, camera.height, plan.scene.frames)
    # The decoded pixels are the rendered ones, up to H.264 loss.
    plan = plan_clip(SEED, 0, 1, 1)
    decoded = read_frames(out / "clips" / plan.relative_path, list(range(plan.scene.frames))).astype(
        np.float64
    )
    mse = np.mean((decoded - render_array(plan.scene)) ** 2)
    assert 10 * math.log10(255**2 / mse) > 30


def test_untrimmed_segments(dataset):
    out, summary = dataset
    with open(out / "untrimmed" / "segments.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary.segments >= 1
    by_video = defaultdict(list)
    for row in rows:
        assert row["label"] in CLASS_NAMES
        by_video[row["video"]].append((float(row["start"]), float(row["end"])))
    assert sorted(by_video) == sorted(p.name for p in (out / "untrimmed").glob("*.mp4"))
    for video, spans in by_video.items():
        info = probe(out / "untrimmed" / video)
        assert 20 <= info.duration <= 40
        spans.sort()
        for start, end in spans:
            assert start > 0 and 2 - 1e-6 <= end - start <= 6 + 1 / info.fps and end <= info.duration
            # Boundaries fall on frames.
            assert start * info.fps == pytest.approx(round(start * info.fps), abs=1e-3)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start - end >= 1 - 1e-6  # non-overlapping, separated by background


def test_metadata(dataset):
    out, summary = dataset
    meta = json.loads((out / "synth.json").read_text())
    assert meta["seed"] == SEED and meta["complete"] and meta["version"] == synth.SYNTH_VERSION
    assert [c["name"] for c in meta["classes"]] == list(CLASS_NAMES)
    assert [c["index"] for c in meta["classes"]] == list(range(1, len(CLASSES) + 1))
    assert all(c["description"] for c in meta["classes"])
    assert [tuple(p) for p in meta["time_reversed_pairs"]] == list(TIME_REVERSED_PAIRS)
    assert meta["counts"]["clips"] == summary.clips and meta["counts"]["untrimmed"] == 1


def test_same_bytes_whatever_the_workers_or_size(dataset, tmp_path):
    out, _ = dataset
    # One worker and one clip per class: each clip's bytes depend only on (seed, class, group, clip).
    synthesize(tmp_path, num_videos=len(CLASSES), seed=SEED, workers=1, num_untrimmed=0, progress=False)
    for name in CLASS_NAMES:
        relative = f"{name}/{name}_g01_c01.mp4"
        assert (tmp_path / "clips" / relative).read_bytes() == (out / "clips" / relative).read_bytes(), name


def test_resume_rewrites_only_what_is_missing(dataset):
    out, _ = dataset
    victim = out / "clips" / "Orbit" / "Orbit_g02_c01.mp4"
    original = victim.read_bytes()
    victim.unlink()
    summary = synthesize(
        out, num_videos=PER_CLASS * len(CLASSES), seed=SEED, workers=1, num_untrimmed=1, progress=False
    )
    assert (summary.rendered, summary.skipped) == (1, PER_CLASS * len(CLASSES))  # 1 untrimmed kept too
    assert victim.read_bytes() == original
    with pytest.raises(BadArgumentError, match="synth.json"):
        synthesize(
            out,
            num_videos=PER_CLASS * len(CLASSES),
            seed=SEED + 1,
            workers=1,
            num_untrimmed=1,
            progress=False,
        )


@pytest.mark.parametrize(
    "kwargs",
    [{"seed": -1}, {"num_videos": 0}, {"num_untrimmed": -2}, {"workers": 0}],
)
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(VidlearnError):
        synthesize(tmp_path / "x", **{"num_videos": 18, "num_untrimmed": 0, "progress": False, **kwargs})
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("clips", [2, 7, 20, 30, 56, 100])
def test_group_split_is_ucf_like(clips):
    split = split_groups(clips)
    assert sum(split.sizes) == clips and 1 <= split.test_groups < len(split.sizes)
    if clips >= 7:
        assert 0.24 <= split.test_clips / clips <= 0.31
        assert max(split.sizes) - min(split.sizes) <= 1 and max(split.sizes) <= 7


# Clips whose files differed from one write to the next before the writer's fix (several frame sizes
# and both aspect ratios), each written twice here and once by another process.
REPEATED_CLIPS = ((1, 1, 1), (4, 1, 1), (9, 1, 1), (12, 1, 1), (16, 1, 1))
WRITE_CLIPS = """
import sys, cv2
from vidlearn.data.synth import plan_clip, render
from vidlearn.io import write_video
cv2.setNumThreads(4)
for label, group, clip in {clips}:
    scene = plan_clip({seed}, label, group, clip).scene
    write_video(f"{{sys.argv[1]}}/{{label}}_{{group}}_{{clip}}.mp4", render(scene), scene.camera.fps)
"""


def write_clips(folder: Path) -> dict[str, bytes]:
    folder.mkdir()
    for label, group, clip in REPEATED_CLIPS:
        scene = plan_clip(SEED, label, group, clip).scene
        write_video(folder / f"{label}_{group}_{clip}.mp4", synth.render(scene), scene.camera.fps)
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_same_clip_same_bytes_in_one_process_and_another(tmp_path):
    threads = cv2.getNumThreads()
    cv2.setNumThreads(4)
    try:
        first, second = write_clips(tmp_path / "first"), write_clips(tmp_path / "second")
    finally:
        cv2.setNumThreads(threads)
    script = WRITE_CLIPS.format(clips=REPEATED_CLIPS, seed=SEED)
    (tmp_path / "other").mkdir()
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "other")], check=True)
    other = {p.name: p.read_bytes() for p in sorted((tmp_path / "other").iterdir())}
    assert len(first) == len(REPEATED_CLIPS)
    for name, data in first.items():
        assert second[name] == data and other[name] == data, name


def test_rendering_ignores_opencv_threads():
    # A frame large enough that OpenCV splits its resizes and warps between threads, a mottled
    # background (cv2.resize) and a large textured, turning, growing actor (cv2.warpAffine, pyrDown).
    u = np.linspace(0, 1, 4)
    pose = make_pose(u, 0.5, 0.5, scale=np.linspace(0.6, 1.4, 4), angle=np.linspace(0, 90, 4))
    scene = Scene(
        camera=Camera(960, 720, 20, 0.0, 3.0),
        frames=4,
        background=Background("mottled", ((60, 70, 80), (120, 110, 100)), 40.0, 0.0, 7),
        drift=np.zeros((4, 2), np.int64),
        jitter=np.zeros((4, 2), np.int64),
        tracks=(Track(Appearance("star", "red", "striped", 0.5, 30.0, 0.4), pose),),
        noise_seed=5,
    )
    threads = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        single = render_array(scene)
        cv2.setNumThreads(8)
        several = render_array(scene)
    finally:
        cv2.setNumThreads(threads)
    np.testing.assert_array_equal(single, several)
