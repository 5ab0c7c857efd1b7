"""``vidlearn prepare``: a dataset decoded once into frames that training and evaluation read fast."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="decode a dataset once into uint8 frames at a reduced size, which train and eval then read fast (resumable, shardable)",
    )
    p.add_argument("data", metavar="DATASET", help="dataset folder or annotation file, or 'synth'")
    p.add_argument(
        "--short-side",
        type=int,
        default=128,
        help="store frames at this short side; training uses them when its short_side matches (default 128, the training default)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="store folder (default: under $VIDLEARN_CACHE/prepared, where train and eval look by themselves)",
    )
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    p.add_argument(
        "--shard", default="0/1", metavar="I/N", help="do only shard I of N (0-based), e.g. one per machine"
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="check the checksums of an existing store instead; exit code 1 and the bad files named if any",
    )
    p.add_argument("--split", type=int, default=1)
    p.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    from vidlearn.cli.motion_commands import parse_shard
    from vidlearn.data.prepared import (
        PreparedSettings,
        PreparedStore,
        default_prepared_folder,
        prepare_videos,
    )
    from vidlearn.engine.sources import load_splits

    train, test = load_splits(args.data, args.split)
    settings = PreparedSettings(short_side=args.short_side)
    root = train.source.root
    folder = args.out or default_prepared_folder(root, settings)
    if args.verify:
        return verify_store(PreparedStore(folder, root))
    report = prepare_videos(
        [entry.path for entry in (*train, *test)],
        folder,
        root,
        settings,
        args.workers,
        parse_shard(args.shard),
    )
    print(report.summary())
    if args.out:
        print(f"train with: vidlearn train prepared={report.folder} short_side={args.short_side} ...")
    else:
        print(
            f"vidlearn train and eval read it by themselves when short_side={args.short_side} (prepared=off to decode the originals)"
        )
    return 1 if report.failed and not report.done and not report.already_done else 0


def verify_store(store) -> int:
    problems = store.verify()
    for _, problem in problems:
        print(f"bad: {problem}")
    if not problems:
        print(f"prepared store {store.folder}: every array matches its checksum")
        return 0
    print(
        f"prepared store {store.folder}: {len(problems)} bad video(s); delete the files named above and run `vidlearn prepare` again to redo them"
    )
    return 1
