"""Video I/O against ground truth: the MANIFEST's ffprobe facts, an independent sequential decode, bad files."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import SHARED_VIDEOS, hmdb_subset_videos, moving_square_frames, shared_videos

from vidlearn.errors import BadArgumentError, VideoReadError
from vidlearn.io import iter_chunks, open_video, probe, read_frames, write_video


def manifest_rows() -> dict[str, dict]:
    """The table in ../shared/videos/MANIFEST.md, parsed into the facts ffprobe gave."""
    manifest = SHARED_VIDEOS / "MANIFEST.md"
    if not manifest.exists():
        return {}
    rows = {}
    for line in manifest.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 14 or not cells[1].startswith("`"):
            continue
        name = cells[1].strip("`")
        size = re.match(r"(\d+)x(\d+)", cells[6])
        rotation = re.search(r"rotation (-?\d+)", cells[6])
        rows[name] = {
            "codec": cells[5].split()[0].rstrip(","),
            "width": int(size.group(1)),
            "height": int(size.group(2)),
            "ffprobe_rotation": int(rotation.group(1)) if rotation else 0,
            "fps": float(cells[7]),
            "frames": int(cells[9].split()[0]),
            "has_audio": cells[11].startswith("yes"),
        }
    return rows


MANIFEST = manifest_rows()
VIDEO_IDS = [p.name for p in shared_videos()]


@pytest.mark.parametrize("name", VIDEO_IDS or ["<none>"])
def test_probe_matches_manifest(name, need_shared):
    facts = MANIFEST[name]
    info = probe(SHARED_VIDEOS / name)
    assert info.frames == facts["frames"]
    assert info.fps == pytest.approx(facts["fps"], abs=0.001)
    assert info.codec == facts["codec"]
    assert info.has_audio == facts["has_audio"]
    # ffprobe's display-matrix angle and ours name the same turn (ours is taken modulo 360).
    assert info.rotation == facts["ffprobe_rotation"] % 360
    quarter_turn = info.rotation in (90, 270)
    expected = (facts["height"], facts["width"]) if quarter_turn else (facts["width"], facts["height"])
    assert (info.width, info.height) == expected
    assert info.duration > 0


def independent_decode(path: Path, size: tuple[int, int], upto: int, rotation_k: int) -> np.ndarray:
    """Frames 0..upto of a plain sequential PyAV decode, converted as vidlearn promises (swscale bilinear, then upright)."""
    height, width = size if rotation_k % 2 == 0 else size[::-1]
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="BILINEAR")
            frames.append(np.rot90(rgb, k=rotation_k))
            if len(frames) > upto:
                break
    return np.stack(frames)


def write_encoded(
    path: Path,
    frames: np.ndarray,
    codec: str,
    options: dict[str, str] | None = None,
    pix_fmt: str = "yuv420p",
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` with a chosen codec and options (the library's writer always makes H.264 High)."""
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        stream.options = options or {}
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path


