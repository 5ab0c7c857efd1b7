"""``vidlearn flow`` and ``vidlearn flow-extract``: optical flow of one video, and of a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

METHOD_HELP = (
    "dis (default: fastest, as accurate as farneback), farneback, or tvl1 (most accurate, 110-140x slower)"
)


def register(subparsers) -> None:
    f = subparsers.add_parser(
        "flow", help="optical flow of a video: colour-wheel video, PNG frames, raw .npy, warping check"
    )
    f.add_argument("video", metavar="VIDEO")
    f.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        metavar="OUT.mp4",
        help="colour-wheel video with a legend wheel",
    )
    f.add_argument("--method", default=None, help=METHOD_HELP)
    f.add_argument(
        "--side-by-side", action="store_true", help="original frame on the left, flow on the right"
    )
    f.add_argument(
        "--raw",
        type=Path,
        default=None,
        metavar="FLOW.npy",
        help="float32 (T-1) x H x W x 2, dx then dy, pixels per frame",
    )
    f.add_argument(
        "--png", type=Path, default=None, metavar="DIR", help="one PNG per flow field, plus legend.png"
    )
    f.add_argument(
        "--size", type=int, default=None, help="compute at this short side (faster for big videos)"
    )
    f.add_argument(
        "--max-magnitude",
        type=float,
        default=None,
        help="pixels drawn fully saturated (default: 99th percentile)",
    )
    f.add_argument("--max-frames", type=int, default=None, help="only the first N frames")
    f.set_defaults(func=run_flow)

    e = subparsers.add_parser(
        "flow-extract",
        help="compute and store the optical flow of every video of a dataset (resumable, shardable)",
    )
    e.add_argument("data", metavar="DATASET", help="dataset folder or annotation file, or 'synth'")
    e.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="store folder (default: under $VIDLEARN_CACHE/flow)",
    )
    e.add_argument("--method", default=None, help=METHOD_HELP)
    e.add_argument(
        "--short-side",
        type=int,
        default=128,
        help="decode frames at this short side (default 128, the training default)",
    )
    e.add_argument(
        "--step",
        type=int,
        default=2,
        help="flow from frame k to k+STEP; match the training stride (default 2, as training's)",
    )
    e.add_argument("--bound", type=float, default=20.0, help="quantisation bound in pixels (default 20)")
    e.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    e.add_argument(
        "--shard", default="0/1", metavar="I/N", help="do only shard I of N (0-based), e.g. one per machine"
    )
    e.add_argument("--split", type=int, default=1)
    e.set_defaults(func=run_flow_extract)


def run_flow(args: argparse.Namespace) -> int:
    from vidlearn.motion.flow import DEFAULT_METHOD
    from vidlearn.motion.video import flow_video

    method = args.method or DEFAULT_METHOD
    result = flow_video(
        args.video,
        args.out,
        method,
        args.size,
        args.side_by_side,
        args.raw,
        args.png,
        args.max_magnitude,
        args.max_frames,
    )
    written = ", ".join(str(p) for p in (result.video, result.raw, result.png_dir) if p is not None)
    print(
        f"{args.video}: {result.pairs} flow fields at {result.shape[1]}x{result.shape[0]} with {method} "
        f"({result.pairs_per_second:.1f} pairs/s); colours saturate at {result.max_magnitude:.2f} px\n"
        f"warping check: frame t rebuilt from t+1 has mean error {result.warp.with_flow:.2f} levels with the flow, "
        f"{result.warp.zero_flow:.2f} without ({result.warp.improvement:.1f}x better)\nwrote {written}"
    )
    return 0


def parse_shard(text: str) -> tuple[int, int]:
    from vidlearn.errors import BadArgumentError

    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise BadArgumentError(f"--shard must look like I/N, e.g. 0/4; got {text!r}") from None
    return index, count


def run_flow_extract(args: argparse.Namespace) -> int:
    from vidlearn.engine.sources import load_splits
    from vidlearn.motion.flow import DEFAULT_METHOD
    from vidlearn.motion.store import FlowSettings, default_store_folder, extract_flow

    train, test = load_splits(args.data, args.split)
    settings = FlowSettings(
        method=args.method or DEFAULT_METHOD, short_side=args.short_side, step=args.step, bound=args.bound
    )
    root = train.source.root
    folder = args.out or default_store_folder(root, settings)
    videos = [entry.path for entry in (*train, *test)]
    report = extract_flow(videos, folder, root, settings, args.workers, parse_shard(args.shard))
    print(report.summary())
    print(f"train with: vidlearn train input=flow flow_store={report.store} stride={args.step} ...")
    return 1 if report.failed and not report.extracted and not report.already_done else 0
