"""``vidlearn synth`` and ``vidlearn data``: make the built-in dataset, inspect any dataset."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

# Registering parsers must stay cheap (no torch, no FFmpeg): library imports live in the run functions.
FORMATS = ("folder", "ucf101", "hmdb51", "kinetics", "ssv2", "csv", "synthactions")


def register(subparsers) -> None:
    s = subparsers.add_parser(
        "synth", help="render the built-in SynthActions dataset (real mp4 files + UCF101-style splits)"
    )
    s.add_argument("--out", type=Path, required=True, metavar="DIR")
    s.add_argument(
        "--videos",
        type=int,
        default=None,
        help="trimmed clips in all (default: the library's demo size; rounded up to a multiple of the class count)",
    )
    s.add_argument(
        "--untrimmed",
        type=int,
        default=None,
        help="long videos with segment annotations (default: the library's)",
    )
    s.add_argument("--seed", type=int, default=0, help="the same seed gives the same videos, byte for byte")
    s.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    s.add_argument(
        "--ground-truth",
        default="",
        metavar="KINDS",
        help="also write, beside each video, any of masks,boxes,flow,segments (segments: untrimmed videos only)",
    )
    s.set_defaults(func=run_synth)

    d = subparsers.add_parser("data", help="load a dataset in any supported format and report what is in it")
    d.add_argument("path", metavar="PATH", help="dataset folder or annotation file")
    d.add_argument("--format", default="auto", choices=("auto", *FORMATS))
    d.add_argument("--split", type=int, default=1)
    d.add_argument("--subset", default="train", help="train, val or test (where the format has them)")
    d.add_argument("--min-frames", type=int, default=2, help="videos with fewer decodable frames are skipped")
    d.add_argument("--json", action="store_true", help="print the index as JSON")
    d.set_defaults(func=run_data)


def run_synth(args: argparse.Namespace) -> int:
    from vidlearn.data.synth import DEFAULT_NUM_UNTRIMMED, DEFAULT_NUM_VIDEOS, synthesize

    videos = DEFAULT_NUM_VIDEOS if args.videos is None else args.videos
    untrimmed = DEFAULT_NUM_UNTRIMMED if args.untrimmed is None else args.untrimmed
    s = synthesize(
        args.out,
        num_videos=videos,
        seed=args.seed,
        workers=args.workers,
        num_untrimmed=untrimmed,
        ground_truth=args.ground_truth,
    )
    print(
        f"SynthActions in {s.out_dir}: {s.clips} clips in {len(s.classes)} classes ({s.train_clips} train, {s.test_clips} test), "
        f"{s.untrimmed} untrimmed videos with {s.segments} segments; rendered {s.rendered}, kept {s.skipped} from an earlier run; {s.seconds:.0f} s"
    )
    return 0


def run_data(args: argparse.Namespace) -> int:
    from vidlearn.data.formats import load_dataset
    from vidlearn.viz.console import console, table

    index = load_dataset(
        args.path, format=args.format, split=args.split, subset=args.subset, min_frames=args.min_frames
    )
    if args.json:
        print(
            json.dumps(
                {
                    "format": index.source.format,
                    "root": index.source.root,
                    "class_names": index.class_names,
                    "entries": [dataclasses.asdict(entry) for entry in index.entries],
                    "skipped": [{"path": p, "reason": r} for p, r in index.skipped],
                },
                indent=2,
            )
        )
        return 0
    out = console()
    out.print(
        f"[bold]{index.source.format}[/bold] dataset at {index.source.root}: {len(index)} videos, {len(index.class_names)} classes, {len(index.skipped)} skipped"
    )
    counts = index.class_counts()
    out.print(
        table(
            ("label", "class", "videos"),
            [(i, name, counts.get(name, 0)) for i, name in enumerate(index.class_names)],
        )
    )
    if index.skipped:
        out.print(index.skipped_table())
    return 0