@pytest.mark.parametrize("name", VIDEO_IDS or ["<none>"])
def test_seeking_is_frame_exact(name, need_shared):
    """Frame k by random access equals frame k of a sequential decode, in any request order."""
    path = SHARED_VIDEOS / name
    with open_video(path, size=(48, 64)) as video:
        n = len(video)
        rotation_k = video.info.rotation // 90
        upto = min(n - 1, 299)
        rng = np.random.default_rng(len(name))
        wanted = np.concatenate([rng.integers(0, upto + 1, size=10), [upto, 0, upto // 2, upto // 2]])
        got = video.get(wanted)
        got_descending = video.get(np.sort(wanted)[::-1])
    reference = independent_decode(path, (48, 64), upto, rotation_k)
    np.testing.assert_array_equal(got, reference[wanted])
    np.testing.assert_array_equal(got_descending, reference[np.sort(wanted)[::-1]])


@pytest.mark.parametrize("name", VIDEO_IDS or ["<none>"])
def test_strided_clip_skipping_unreferenced_frames_is_exact(name, need_shared):
    """A training read (one decoder thread, a strided clip): the decoder skips frames nothing
    references on the way to each wanted one; the wanted frames equal a full sequential decode."""
    path = SHARED_VIDEOS / name
    with open_video(path, size=(48, 64), threads=1) as video:
        n = len(video)
        rotation_k = video.info.rotation // 90
        upto = min(n - 1, 299)
        start = int(np.random.default_rng(len(name)).integers(0, max(1, upto - 60)))
        wanted = np.minimum(start + 4 * np.arange(16), upto)
        got = video.get(wanted)
    np.testing.assert_array_equal(got, independent_decode(path, (48, 64), upto, rotation_k)[wanted])


def probe_with_stream_info(path: Path, options: dict[str, str], monkeypatch) -> dict:
    """``probe`` facts when FFmpeg's stream-info step opens with ``options`` (first try and fallback alike)."""
    from vidlearn.io import _pyav

    with monkeypatch.context() as patch:
        patch.setattr(_pyav, "_HEADER_ONLY_STREAM_INFO", options)
        patch.setattr(_pyav, "_DECODED_STREAM_INFO", options)
        return probe(path).to_dict()


@pytest.mark.parametrize("name", VIDEO_IDS or ["<none>"])
def test_header_only_open_gives_the_facts_of_a_plain_open(name, need_shared, monkeypatch):
    """Opening without decoding pictures for stream info (and falling back where headers may not suffice)
    gives every ``probe`` fact a plain FFmpeg open gives; the pixels are compared in test_seeking_is_frame_exact."""
    path = SHARED_VIDEOS / name
    assert probe(path).to_dict() == probe_with_stream_info(path, {}, monkeypatch)


def test_header_only_open_falls_back_where_headers_may_not_tell_reordering(tmp_path):
    """In an AVI (decode-order timestamps) "no B-frames" is taken from headers only when the profile rules
    B-frames out; otherwise the file is opened again with stream-info decoding."""
    from vidlearn.io._pyav import _header_facts_suffice

    frames = moving_square_frames(23)
    cases = {  # name: (encoder options, profile, header-only open suffices)
        "simple.avi": ({}, "Simple Profile", True),
        "b_frames.avi": ({"bf": "2"}, "Advanced Simple Profile", True),
        "advanced_no_b.avi": ({"flags": "+qpel", "bf": "0"}, "Advanced Simple Profile", False),
    }
    for name, (options, profile, suffices) in cases.items():
        path = write_encoded(tmp_path / name, frames, "mpeg4", options)
        with av.open(str(path), options={"skip_frame": "all"}) as container:
            assert container.streams.video[0].codec_context.profile == profile
            assert _header_facts_suffice(container) == suffices, name
        with open_video(path) as video:
            assert len(video) == 23
            np.testing.assert_array_equal(
                video.get([20, 3, 11]), independent_decode(path, (48, 64), 22, 0)[[20, 3, 11]]
            )


def test_missed_seek_falls_back_to_counting_from_the_start(need_shared):
    """If packet timestamps ever mislead a seek, the reader counts frames from the start instead."""
    path = SHARED_VIDEOS / "mmaction2_test.mp4"
    with open_video(path, size=(48, 64)) as video:
        decoder = video._decoder
        video.get([5])  # positions the decoder mid-stream
        wrong = tuple(p + 1 for p in decoder.index.pts)  # no frame has these timestamps
        decoder.index = type(decoder.index)(
            "pts", wrong, decoder.index.keyframe_pts, decoder.index.packet_count
        )
        got = video.get([3, 40])
        assert decoder.index.mode == "sequential"
    np.testing.assert_array_equal(got, independent_decode(path, (48, 64), 40, 0)[[3, 40]])


@pytest.mark.parametrize(
    "name, mode",
    [
        ("v_SoccerJuggling_g23_c01.avi", "pts"),
        ("mmaction2_test.avi", "sequential"),
        ("mmaction2_ntu_S001C001P001R001A001_rgb.avi", "sequential"),
    ],
)
def test_avi_seeks_only_without_b_frames(name, mode, need_shared):
    """AVI timestamps are in decode order: they name presented frames only when the codec has no B-frames
    (UCF101's Xvid Simple Profile); AVIs with B-frames are read by counting (frame exactness: above)."""
    with open_video(SHARED_VIDEOS / name) as video:
        assert video._decoder.index.mode == mode


@pytest.mark.parametrize("path", hmdb_subset_videos()[:3] or ["<none>"], ids=lambda p: Path(p).name[:20])
def test_avi_header_count_is_not_trusted(path):
    """HMDB51 AVI headers claim one frame more than the decoder gives (DATASET.md)."""
    if path == "<none>":
        pytest.skip("hmdb51_subset not found")
    with av.open(str(path)) as container:
        header = container.streams.video[0].frames
        decoded = sum(1 for _ in container.decode(video=0))
    info = probe(path)
    assert header == decoded + 1
    assert info.frames == decoded
    assert read_frames(path, [decoded - 1]).shape[0] == 1


def test_rotation_turns_the_stored_picture(need_shared):
    """ffprobe's 'rotation -90' means the stored picture is shown turned 90 degrees clockwise."""
    path = SHARED_VIDEOS / "decord_video_90.mov"
    with av.open(str(path)) as container:
        stored = next(container.decode(video=0)).to_ndarray(format="rgb24")
    shown = read_frames(path, [0])[0]
    assert stored.shape == (320, 568, 3) and shown.shape == (568, 320, 3)
    np.testing.assert_array_equal(shown, np.rot90(stored, k=-1))


def test_variable_frame_rate_times(need_shared):
    """goldeneye-vfr-drop3: 80 gaps of 1/24 s and 79 of 2/24 s (MANIFEST)."""
    with open_video(SHARED_VIDEOS / "pyscenedetect_goldeneye-vfr-drop3.mp4", size=32) as video:
        gaps = np.round(np.diff(video.frame_times()) * 24 * 1001 / 1000).astype(int)
        assert len(video) == 160
        assert (gaps == 1).sum() == 80 and (gaps == 2).sum() == 79
        # Between two frames, the earlier one is on screen.
        times = video.frame_times()
        k = int(np.flatnonzero(gaps == 2)[0])
        middle = (times[k] + times[k + 1]) / 2
        assert video.indices_at_times([times[k], middle, times[k + 1]]).tolist() == [k, k, k + 1]
        np.testing.assert_array_equal(video.get_at_times([middle]), video.get([k]))


def test_skeleton_vfr_gap(need_shared):
    """mmaction2_demo_skeleton: 70 gaps of 1/30 s and one of 0.2 s."""
    with open_video(SHARED_VIDEOS / "mmaction2_demo_skeleton.mp4", size=32) as video:
        gaps = np.diff(video.frame_times())
    assert np.isclose(gaps, 1 / 30, atol=1e-3).sum() == 70
    assert np.isclose(gaps, 0.2, atol=1e-3).sum() == 1


def test_resize_on_decode(need_shared):
    path = SHARED_VIDEOS / "mmaction2_test.mp4"  # 340x256
    assert read_frames(path, [0], size=128).shape == (1, 128, 170, 3)
    assert read_frames(path, [0], size=(112, 112)).shape == (1, 112, 112, 3)
    rotated = SHARED_VIDEOS / "decord_video_270.mov"  # shown as 320x568 (portrait)
    assert read_frames(rotated, [0], size=160).shape == (1, 284, 160, 3)


def test_chunks_cover_a_long_video_in_bounded_blocks(need_shared):
    path = SHARED_VIDEOS / "intel_one-by-one-person-detection.mp4"  # 1394 frames
    starts, largest, total = [], 0, 0
    for start, block in iter_chunks(path, chunk=200, size=32):
        starts.append(start)
        largest = max(largest, len(block))
        total += len(block)
    assert total == 1394 and largest == 200
    assert starts == list(range(0, 1394, 200))


def test_write_then_read_round_trip(tmp_path):
    frames = moving_square_frames(12)
    path = write_video(tmp_path / "square.mp4", frames, fps=12.5)
    info = probe(path)
    assert (info.frames, info.width, info.height, info.fps, info.codec) == (12, 64, 48, 12.5, "h264")
    back = read_frames(path, range(12))
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 3
    # Where the square is tells which frame it is: the order survived. Its left edge (the first
    # bright column; the brightest column of its flat top is H.264 noise) starts at 2 + 3t.
    left_edges = (back[:, 24, :, 0] > 120).argmax(axis=1)
    np.testing.assert_allclose(left_edges, 2 + 3 * np.arange(12), atol=1)
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_writer_is_deterministic_and_accepts_iterables(tmp_path):
    frames = moving_square_frames(8)
    a = write_video(tmp_path / "a.mp4", frames, fps=30)
    b = write_video(tmp_path / "b.mp4", iter(list(frames)), fps=30)
    assert a.read_bytes() == b.read_bytes()


def test_writer_rejects_bad_frames(tmp_path):
    with pytest.raises(BadArgumentError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 33, 32, 3), np.uint8), fps=10)
    with pytest.raises(BadArgumentError, match="uint8"):
        write_video(tmp_path / "float.mp4", np.zeros((2, 32, 32, 3), np.float32), fps=10)
    with pytest.raises(BadArgumentError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], fps=10)
    assert not any(tmp_path.iterdir())


