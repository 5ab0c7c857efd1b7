"""SynthActions ground truth: masks, boxes, flow and segments, against the rendered pixels.

Masks are checked against renders with and without the actor (and against a white disc's measured
coverage), boxes against the masks, flow against the frames it should rebuild, segments against
segments.csv; the videos are H.264, so exact checks use the rendered arrays, never the decoded video.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from vidlearn.data.synth import (
    CLASS_NAMES,
    COLOURS,
    MASK_COVERAGE,
    Appearance,
    Background,
    Camera,
    Scene,
    Track,
    ground_truth_path,
    make_pose,
    plan_clip,
    read_ground_truth,
    render_array,
    render_with_instances,
    synthesize,
    true_flow,
)
from vidlearn.errors import BadArgumentError, VidlearnError
from vidlearn.io import probe
from vidlearn.motion.checks import warp_back

SEED = 3
KINDS = "masks,boxes,flow,segments"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth-gt")
    synthesize(out, num_videos=18, seed=SEED, workers=2, num_untrimmed=1, progress=False, ground_truth=KINDS)
    return out


def clip_video(out, label: int):
    return out / "clips" / plan_clip(SEED, label, 1, 1).relative_path


def instance_maps(scene: Scene) -> np.ndarray:
    return np.stack([instances for _, instances in render_with_instances(scene)])


@pytest.mark.parametrize(
    "label", [CLASS_NAMES.index(n) for n in ("Grow", "RotateClockwise", "FadeIn", "Orbit", "Ring", "Shake")]
)
def test_mask_is_where_the_actor_covers_most_of_a_pixel(label):
    # The actor alone against the same scene without it, both without sensor noise, so that every
    # difference is the actor's. Outside its mask the actor covers less than half of each pixel
    # (MASK_COVERAGE), so no pixel may change by half of what full coverage could do there.
    scene = plan_clip(SEED, label, 1, 1).scene
    quiet = dataclasses.replace(scene, camera=dataclasses.replace(scene.camera, noise_sigma=0.0))
    alone, empty = dataclasses.replace(quiet, tracks=quiet.tracks[:1]), dataclasses.replace(quiet, tracks=())
    with_actor, without = render_array(alone).astype(np.float64), render_array(empty).astype(np.float64)
    masks = instance_maps(alone)
    assert set(np.unique(masks)) <= {0, 1}
    actor = alone.tracks[0]
    colour = np.asarray(COLOURS[actor.appearance.colour], np.float64)
    for k in range(scene.frames):
        alpha = actor.pose.alpha[k]
        change = np.abs(with_actor[k] - without[k])
        # The darkest and the brightest shade of the actor's texture bound what full coverage does.
        full = alpha * np.maximum(np.abs(colour - without[k]), np.abs(0.45 * colour - without[k]))
        outside = masks[k] == 0
        assert np.all(change[outside] <= MASK_COVERAGE / 255 * full[outside] + 1.5), k
        inside = masks[k] == 1
        if alpha >= 0.5 and inside.any():
            # ...and an actor drawn at least half opaque changes (almost) every pixel of its mask; a
            # pixel may keep its value where the actor's shade happens to match the background.
            assert np.any(change > 0, axis=-1)[inside].mean() > 0.97, k


def test_mask_is_half_coverage_of_a_white_disc():
    grey = (40, 40, 40)
    pose = make_pose(np.zeros(3), [0.5, 0.43, 0.61], [0.5, 0.52, 0.47], scale=[1.0, 0.7, 1.3])
    scene = Scene(
        camera=Camera(160, 120, 20, 0.0, 0.0),
        frames=3,
        background=Background("striped", (grey, grey), 10.0, 0.0, 0),
        drift=np.zeros((3, 2), np.int64),
        jitter=np.zeros((3, 2), np.int64),
        tracks=(Track(Appearance("circle", "white", "solid", 0.3, 0.0, 0.5), pose),),
        noise_seed=0,
    )
    frames, masks = render_array(scene), instance_maps(scene)
    coverage = (frames.astype(np.float64).mean(axis=-1) - grey[0]) / (245 - grey[0])
    threshold = MASK_COVERAGE / 255
    # The measured coverage is the drawn one up to the frame's 8-bit rounding, so pixels within a
    # rounding step of the threshold may fall either way; every other pixel is decided.
    clear = np.abs(coverage - threshold) >= 0.01
    assert clear.mean() > 0.99 and (masks == 1).sum() > 500
    np.testing.assert_array_equal((masks == 1)[clear], (coverage >= threshold)[clear])


def test_written_masks_and_boxes_match_the_render(dataset):
    for label in (0, 2, 10, 17):
        video, plan = clip_video(dataset, label), plan_clip(SEED, label, 1, 1)
        truth = read_ground_truth(video, "masks,boxes")
        np.testing.assert_array_equal(truth.masks, instance_maps(plan.scene))
        assert truth.instances[1] == CLASS_NAMES[label]
        assert set(truth.instances.values()) - {CLASS_NAMES[label]} <= {"distractor"}
        for instance_id, boxes in truth.boxes.items():
            for k, box in enumerate(boxes):
                rows, cols = np.nonzero(truth.masks[k] == instance_id)
                if len(rows) == 0:
                    assert np.all(np.isnan(box))
                else:
                    assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


def test_ground_truth_lines_up_with_the_decoded_video(dataset):
    videos = [clip_video(dataset, label) for label in range(len(CLASS_NAMES))]
    videos.append(dataset / "untrimmed" / "untrimmed_0001.mp4")
    for video in videos:
        info, truth = probe(video), read_ground_truth(video, "masks,boxes,flow")
        assert truth.masks.shape == (info.frames, info.height, info.width) and truth.masks.dtype == np.uint8
        assert all(len(boxes) == info.frames for boxes in truth.boxes.values())
        assert (
            truth.flow.shape == (info.frames - 1, info.height, info.width, 2)
            and truth.flow.dtype == np.float32
        )
        assert truth.flow_valid.shape == truth.flow.shape[:3] and truth.flow_valid.dtype == bool


def test_written_flow_is_the_true_flow_and_rebuilds_the_actor(dataset):
    label = CLASS_NAMES.index("MoveRight")
    plan = plan_clip(SEED, label, 1, 1)
    truth = read_ground_truth(clip_video(dataset, label), "flow,masks")
    frames = render_array(plan.scene).astype(np.float32)
    with_flow, zero_flow = [], []
    for k in range(plan.scene.frames - 1):
        flow, valid = true_flow(plan.scene, k)
        np.testing.assert_array_equal(truth.flow[k], flow)
        np.testing.assert_array_equal(truth.flow_valid[k], valid)
        # I_{t+1}(x + dx, y + dy) = I_t(x, y) on the actor's pixels where the flow is defined.
        actor = valid & (truth.masks[k] == 1)
        rebuilt, inside = warp_back(frames[k + 1], flow)
        actor &= inside
        with_flow.append(np.abs(rebuilt - frames[k])[actor].mean())
        zero_flow.append(np.abs(frames[k + 1] - frames[k])[actor].mean())
    # Sensor noise alone gives a few levels of error; without the flow the moving actor gives far more.
    assert np.mean(with_flow) < 8 and np.mean(with_flow) < 0.5 * np.mean(zero_flow)


def test_segments_agree_with_segments_csv(dataset):
    video = dataset / "untrimmed" / "untrimmed_0001.mp4"
    with open(dataset / "untrimmed" / "segments.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["video"] == video.name]
    truth = read_ground_truth(video, "segments,boxes")
    assert [(CLASS_NAMES[s.label], s.start, s.end) for s in truth.segments] == [
        (r["label"], pytest.approx(float(r["start"]), abs=1e-6), pytest.approx(float(r["end"]), abs=1e-6))
        for r in rows
    ]
    document = json.loads(ground_truth_path(video, "segments").read_text())
    masks = read_ground_truth(video, "masks").masks
    for row, segment in zip(document["segments"], truth.segments):
        assert truth.instances[row["instance"]] == CLASS_NAMES[segment.label]
        # The segment's actor is on screen in its frames only.
        seen = np.flatnonzero(np.any(masks == row["instance"], axis=(1, 2)))
        assert segment.start_frame <= seen.min() and seen.max() < segment.end_frame
    # Trimmed clips have no segments file.
    assert not ground_truth_path(clip_video(dataset, 0), "segments").exists()


def test_missing_ground_truth_names_the_flag(tmp_path, dataset):
    synthesize(tmp_path, num_videos=18, seed=SEED, workers=1, num_untrimmed=0, progress=False)
    video = clip_video(tmp_path, 0)
    with pytest.raises(VidlearnError, match="--ground-truth masks"):
        read_ground_truth(video, "masks")
    with pytest.raises(VidlearnError, match="--ground-truth"):
        read_ground_truth(video)
    with pytest.raises(VidlearnError, match="--ground-truth segments"):
        read_ground_truth(clip_video(dataset, 0), "segments")
    with pytest.raises(BadArgumentError, match="depth"):
        read_ground_truth(video, "depth")


def test_resume_writes_only_the_missing_ground_truth(dataset):
    video = clip_video(dataset, CLASS_NAMES.index("Shake"))
    before = {kind: ground_truth_path(video, kind).read_bytes() for kind in ("masks", "boxes", "flow")}
    video_bytes = video.read_bytes()
    video_time = video.stat().st_mtime_ns
    ground_truth_path(video, "masks").unlink()
    ground_truth_path(video, "flow").unlink()
    summary = synthesize(
        dataset, num_videos=18, seed=SEED, workers=1, num_untrimmed=1, progress=False, ground_truth=KINDS
    )
    assert (summary.rendered, summary.skipped) == (1, 18)
    assert video.read_bytes() == video_bytes and video.stat().st_mtime_ns == video_time  # not rewritten
    for kind, data in before.items():
        assert ground_truth_path(video, kind).read_bytes() == data, kind
    assert not list(dataset.rglob(".*tmp*")), "temporary file left behind"


def test_unknown_kind_is_a_one_line_error(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vidlearn.cli.main",
            "synth",
            "--out",
            str(tmp_path / "s"),
            "--videos",
            "18",
            "--untrimmed",
            "0",
            "--ground-truth",
            "masks,depth",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "depth" in done.stderr and "masks" in done.stderr
    assert not (tmp_path / "s").exists()
