"""Pre-training without labels (VideoMAE), fine-tuning from its encoder, and few-label subsets."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from vidlearn.data.index import DatasetSource, IndexEntry, VideoIndex
from vidlearn.engine.checkpoint import load_checkpoint
from vidlearn.engine.loop import TrainingLoop
from vidlearn.engine.modeling import load_initial_weights
from vidlearn.engine.pretrain import PretrainConfig, pretrain
from vidlearn.engine.sources import label_subset
from vidlearn.errors import BadArgumentError
from vidlearn.models import create_model


def tiny_config(data, out, **changes) -> PretrainConfig:
    settings = dict(
        data=str(data),
        out=str(out),
        encoder="tiny",
        epochs=2,
        batch_size=2,
        num_frames=4,
        size=32,
        short_side=32,
        max_steps_per_epoch=2,
        workers=0,
        picture_every=1,
    )
    return PretrainConfig(**{**settings, **changes})


def test_pretraining_writes_encoder_pictures_and_metrics(synth_root, tmp_path):
    result = pretrain(tiny_config(synth_root, tmp_path / "run"), progress=False)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in result.history)
    for name in (
        "last.safetensors",
        "encoder.safetensors",
        "metrics.csv",
        "reconstruction_e001.png",
        "reconstruction_e002.png",
    ):
        assert (tmp_path / "run" / name).exists(), name
    assert (tmp_path / "run" / "reconstruction_e002.png").read_bytes()[:4] == b"\x89PNG"
    # The encoder initialises a vit_video classifier: everything but its classification head.
    encoder = load_checkpoint(result.encoder_checkpoint)
    assert encoder.record["model"]["name"] == "vit_video"
    classifier = create_model("vit_video", num_classes=5, **encoder.record["model"]["args"])
    report = load_initial_weights(classifier, result.encoder_checkpoint)
    assert report.copied and not report.inflated
    assert {name for name, _ in report.skipped} <= {
        "fc_norm.weight",
        "fc_norm.bias",
        "head.weight",
        "head.bias",
    }
    for name in report.copied:
        assert torch.equal(classifier.state_dict()[name], encoder.model[name])
    # The same from the command line: fine-tune with a tenth of the labels from the encoder.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vidlearn.cli.main",
            "train",
            "--model",
            "vit_video",
            "--data",
            str(synth_root),
            "--out",
            str(tmp_path / "tune"),
            "--init",
            str(result.encoder_checkpoint),
            "model_args={size: tiny}",
            "label_fraction=0.1",
            "epochs=1",
            "batch_size=2",
            "num_frames=4",
            "size=32",
            "short_side=32",
            "test_clips=1",
            "workers=0",
            "max_steps_per_epoch=1",
            "classes=MoveLeft,MoveRight",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "tensors copied" in done.stdout
    from vidlearn.engine.sources import load_splits

    train_index, _ = load_splits(str(synth_root), classes=["MoveLeft", "MoveRight"], progress=False)
    per_class = train_index.class_counts().values()
    expected = sum(max(1, round(n * 0.1)) for n in per_class)
    assert (
        load_checkpoint(tmp_path / "tune" / "last.safetensors").record["data"]["train_videos"]
        == expected
        < len(train_index)
    )


def test_pretraining_resumes_after_an_interruption_exactly(synth_root, tmp_path, monkeypatch):
    reference = pretrain(tiny_config(synth_root, tmp_path / "reference"), progress=False)
    real_save = TrainingLoop.save

    def save_then_die(loop, name, *args, **kwargs):
        path = real_save(loop, name, *args, **kwargs)
        if name == "last" and loop.epoch == 1:
            raise KeyboardInterrupt  # killed right after the first epoch's checkpoint
        return path

    monkeypatch.setattr(TrainingLoop, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        pretrain(tiny_config(synth_root, tmp_path / "killed"), progress=False)
    monkeypatch.setattr(TrainingLoop, "save", real_save)
    resumed = pretrain(tiny_config(synth_root, tmp_path / "killed"), resume=True, progress=False)
    assert [row["train_loss"] for row in resumed.history] == [row["train_loss"] for row in reference.history]
    final = load_checkpoint(tmp_path / "killed" / "last.safetensors").model
    expected = load_checkpoint(tmp_path / "reference" / "last.safetensors").model
    assert all(torch.equal(final[k], expected[k]) for k in expected)
    with pytest.raises(BadArgumentError, match="mask_ratio"):
        pretrain(tiny_config(synth_root, tmp_path / "killed", mask_ratio=0.75), resume=True, progress=False)


def test_pretraining_on_a_plain_folder_of_videos(tmp_path):
    from conftest import moving_square_frames

    from vidlearn.io import write_video

    for k in range(2):
        write_video(tmp_path / "videos" / f"clip{k}.mp4", moving_square_frames(12), fps=10)
    result = pretrain(
        tiny_config(tmp_path / "videos", tmp_path / "run", epochs=1, num_frames=4), progress=False
    )
    assert result.history[0]["epoch"] == 1
    with pytest.raises(BadArgumentError, match="no video files"):
        pretrain(tiny_config(tmp_path / "run", tmp_path / "run2"), progress=False)


def test_unknown_method_is_a_one_line_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "vidlearn.cli.main", "pretrain", "--method", "simclr", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "simclr" in done.stderr and "Traceback" not in done.stderr


def test_label_subset_keeps_a_fraction_of_every_class():
    entries = [IndexEntry(f"/d/c{label}/v{k}.mp4", label) for label in range(3) for k in range(10)]
    index = VideoIndex(entries, ["a", "b", "c"], DatasetSource("folder", "/d"))
    tenth = label_subset(index, 0.1, seed=0)
    assert [sum(e.label == c for e in tenth) for c in range(3)] == [1, 1, 1]
    half = label_subset(index, 0.5, seed=0)
    assert [sum(e.label == c for e in half) for c in range(3)] == [5, 5, 5]
    assert {e.path for e in tenth} <= {e.path for e in half}  # smaller subsets are nested
    assert label_subset(index, 1.0) is index
    with pytest.raises(BadArgumentError):
        label_subset(index, 0.0)


def test_init_inflates_2d_weights_and_reports_what_it_kept(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    conv2d = torch.nn.Conv2d(3, 4, 3)
    save_file(
        {
            "conv.weight": conv2d.weight.detach().contiguous(),
            "conv.bias": conv2d.bias.detach().contiguous(),
            "other.weight": torch.zeros(2),
        },
        str(tmp_path / "w.safetensors"),
    )
    target = torch.nn.Module()
    target.conv = torch.nn.Conv3d(3, 4, (5, 3, 3))
    target.head = torch.nn.Linear(4, 2)
    report = load_initial_weights(target, tmp_path / "w.safetensors")
    assert report.inflated == ["conv.weight"] and report.copied == ["conv.bias"]
    assert torch.allclose(target.conv.weight.sum(dim=2), conv2d.weight)  # 5 copies, each divided by 5
    assert {name for name, _ in report.skipped} == {"head.weight", "head.bias"}
    save_file({"unrelated": torch.zeros(3)}, str(tmp_path / "none.safetensors"))
    with pytest.raises(BadArgumentError, match="no weight matches"):
        load_initial_weights(target, tmp_path / "none.safetensors")


def test_two_process_pretraining_with_accumulation(synth_root, tmp_path):
    """torchrun with 2 CPU processes (gloo), two batches per optimiser step: one run folder, written by rank 0."""
    import os
    from pathlib import Path

    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    settings = [
        "encoder=tiny",
        "epochs=1",
        "batch_size=2",
        "num_frames=4",
        "size=32",
        "short_side=32",
        "max_steps_per_epoch=2",
        "workers=0",
        "grad_accum=2",
    ]
    done = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "--master_port",
            str(30500 + os.getpid() % 1000),
            "-m",
            "vidlearn.cli.main",
            "pretrain",
            "--data",
            str(synth_root),
            "--out",
            str(out),
            *settings,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = load_checkpoint(out / "last.safetensors").record
    assert record["position"]["step"] == 2 and record["position"]["batches_done"] == 0
    assert record["config"]["grad_accum"] == 2 and record["loop"]["grad_accum"] == 2
    assert (out / "encoder.safetensors").exists() and len((out / "metrics.csv").read_text().splitlines()) == 2