def make_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(5):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_bad_files_give_clear_errors(tmp_path):
    good = write_video(tmp_path / "good.mp4", moving_square_frames(12), fps=10)
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 50)
    data = good.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    cases = {
        "zero.mp4": "empty file",
        "text.mp4": "not a readable video",
        "truncated.mp4": "not a readable video",
        "missing.mp4": "does not exist",
        "audio.m4a": "no video stream",
    }
    make_audio_only(tmp_path / "audio.m4a")
    for name, reason in cases.items():
        with pytest.raises(VideoReadError, match=reason) as caught:
            probe(tmp_path / name)
        assert str(tmp_path / name) in str(caught.value)
    with pytest.raises(VideoReadError, match="directory"):
        probe(tmp_path)


def test_one_frame_video_and_index_errors(tmp_path):
    path = write_video(tmp_path / "one.mp4", moving_square_frames(1), fps=10)
    assert probe(path).frames == 1
    assert read_frames(path, [0, 0]).shape == (2, 48, 64, 3)
    with pytest.raises(BadArgumentError, match="out of range"):
        read_frames(path, [1])
    with open_video(path) as video, pytest.raises(BadArgumentError, match="outside the video"):
        video.get_at_times([5.0])
    with pytest.raises(BadArgumentError, match="size"):
        open_video(path, size=0)


