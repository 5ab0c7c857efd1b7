"""Row 2 of `make bench`: training clips per second from a prepared store against decord on the originals.

`vidlearn prepare` converts each video once into uint8 frames at short side 128 (see
docs/prepared-data.md). The work measured is the same training read as in suite_clips.py (a random
16-frame clip at stride 4, short side 128, random 112 crop, uint8): vidlearn reads it from the store,
decord decodes it from the original file. The rows also state the disk cost of the store.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from harness import Context, Row, compare, timed_rate
from suite_clips import SPEC, TINY_SPEC, ClipJob, available_peers

from vidlearn.data.prepared import PreparedSettings, PreparedStore, prepare_videos

GOAL_PREPARED = ">= 5.0"


def prepared_reader(store: PreparedStore):
    def read(path: str, indices: np.ndarray, shape: tuple[int, int], frames: int) -> np.ndarray:
        with store.open(path) as video:
            return video.get(indices)

    return read


def _store_for(
    videos: list[Path], root: Path, folder: Path, short_side: int, ctx: Context
) -> tuple[PreparedStore, float]:
    start = time.perf_counter()
    report = prepare_videos(
        [str(v) for v in videos], folder, root, PreparedSettings(short_side=short_side), progress=False
    )
    seconds = time.perf_counter() - start
    if report.failed:
        ctx.log(f"  prepare failed for {report.failed}")
    return PreparedStore(folder, root), seconds


def _mib(size: int) -> float:
    return size / 2**20


def run(ctx: Context) -> list[Row]:
    spec = TINY_SPEC if ctx.tiny else SPEC
    clips = 2 if ctx.tiny else 8
    peers = available_peers()
    # decord (the peer) lives in the bench environment only; PyAV stands in elsewhere, and
    # for files decord cannot read.
    first_choice = "decord" if "decord" in peers else "pyav"
    rows: list[Row] = []
    sets = []
    if ctx.videos:
        sets.append(("shared", ctx.videos[0].parent, list(ctx.videos)))
    if ctx.synth_root is not None:
        sets.append(("SynthActions", ctx.synth_root, sorted((ctx.synth_root / "clips").rglob("*.mp4"))))
    for label, root, videos in sets:
        store, seconds = _store_for(videos, root, ctx.work_dir / f"prepared-{label}", spec.short_side, ctx)
        ctx.log(f"prepared {label}: {len(videos)} videos in {seconds:.1f} s")
        read = prepared_reader(store)
        per_file = [[v] for v in videos] if label == "shared" else [videos]
        for group in per_file:
            prepared_bytes, original_bytes = store.disk_cost([str(v) for v in group])
            name = group[0].name if len(group) == 1 else f"{label} (all {len(group)} videos)"
            job = ClipJob(group, spec, clips if len(group) == 1 else max(clips, min(len(group), 32)))
            note = f"disk: {_mib(prepared_bytes):.1f} MiB prepared vs {_mib(original_bytes):.1f} MiB original ({prepared_bytes / original_bytes:.1f}x)"
            peer_name = first_choice
            try:
                job.run(peers[peer_name])
            except Exception as exc:  # noqa: BLE001
                note += f"; {peer_name} fails on it ({str(exc).strip().splitlines()[-1][:80]}), PyAV instead"
                peer_name = "pyav"
            peer = peers[peer_name]
            rows.append(
                compare(
                    name,
                    timed_rate(lambda job=job, read=read: job.run(read)),
                    timed_rate(lambda job=job, peer=peer: job.run(peer)),
                    unit="clips/s",
                    goal=GOAL_PREPARED,
                    peer_name=f"{peer_name} on the original",
                    repeats=ctx.repeats,
                    group="prepared",
                    note=note,
                )
            )
    return rows
