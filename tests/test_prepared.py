"""Prepared data (``vidlearn prepare``): frames decoded once into memory-mapped uint8 arrays.

The store must be invisible to training: the same pixels, frame times, clips and test views as
decoding. Around that: resume, changed sources, checksums, truncation, bad videos, settings
mismatches, the automatic pick-up by ``make_dataset``, and the command line.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_VIDEOS, moving_square_frames

from vidlearn.data.dataset import ClipDataset
from vidlearn.data.formats import load_dataset
from vidlearn.data.prepared import PreparedSettings, PreparedStore, default_prepared_folder, prepare_videos
from vidlearn.data.samplers import ClipSpec
from vidlearn.engine.config import load_config
from vidlearn.engine.inputs import make_dataset
from vidlearn.engine.sources import load_splits
from vidlearn.errors import BadArgumentError, VideoReadError
from vidlearn.io import open_video, write_video

VIDLEARN = [sys.executable, "-m", "vidlearn.cli.main"]


def _folder_dataset(root: Path, count: int = 4) -> list[str]:
    """``count`` small distinct MP4s in two class folders (a "folder" dataset); their paths."""
    paths = []
    for k in range(count):
        path = root / ("Left" if k % 2 else "Right") / f"v{k}.mp4"
        write_video(path, np.roll(moving_square_frames(10 + k), shift=3 * k, axis=2), fps=10)
        paths.append(str(path))
    return paths


def _assert_same_video(store: PreparedStore, path: str, short_side: int) -> None:
    """Every frame, the frame times and the facts of the prepared video equal the decoder's."""
    with store.open(path) as prepared, open_video(path, size=short_side, threads=1) as decoded:
        everything = np.arange(len(decoded))
        assert np.array_equal(prepared.get(everything), decoded.get(everything))
        assert np.array_equal(prepared.frame_times(), decoded.frame_times())
        assert (
            prepared.info == decoded.info
            and prepared.frame_shape == decoded.frame_shape
            and len(prepared) == len(decoded)
        )
        shuffled = [len(decoded) - 1, 0, 2, 2]  # any order, repeats
        assert np.array_equal(prepared.get(shuffled), decoded.get(shuffled))
        with pytest.raises(BadArgumentError, match="out of range"):
            prepared.get([len(decoded)])


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*.frames.*")}


def test_prepared_frames_equal_decoded_frames_of_real_videos(need_shared, tmp_path):
    # An MP4 (pts mode), an AVI (sequential mode) and a rotated MOV.
    videos = [
        str(SHARED_VIDEOS / name)
        for name in ("mmaction2_test.mp4", "v_SoccerJuggling_g23_c01.avi", "decord_video_90.mov")
    ]
    report = prepare_videos(
        videos, tmp_path / "store", SHARED_VIDEOS, PreparedSettings(short_side=64), workers=1, progress=False
    )
    assert (report.done, report.failed) == (3, [])
    store = PreparedStore(tmp_path / "store", SHARED_VIDEOS)
    for video in videos:
        _assert_same_video(store, video, 64)
    # Disk cost: F x H x W x 3 bytes (plus a .npy header) per video, against the original files.
    arrays = sum(store.array_path(v).stat().st_size for v in videos)
    assert report.prepared_bytes == arrays and report.original_bytes == sum(
        os.path.getsize(v) for v in videos
    )
    pixels = 0
    for video in videos:
        with store.open(video) as prepared:
            pixels += len(prepared) * int(np.prod(prepared.frame_shape))
    assert 0 < arrays - pixels <= 3 * 128  # a .npy header of 128 bytes at most per array
    assert "MiB of original files" in report.summary()


@pytest.fixture(scope="module")
def synth_subset(synth_root):
    """An index of six SynthActions videos of two classes, one entry a segment (start and end in seconds)."""
    train, test = load_splits(str(synth_root), classes=["MoveLeft", "MoveRight"], progress=False)
    entries = [*train.entries[:3], *test.entries[:3]]
    entries[1] = dataclasses.replace(entries[1], start=1.0, end=3.5)  # a segment: frames by time
    return dataclasses.replace(train, entries=entries)