# -- the container's own index instead of a packet scan ---------------------------------------------
IN_ORDER_FILES = {  # file: (encoder, its options, pixel format)
    "baseline.mp4": ("libx264", {"profile": "baseline", "g": "5"}, "yuv420p"),
    "mjpeg.avi": ("mjpeg", {}, "yuvj420p"),
    "mpeg4_simple.avi": ("mpeg4", {"g": "5"}, "yuv420p"),
}


@pytest.mark.parametrize("name", sorted(IN_ORDER_FILES))
def test_in_order_codecs_use_the_container_index(tmp_path, name):
    """Codecs that cannot reorder frames are indexed from the container without a packet scan, with the
    same index the scan builds, and read frame-exactly."""
    from vidlearn.io._pyav import index_from_container, open_container, scan_packets

    codec, options, pix_fmt = IN_ORDER_FILES[name]
    path = write_encoded(tmp_path / name, moving_square_frames(23), codec, options, pix_fmt)
    container = open_container(path)
    try:
        from_container = index_from_container(container)
        scanned = scan_packets(container, path)
    finally:
        container.close()
    assert from_container is not None and from_container.from_container
    assert (from_container.pts, from_container.keyframe_pts) == (scanned.pts, scanned.keyframe_pts)
    assert len(from_container.pts) == 23
    with open_video(path) as video:
        assert video._decoder.index.from_container
        wanted = [22, 3, 11, 0, 7, 7, 16]
        got = video.get(wanted)
    np.testing.assert_array_equal(got, independent_decode(path, (48, 64), 22, 0)[wanted])


