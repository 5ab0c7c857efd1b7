"""Do the clip readers of `make bench` return the same frames? vidlearn's reader against the plain-PyAV
peer of ``suite_clips.py`` on random training clips of every file in ../shared/videos/: the mean
absolute pixel difference per clip (0 = identical uint8 frames).

    bench/.venv/bin/python bench/compare_frames.py --clips 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite_clips import SPEC, read_pyav, read_vidlearn  # noqa: E402

from vidlearn.data.samplers import random_clip  # noqa: E402
from vidlearn.data.transforms import short_side_shape  # noqa: E402
from vidlearn.io import probe  # noqa: E402

VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3, help="random clips per file")
    parser.add_argument("--videos", type=Path, default=VIDEOS)
    args = parser.parse_args()
    if not args.videos.is_dir():
        raise SystemExit(f"no sample videos at {args.videos}")
    rng = np.random.default_rng(0)
    print("| file | mean abs difference per clip (of 255) |\n|---|---|")
    for path in sorted(p for p in args.videos.iterdir() if p.suffix.lower() not in (".md", ".txt")):
        info = probe(path)
        shape = short_side_shape(info.height, info.width, SPEC.short_side)
        diffs = []
        for _ in range(args.clips):
            clip = random_clip(info.frames, SPEC, rng, video_fps=info.fps)
            ours = read_vidlearn(str(path), clip.indices, shape, info.frames).astype(np.float32)
            peer = read_pyav(str(path), clip.indices, shape, info.frames).astype(np.float32)
            diffs.append(f"{np.abs(ours - peer).mean():.3f}")
        print(f"| {path.name} | {', '.join(diffs)} |", flush=True)


if __name__ == "__main__":
    main()