def test_clip_dataset_gives_the_same_clips_and_views_from_a_store(synth_subset, tmp_path, monkeypatch):
    index = synth_subset
    report = prepare_videos(
        [e.path for e in index],
        tmp_path / "store",
        index.source.root,
        PreparedSettings(40),
        workers=2,
        progress=False,
    )
    assert report.done == len({e.path for e in index}) and not report.failed
    store = PreparedStore(tmp_path / "store", index.source.root)
    _assert_same_video(store, index.entries[0].path, 40)

    specs = {
        "train": (True, ClipSpec(num_frames=4, stride=3, size=32, short_side=40)),
        "target_fps": (True, ClipSpec(num_frames=5, stride=None, target_fps=7.0, size=32, short_side=40)),
        "test": (False, ClipSpec(num_frames=4, stride=2, num_clips=2, num_crops=3, size=32, short_side=40)),
        "segments": (False, ClipSpec(num_frames=3, size=32, short_side=40, sampling="segments")),
    }
    expected = {}
    for name, (train, spec) in specs.items():
        decoding = ClipDataset(index, spec, train=train, seed=7)
        expected[name] = [
            decoding[(epoch, k)] for epoch in range(3 if train else 1) for k in range(len(index))
        ]

    def no_decoding(*args, **kwargs):
        raise AssertionError("a prepared video was decoded")

    monkeypatch.setattr("vidlearn.data.dataset.open_video", no_decoding)
    for name, (train, spec) in specs.items():
        reading = ClipDataset(index, spec, train=train, seed=7, prepared=store)
        got = [reading[(epoch, k)] for epoch in range(3 if train else 1) for k in range(len(index))]
        for want, have in zip(expected[name], got):
            assert torch.equal(want[0], have[0]) and want[1:] == have[1:], name


def test_uint8_items_normalised_by_model_input_equal_float_items(synth_subset, tmp_path):
    """``normalize=False`` (the training loop's loader) gives uint8 clips and views that
    ``model_input`` turns into exactly the floats of the default items, decoded or prepared."""
    index = synth_subset
    prepare_videos(
        [e.path for e in index],
        tmp_path / "store",
        index.source.root,
        PreparedSettings(40),
        workers=1,
        progress=False,
    )
    store = PreparedStore(tmp_path / "store", index.source.root)
    for train, spec in (
        (True, ClipSpec(num_frames=4, stride=3, size=32, short_side=40)),
        (False, ClipSpec(num_frames=4, stride=2, num_clips=2, num_crops=3, size=32, short_side=40)),
    ):
        for prepared in (None, store):
            floats = ClipDataset(index, spec, train=train, seed=5, prepared=prepared)
            compact = ClipDataset(index, spec, train=train, seed=5, prepared=prepared, normalize=False)
            want = torch.stack([floats[(2, k)][0] for k in range(len(index))])
            have = torch.stack([compact[(2, k)][0] for k in range(len(index))])
            assert have.dtype == torch.uint8 and have.shape == want.shape
            assert torch.equal(compact.model_input(have), want) and floats.model_input(want) is want


def test_rgb_and_flow_clips_read_from_a_store_equal_decoded_ones(synth_subset, tmp_path):
    """rgb+flow input (two_stream) reads its frames from the store too; flow is computed from them."""
    from vidlearn.motion.dataset import FlowClipDataset

    index = synth_subset
    prepare_videos(
        [e.path for e in index],
        tmp_path / "store",
        index.source.root,
        PreparedSettings(40),
        workers=1,
        progress=False,
    )
    store = PreparedStore(tmp_path / "store", index.source.root)
    spec = ClipSpec(num_frames=4, stride=2, size=32, short_side=40)
    decoding = FlowClipDataset(index, spec, True, seed=3, input="rgb+flow")
    reading = FlowClipDataset(index, spec, True, seed=3, input="rgb+flow", prepared=store)
    for k in range(len(index)):
        assert torch.equal(decoding[(1, k)][0], reading[(1, k)][0])


def test_resume_redoes_only_what_is_missing_or_changed(tmp_path):
    root = tmp_path / "data"
    paths = _folder_dataset(root)
    folder = tmp_path / "store"
    first = prepare_videos(paths, folder, root, PreparedSettings(32), workers=1, shard=(0, 2), progress=False)
    assert (first.done, first.already_done) == (2, 0)
    before = _mtimes(folder)
    assert len(before) == 4  # an array and a sidecar per video
    rest = prepare_videos(paths, folder, root, PreparedSettings(32), workers=2, progress=False)
    assert (rest.done, rest.already_done, rest.failed) == (2, 2, [])
    assert all(_mtimes(folder)[p] == mtime for p, mtime in before.items())  # the first half was not redone
    assert not list(folder.rglob(".*"))  # no temporary leftovers

    store = PreparedStore(folder, root)
    # A changed source is prepared again, and its new frames are read.
    write_video(paths[3], moving_square_frames(7)[:, ::-1].copy(), fps=10)
    os.utime(paths[3], ns=(1, 10**18))  # a different mtime whatever the clock's resolution
    assert not store.has(paths[3])
    again = prepare_videos(paths, folder, root, PreparedSettings(32), workers=1, progress=False)
    assert (again.done, again.already_done) == (1, 3)
    _assert_same_video(store, paths[3], 32)
    # A run killed between the array and its sidecar left a video that does not count as done.
    store.sidecar_path(paths[0]).unlink()
    assert not store.has(paths[0])
    assert prepare_videos(paths, folder, root, PreparedSettings(32), workers=1, progress=False).done == 1


