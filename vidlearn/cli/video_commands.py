"""``vidlearn probe`` and ``vidlearn frames``: look at videos the way the library sees them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vidlearn.errors import BadArgumentError, VidlearnError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "probe", help="facts about video files (frames, fps, size, codec, rotation, audio)"
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    p.set_defaults(func=run_probe)

    f = subparsers.add_parser("frames", help="write the decoded frames at given indices as PNG files")
    f.add_argument("video", metavar="VIDEO")
    f.add_argument("--at", required=True, help="comma-separated frame indices, e.g. 0,17,250")
    f.add_argument("--out", required=True, type=Path, metavar="DIR")
    f.add_argument("--size", type=int, default=None, help="resize so the short side has this many pixels")
    f.set_defaults(func=run_frames)


PROBE_COLUMNS = ("file", "format", "codec", "W x H", "SAR", "fps", "frames", "seconds", "rot", "audio")


def run_probe(args: argparse.Namespace) -> int:
    from vidlearn.io import probe
    from vidlearn.progress import progress_bar
    from vidlearn.viz.console import console, table

    rows, failures = [], 0
    with progress_bar(len(args.files), "probing", enabled=len(args.files) > 20) as advance:
        for name in args.files:
            try:
                info = probe(name)
            except VidlearnError as exc:
                print(f"vidlearn probe: error: {exc}", file=sys.stderr)
                failures += 1
                continue
            finally:
                advance()
            if args.json:
                print(json.dumps(info.to_dict()))
            else:
                rows.append(info)
    if rows:
        console().print(
            table(
                PROBE_COLUMNS,
                [
                    (
                        Path(i.path).name,
                        i.container,
                        i.codec,
                        f"{i.width}x{i.height}",
                        i.sar,
                        f"{i.fps:.3f}",
                        i.frames,
                        f"{i.duration:.2f}",
                        i.rotation,
                        "yes" if i.has_audio else "no",
                    )
                    for i in rows
                ],
                title="W x H after rotation; frames counted by decoding where headers cannot be trusted; rot = degrees counter-clockwise",
            )
        )
    return 2 if failures else 0


def parse_indices(text: str) -> list[int]:
    try:
        indices = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BadArgumentError(
            f"--at takes comma-separated frame indices like 0,17,250, got {text!r}"
        ) from None
    if not indices:
        raise BadArgumentError("--at names no frame")
    return indices


def run_frames(args: argparse.Namespace) -> int:
    import cv2

    from vidlearn.io import open_video

    indices = parse_indices(args.at)
    with open_video(args.video, size=args.size) as video:
        frames = video.get(indices)
    args.out.mkdir(parents=True, exist_ok=True)
    for k, frame in zip(indices, frames):
        target = args.out / f"frame_{k:06d}.png"
        if not cv2.imwrite(str(target), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise BadArgumentError(f"{target}: could not write the PNG file")
        print(target)
    return 0
