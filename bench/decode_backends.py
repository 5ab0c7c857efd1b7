"""Compare vidlearn.io (PyAV) with torchcodec on the typical training read, and check frame-exactness.

The training read: open the file (a new decoder per clip, as a DataLoader worker does), take a
random clip of ``--frames`` frames at stride ``--stride``, resize so the short side is ``--size``
pixels, return uint8 T x H x W x 3. Both backends read the same clips; they alternate per repeat
(A B, then B A, ...) and the median of the repeats is reported.

torchcodec variants:
  tc-resize  VideoDecoder(seek_mode="exact", transforms=[Resize((h, w))]) -- resize inside the
             decoder. (h, w) needs the source size first, so each clip also pays a header probe
             (``av.open`` + stream width/height), timed.
  tc-interp  VideoDecoder(seek_mode="exact") at native size, then torch bilinear interpolate
             (antialias=True) to (h, w), timed.

The exactness check (``--check``) compares torchcodec's frames with vidlearn's at native size: the
frame count, every frame of a sequential read (chunks), random 16-frame clips from fresh decoders,
and whether torchcodec's frame k is vidlearn's frame k (not a neighbour).

Needs an environment with torchcodec (see docs/decoding-backends.md for the setup):

    python bench/decode_backends.py --check
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

from vidlearn.io import open_video, short_side_size

try:
    import torchcodec
    from torchcodec.decoders import VideoDecoder
    from torchcodec.transforms import Resize
except Exception as exc:  # noqa: BLE001 - report any import failure (missing FFmpeg libs, ABI mismatch)
    sys.exit(
        f"torchcodec is not importable here ({type(exc).__name__}: {exc}); see docs/decoding-backends.md"
    )

DEFAULT_FILES = [
    "mmaction2_test.mp4",
    "torchvision_kinetics_R6llTwEh07w.mp4",
    "torchvision_kinetics_SOX5yA1l24A.mp4",
    "pyscenedetect_testvideo.mp4",
    "moviepy_big_buck_bunny_0_30.webm",
    "intel_one-by-one-person-detection.mp4",
    "v_SoccerJuggling_g23_c01.avi",
]
CHECK_FILES = [
    "pyscenedetect_goldeneye-vfr-drop3.mp4",
    "mmaction2_demo_skeleton.mp4",
    "moviepy_fire2.mp4",
    "mmaction2_test.avi",
    "mmaction2_ntu_S001C001P001R001A001_rgb.avi",
    "v_SoccerJuggling_g23_c01.avi",
    "v_SoccerJuggling_g24_c01.avi",
    "mmaction2_test.mp4",
    "moviepy_big_buck_bunny_0_30.webm",
    "decord_video_90.mov",
]


# -- the three readers -------------------------------------------------------------------------
def read_pyav(path: str, indices: np.ndarray, size: int, threads: int) -> np.ndarray:
    with open_video(path, size=size, threads=threads) as video:
        return video.get(indices)


def _target_size(path: str, size: int) -> tuple[int, int]:
    with av.open(path) as container:
        ctx = container.streams.video[0].codec_context
        return short_side_size(ctx.height, ctx.width, size)


def read_tc_resize(path: str, indices: np.ndarray, size: int, threads: int) -> np.ndarray:
    h, w = _target_size(path, size)
    decoder = VideoDecoder(
        path,
        seek_mode="exact",
        dimension_order="NHWC",
        num_ffmpeg_threads=threads,
        transforms=[Resize((h, w))],
    )
    return decoder.get_frames_at(indices.tolist()).data.numpy()


def read_tc_interp(path: str, indices: np.ndarray, size: int, threads: int) -> np.ndarray:
    decoder = VideoDecoder(path, seek_mode="exact", dimension_order="NCHW", num_ffmpeg_threads=threads)
    frames = decoder.get_frames_at(indices.tolist()).data
    h, w = short_side_size(frames.shape[2], frames.shape[3], size)
    resized = torch.nn.functional.interpolate(
        frames.float(), size=(h, w), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


READERS = {"pyav": read_pyav, "tc-resize": read_tc_resize, "tc-interp": read_tc_interp}


# -- benchmark ---------------------------------------------------------------------------------
def clip_indices(
    num_frames: int, clips: int, frames: int, stride: int, rng: np.random.Generator
) -> list[np.ndarray]:
    span = (frames - 1) * stride + 1
    starts = rng.integers(0, max(1, num_frames - span + 1), size=clips)
    return [np.minimum(s + stride * np.arange(frames), num_frames - 1) for s in starts]


def bench_file(path: str, args, backends: list[str]) -> dict[str, list[float]]:
    with open_video(path) as video:
        num_frames = len(video)
    clips = clip_indices(num_frames, args.clips, args.frames, args.stride, np.random.default_rng(args.seed))
    rates: dict[str, list[float]] = {b: [] for b in backends}
    for b in backends:  # warm-up: page cache, lazy imports
        READERS[b](path, clips[0], args.size, args.threads)
    for r in range(args.repeats):
        order = backends if r % 2 == 0 else backends[::-1]
        for b in order:
            reader = READERS[b]
            t0 = time.perf_counter()
            for idx in clips:
                out = reader(path, idx, args.size, args.threads)
            elapsed = time.perf_counter() - t0
            assert (
                out.dtype == np.uint8
                and out.ndim == 4
                and out.shape[-1] == 3
                and min(out.shape[1:3]) == args.size
            )
            rates[b].append(len(clips) / elapsed)
    return rates


# -- exactness ---------------------------------------------------------------------------------
def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def check_file(path: str, seed: int = 0) -> dict:
    """torchcodec vs vidlearn at native size: counts, all frames in order, random clips, index identity."""
    result: dict = {"file": Path(path).name}
    video = open_video(path)
    n_av = len(video)
    try:
        decoder = VideoDecoder(path, seek_mode="exact", dimension_order="NHWC")
    except Exception as exc:  # noqa: BLE001
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result
    n_tc = len(decoder)
    result.update(frames_pyav=n_av, frames_tc=n_tc)
    n = min(n_av, n_tc)
    max_diff, worst_mean, shifted, first_shift = 0, 0.0, 0, None
    shape_note = ""
    av_all: list[np.ndarray] = []
    for _start, block in video.iter_chunks(64):
        av_all.extend(block)
    av_all = av_all[:n]
    times_av = video.frame_times()[:n]
    tc_times: list[float] = []
    errors: list[str] = []
    failed: list[int] = []
    last_error = ""
    for start in range(0, n, 64):
        stop = min(n, start + 64)
        try:
            batch = decoder.get_frames_in_range(start, stop)
            tc_block, pts = list(batch.data.numpy()), batch.pts_seconds.tolist()
        except Exception as exc:  # noqa: BLE001 - record, then try frame by frame
            errors.append(f"range {start}-{stop}: {exc}")
            tc_block, pts = [], []
            for k in range(start, stop):
                try:
                    frame = decoder.get_frame_at(k)
                    tc_block.append(frame.data.numpy())
                    pts.append(frame.pts_seconds)
                except Exception as exc2:  # noqa: BLE001
                    failed.append(k)
                    tc_block.append(None)
                    pts.append(float("nan"))
                    last_error = str(exc2)
        tc_times.extend(pts)
        for j, k in enumerate(range(start, stop)):
            a, t = av_all[k], tc_block[j]
            if t is None:
                continue
            if a.shape != t.shape:
                shape_note = f"shape pyav {a.shape} vs tc {t.shape}"
                continue
            d = np.abs(a.astype(np.int16) - t.astype(np.int16))
            max_diff = max(max_diff, int(d.max()))
            same = float(d.mean())
            worst_mean = max(worst_mean, same)
            # Is torchcodec's frame k closer to one of vidlearn's neighbours k-3..k+3 than to k?
            for m in range(max(0, k - 3), min(n, k + 4)):
                if m != k and _mad(av_all[m], t) < same - 0.5:
                    shifted += 1
                    first_shift = k if first_shift is None else first_shift
                    break
    result.update(
        max_abs_diff=max_diff,
        worst_frame_mean_diff=round(worst_mean, 3),
        frames_closer_to_a_neighbour=shifted,
        first_shifted=first_shift,
        max_time_diff_s=round(float(np.nanmax(np.abs(np.asarray(tc_times[:n]) - times_av))), 4) if n else 0.0,
        shape=shape_note or "same",
    )
    if errors:
        result["error"] = (
            f"{len(errors)} range read(s) failed ({errors[0]}); frame by frame {len(failed)} of {n} frames failed"
            + (f" (first {failed[0]}: {last_error})" if failed else "")
        )
    # Random access: fresh decoders, random 16-frame clips at stride 2.
    rng = np.random.default_rng(seed)
    ra_max = 0
    for idx in clip_indices(n, 5, 16, 2, rng):
        a = open_video(path).get(idx)
        try:
            t = (
                VideoDecoder(path, seek_mode="exact", dimension_order="NHWC")
                .get_frames_at(idx.tolist())
                .data.numpy()
            )
        except Exception as exc:  # noqa: BLE001
            result["error"] = (result.get("error", "") + f"; random clip read failed: {exc}").lstrip("; ")
            ra_max = -1
            break
        if a.shape != t.shape:
            ra_max = -1
            break
        ra_max = max(ra_max, int(np.abs(a.astype(np.int16) - t.astype(np.int16)).max()))
        # Also: is the random-access frame the same as the sequential one at that index?
        for j, k in enumerate(idx.tolist()):
            ra_max = max(ra_max, int(np.abs(av_all[k].astype(np.int16) - t[j].astype(np.int16)).max()))
    result["random_clip_max_abs_diff"] = ra_max
    video.close()
    return result


# -- report --------------------------------------------------------------------------------------
def machine_facts(args) -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    tc_ffmpeg = "?"
    try:
        from torchcodec._core import get_ffmpeg_library_versions

        tc_ffmpeg = get_ffmpeg_library_versions().get("ffmpeg_version", "?")
    except Exception:  # noqa: BLE001
        pass
    avc = av.library_versions.get("libavcodec", ())
    return [
        f"- machine: {platform.platform()}, CPU {cpu}, {os.cpu_count()} logical cores",
        f"- python {platform.python_version()}, torch {torch.__version__}, torchcodec {torchcodec.__version__} "
        f"(system FFmpeg {tc_ffmpeg}), PyAV {av.__version__} (bundled libavcodec {'.'.join(map(str, avc))})",
        f"- read: {args.frames} frames at stride {args.stride}, short side {args.size}, uint8 THWC; "
        f"{args.clips} clips per file per repeat, a new decoder per clip; {args.repeats} repeats, alternating order, median; "
        f"decoder threads {args.threads}, torch threads {torch.get_num_threads()}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", default=str(Path(__file__).resolve().parents[2] / "shared" / "videos"))
    parser.add_argument("--files", nargs="*", default=DEFAULT_FILES)
    parser.add_argument("--clips", type=int, default=20, help="clips per file per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--stride", type=int, default=2)
    parser.add_argument("--size", type=int, default=128, help="short side of the output")
    parser.add_argument(
        "--threads", type=int, default=1, help="decoder threads (1 = DataLoader worker setting; 0 = auto)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backends", nargs="*", default=list(READERS), choices=list(READERS))
    parser.add_argument("--check", action="store_true", help="also run the frame-exactness check")
    parser.add_argument("--check-files", nargs="*", default=CHECK_FILES)
    parser.add_argument("--no-bench", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads if args.threads > 0 else (os.cpu_count() or 1))
    videos = Path(args.videos)

    print("\n".join(machine_facts(args)))
    if hasattr(os, "getloadavg"):
        print(f"- load average at the start (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.no_bench:
        others = [b for b in args.backends if b != "pyav"]
        head = "| file | size | frames | " + " | ".join(f"{b} clips/s (min-max)" for b in args.backends)
        head += "".join(f" | {b} / pyav" for b in others) + " |"
        print()
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for name in args.files:
            path = str(videos / name)
            with open_video(path) as v:
                info = v.info
            rates = bench_file(path, args, args.backends)
            med = {b: statistics.median(r) for b, r in rates.items()}
            row = f"| {name} | {info.width}x{info.height} | {info.frames} | " + " | ".join(
                f"{med[b]:.1f} ({min(rates[b]):.1f}-{max(rates[b]):.1f})" for b in args.backends
            )
            if "pyav" in med:
                row += "".join(f" | {med[b] / med['pyav']:.2f}x" for b in others)
            print(row + " |", flush=True)
    if hasattr(os, "getloadavg"):
        print(
            f"\n- load average at the end (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
        )
    if args.check:
        print()
        cols = [
            "file",
            "frames_pyav",
            "frames_tc",
            "max_abs_diff",
            "worst_frame_mean_diff",
            "frames_closer_to_a_neighbour",
            "first_shifted",
            "max_time_diff_s",
            "random_clip_max_abs_diff",
            "shape",
            "error",
        ]
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for name in args.check_files:
            res = check_file(str(videos / name), seed=args.seed)
            print("| " + " | ".join(str(res.get(c, "")) for c in cols) + " |", flush=True)


if __name__ == "__main__":
    main()