def test_a_store_reopens_what_changed_since_it_opened_it(tmp_path):
    """Opened videos are kept (memory map and sidecar) between clips, but never served stale: a
    changed source or a rewritten or truncated array is noticed on the next open."""
    root = tmp_path / "data"
    paths = _folder_dataset(root, count=2)
    folder = tmp_path / "store"
    prepare_videos(paths, folder, root, PreparedSettings(32), workers=1, progress=False)
    store = PreparedStore(folder, root)
    first = store.open(paths[0]).get([0])
    assert store.has(paths[0]) and np.array_equal(store.open(paths[0]).get([0]), first)

    write_video(paths[0], moving_square_frames(7)[:, ::-1].copy(), fps=10)
    os.utime(paths[0], ns=(1, 10**18))
    assert not store.has(paths[0])
    with pytest.raises(VideoReadError, match="not prepared"):
        store.open(paths[0])
    prepare_videos(paths, folder, root, PreparedSettings(32), workers=1, progress=False)
    _assert_same_video(store, paths[0], 32)

    store.open(paths[1])
    truncated = store.array_path(paths[1])
    truncated.write_bytes(truncated.read_bytes()[:-1000])
    assert not store.has(paths[1])
    with pytest.raises(VideoReadError, match="truncated"):
        store.open(paths[1])
    assert pickle.loads(pickle.dumps(store))._opened == {}  # a spawned worker gets no memory maps


def test_verify_finds_corruption_and_open_names_a_truncated_array(tmp_path):
    root = tmp_path / "data"
    paths = _folder_dataset(root)
    prepare_videos(paths, tmp_path / "store", root, PreparedSettings(32), workers=1, progress=False)
    store = PreparedStore(tmp_path / "store", root)
    assert store.verify(progress=False) == []

    flipped = store.array_path(paths[0])
    data = bytearray(flipped.read_bytes())
    data[-5] ^= 0xFF  # same size, one pixel changed
    flipped.write_bytes(bytes(data))
    truncated = store.array_path(paths[1])
    truncated.write_bytes(truncated.read_bytes()[:-1000])
    store.array_path(paths[2]).unlink()
    problems = dict(store.verify(progress=False))
    assert set(problems) == set(paths[:3])
    assert (
        "checksum" in problems[paths[0]]
        and "truncated" in problems[paths[1]]
        and "missing" in problems[paths[2]]
    )
    assert str(truncated) in problems[paths[1]]

    # Opening maps the array and checks its shape, not its checksum (too slow for every clip).
    with pytest.raises(VideoReadError, match="truncated") as caught:
        store.open(paths[1])
    assert str(truncated) in str(caught.value)
    assert store.open(paths[0]).get([0]).shape == (1, 32, 42, 3)
    # A truncated or missing array does not count as prepared: the next run redoes it.
    assert not store.has(paths[1]) and not store.has(paths[2]) and store.has(paths[0])
    # Training never reads a truncated array: the video is decoded instead, with the same clip.
    index = load_dataset(root, format="folder", progress=False)
    spec = ClipSpec(num_frames=3, stride=2, size=24, short_side=32)
    position = [e.path for e in index].index(paths[1])
    assert torch.equal(
        ClipDataset(index, spec, True, prepared=store)[position][0],
        ClipDataset(index, spec, True)[position][0],
    )


def test_unreadable_videos_are_reported_not_fatal(tmp_path):
    root = tmp_path / "data"
    good = _folder_dataset(root, count=1)[0]
    corrupt = root / "Right" / "corrupt.mp4"
    corrupt.write_bytes(Path(good).read_bytes()[:300])
    report = prepare_videos(
        [good, str(corrupt)], tmp_path / "store", root, PreparedSettings(32), workers=1, progress=False
    )
    assert report.done == 1 and [path for path, _ in report.failed] == [str(corrupt)]
    assert "1 failed" in report.summary() and "corrupt.mp4" in report.summary()
    assert not PreparedStore(tmp_path / "store", root).has(str(corrupt))


def test_stores_of_other_settings_are_refused(tmp_path):
    root = tmp_path / "data"
    paths = _folder_dataset(root, count=2)
    prepare_videos(paths, tmp_path / "store", root, PreparedSettings(32), workers=1, progress=False)
    with pytest.raises(BadArgumentError, match="another --out"):
        prepare_videos(paths, tmp_path / "store", root, PreparedSettings(48), workers=1, progress=False)
    with pytest.raises(BadArgumentError, match="not a prepared-data store"):
        PreparedStore(tmp_path, root)
    with pytest.raises(BadArgumentError, match="not inside the dataset root"):
        PreparedStore(tmp_path / "store", root).has(str(tmp_path / "elsewhere.mp4"))
    index = load_dataset(root, format="folder", progress=False)
    with pytest.raises(BadArgumentError, match="short side 32"):
        ClipDataset(
            index,
            ClipSpec(num_frames=2, size=32, short_side=48),
            True,
            prepared=PreparedStore(tmp_path / "store", root),
        )