def test_reordering_and_fragmented_files_are_scanned(tmp_path):
    """H.264 with B-frames, and a fragmented MP4 (its index lists the first fragment only), read their packets."""
    frames = moving_square_frames(23)
    b_frames = write_encoded(tmp_path / "high.mp4", frames, "libx264", {"g": "5", "bf": "2"})
    fragmented = write_encoded(
        tmp_path / "fragmented.mp4",
        frames,
        "libx264",
        {"profile": "baseline", "g": "5"},
        container_options={"movflags": "frag_keyframe+empty_moov"},
    )
    for path in (b_frames, fragmented):
        with open_video(path) as video:
            assert not video._decoder.index.from_container
            assert len(video) == 23
            np.testing.assert_array_equal(
                video.get([22, 5, 12]), independent_decode(path, (48, 64), 22, 0)[[22, 5, 12]]
            )


def test_container_index_whose_times_are_not_the_frames_is_replaced_by_a_scan(tmp_path, monkeypatch):
    """A constant composition offset would make the container's times name the wrong frames: the first
    decoded frame's timestamp disagrees, and the packets are scanned instead."""
    from vidlearn.io import _pyav

    path = write_encoded(
        tmp_path / "baseline.mp4", moving_square_frames(23), "libx264", {"profile": "baseline", "g": "5"}
    )
    real = _pyav.index_from_container

    def shifted_by_one_frame(container):
        index = real(container)
        step = index.pts[1] - index.pts[0]
        return _pyav.FrameIndex(
            "pts",
            tuple(p - step for p in index.pts),
            tuple(p - step for p in index.keyframe_pts),
            index.packet_count,
            True,
        )

    monkeypatch.setattr(_pyav, "index_from_container", shifted_by_one_frame)
    with open_video(path) as video:
        assert not video._decoder.index.from_container
        got = video.get([20, 4, 9])
    np.testing.assert_array_equal(got, independent_decode(path, (48, 64), 22, 0)[[20, 4, 9]])


@pytest.mark.parametrize("name", VIDEO_IDS or ["<none>"])
def test_container_index_equals_the_packet_scan(name, need_shared):
    """Wherever the container's index is used, it is the index the packet scan builds; it is used exactly on the
    sample files whose codec cannot reorder (H.264 Baseline, MPEG-4 Simple Profile) in MP4/MOV/AVI."""
    from vidlearn.io._pyav import index_from_container, open_container, scan_packets

    path = SHARED_VIDEOS / name
    container = open_container(path)
    try:
        context = container.streams.video[0].codec_context
        from_container = index_from_container(container)
        scanned = scan_packets(container, path)
        in_order = context.profile in ("Baseline", "Constrained Baseline", "Simple Profile")
        indexed = container.format.name.split(",")[0] in ("mov", "avi")
    finally:
        container.close()
    assert (from_container is not None) == (in_order and indexed)
    if from_container is not None:
        assert scanned.mode == "pts"
        assert (from_container.pts, from_container.keyframe_pts, from_container.packet_count) == (
            scanned.pts,
            scanned.keyframe_pts,
            scanned.packet_count,
        )


def test_the_demuxer_skips_other_streams(need_shared):
    """Audio packets are skipped by the demuxer, not read and dropped (frames stay exact: test_seeking_is_frame_exact)."""
    with open_video(SHARED_VIDEOS / "moviepy_big_buck_bunny_0_30.webm") as video:
        streams = video._decoder.stream.container.streams
        assert video.info.has_audio and len(streams) == 2
        assert [s.discard.name for s in streams if s.type != "video"] == ["all"]
        assert streams.video[0].discard.name == "default"