def test_make_dataset_picks_the_default_store_by_itself(tmp_path, capsys):
    root = tmp_path / "data"
    paths = _folder_dataset(root)
    index = load_dataset(root, format="folder", progress=False)
    spec = ClipSpec(num_frames=3, stride=2, size=24, short_side=32)
    config = {"input": "rgb", "prepared": "auto"}
    assert make_dataset(index, spec, True, config).prepared is None  # nothing prepared yet

    default = default_prepared_folder(root, PreparedSettings(32))
    prepare_videos(paths, default, root, PreparedSettings(32), workers=1, progress=False)
    capsys.readouterr()
    assert make_dataset(index, spec, True, config).prepared.folder == default
    assert make_dataset(index, spec, False, config).prepared.folder == default
    assert capsys.readouterr().err.count(f"reading prepared frames from {default}") == 1  # said once
    assert make_dataset(index, spec, True, {**config, "prepared": "off"}).prepared is None
    assert (
        make_dataset(index, dataclasses.replace(spec, short_side=40), True, config).prepared is None
    )  # no store at 40

    # A store named explicitly but made at another short side: the originals are decoded, with a note.
    assert (
        make_dataset(
            index, dataclasses.replace(spec, short_side=40), True, {**config, "prepared": str(default)}
        ).prepared
        is None
    )
    assert "short side 32" in capsys.readouterr().err
    assert load_config(overrides=["prepared=off"]).prepared == "off"  # YAML reads a bare off as false


def test_prepare_command(tmp_path):
    root = tmp_path / "data"
    _folder_dataset(root)
    store = tmp_path / "store"
    env = {**os.environ, "VIDLEARN_CACHE": str(tmp_path / "cache")}

    def vidlearn(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*VIDLEARN, "prepare", *args], capture_output=True, text=True, env=env, timeout=120
        )

    done = vidlearn(str(root), "--short-side", "32", "--out", str(store), "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert (
        "4 videos prepared" in done.stdout
        and "MiB of original files" in done.stdout
        and f"prepared={store}" in done.stdout
    )
    assert len(list(store.rglob("*.frames.npy"))) == 4
    assert vidlearn(str(root), "--short-side", "32", "--out", str(store), "--verify").returncode == 0

    bad = next(store.rglob("*.frames.npy"))
    data = bytearray(bad.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    verified = vidlearn(str(root), "--short-side", "32", "--out", str(store), "--verify")
    assert verified.returncode == 1 and str(bad) in verified.stdout and "1 bad" in verified.stdout

    missing = vidlearn(str(tmp_path / "nowhere"), "--short-side", "32")
    assert missing.returncode == 2 and "nowhere" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr


def test_loader_reads_prepared_items_in_the_training_process(synth_subset, tmp_path):
    """Default workers: none for a prepared store (cheaper than moving batches between processes), one per core otherwise."""
    from vidlearn.data.dataset import EpochSampler, default_workers, make_loader

    index = synth_subset
    prepare_videos(
        [e.path for e in index],
        tmp_path / "store",
        index.source.root,
        PreparedSettings(40),
        workers=1,
        progress=False,
    )
    spec = ClipSpec(num_frames=4, stride=2, size=32, short_side=40)
    sampler = EpochSampler(len(index), shuffle=True)
    reading = ClipDataset(
        index, spec, train=True, prepared=PreparedStore(tmp_path / "store", index.source.root)
    )
    assert make_loader(reading, 2, sampler).num_workers == 0
    assert make_loader(ClipDataset(index, spec, train=True), 2, sampler).num_workers == default_workers()


def test_store_files_get_the_permissions_of_ordinary_files(tmp_path):
    """Stores are shared between users: files appear atomically but not with mkstemp's private 0600."""
    root = tmp_path / "data"
    paths = _folder_dataset(root, count=1)
    prepare_videos(paths, tmp_path / "store", root, PreparedSettings(32), workers=1, progress=False)
    store = PreparedStore(tmp_path / "store", root)
    umask = os.umask(0)
    os.umask(umask)
    for file in (
        store.array_path(paths[0]),
        store.sidecar_path(paths[0]),
        tmp_path / "store" / "prepared.json",
    ):
        assert file.stat().st_mode & 0o777 == 0o666 & ~umask, file
