"""The engine: configuration, schedule, checkpoints, a real short training run, resume after a real
kill, evaluation and prediction from the command line, and a 2-process distributed run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vidlearn.engine.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    read_record,
    save_checkpoint,
)
from vidlearn.engine.config import TrainConfig, load_config
from vidlearn.engine.loop import lr_at
from vidlearn.engine.sources import load_splits
from vidlearn.engine.train import train
from vidlearn.errors import BadArgumentError

VIDLEARN = [sys.executable, "-m", "vidlearn.cli.main"]
# Three classes one frame decides and one time-reversed pair: chance is 1/5.
CLASSES = "Ring,Crescent,Hourglass,MoveLeft,MoveRight"
TINY = [
    "num_frames=8",
    "stride=2",
    "size=48",
    "short_side=56",
    "batch_size=4",
    "workers=0",
    "test_clips=2",
    f"classes={CLASSES}",
]


def tiny_config(synth_root: Path, out: Path, *overrides: str) -> TrainConfig:
    return load_config(None, [*TINY, *overrides], model="early_fusion", data=str(synth_root), out=str(out))


def test_config_layers_and_errors(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("epochs: 3\nlr: 1e-3\nbatch_size: 4\n")
    config = load_config(yaml_file, ["epochs=5", "classes=A,B"], batch_size=2)
    assert (config.epochs, config.lr, config.batch_size, config.classes) == (5, 0.001, 2, ["A", "B"])
    with pytest.raises(BadArgumentError, match="unknown config key"):
        load_config(None, ["epoch=3"])
    with pytest.raises(BadArgumentError, match="key=value"):
        load_config(None, ["epochs"])
    with pytest.raises(BadArgumentError, match="expects"):
        load_config(None, ["epochs=many"])
    with pytest.raises(BadArgumentError, match="larger than"):
        TrainConfig(size=128, short_side=112)


def test_warmup_then_cosine():
    # 10 steps, 2 of warm-up, base 1.0: 0.5, 1.0, then 0.5 * (1 + cos(pi * k / 8)) for k = 0..7.
    lrs = [lr_at(step, 10, 2, 1.0) for step in range(10)]
    assert lrs[:2] == [0.5, 1.0]
    assert lrs[2] == pytest.approx(1.0)
    assert lrs[6] == pytest.approx(0.5)  # k = 4: halfway through the cosine
    assert lrs[9] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))


def test_checkpoint_round_trip_without_pickle(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    path = save_checkpoint(
        tmp_path / "c.safetensors",
        Checkpoint(
            {"class_names": ["a", "b"]},
            model.state_dict(),
            optimizer.state_dict(),
            {"torch": torch.get_rng_state()},
        ),
    )
    loaded = load_checkpoint(path)
    assert loaded.record["class_names"] == ["a", "b"]
    assert torch.equal(loaded.model["weight"], model.weight.detach())
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters())
    fresh.load_state_dict(loaded.optimizer)
    assert torch.equal(
        fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )
    assert json.loads(path.with_suffix(".json").read_text())["class_names"] == ["a", "b"]
    assert read_record(path)["format_version"] == 1
    # Plain safetensors bytes: no pickle opcodes at the start (b"\x80" is the pickle protocol marker).
    assert not path.read_bytes().startswith(b"\x80")
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_checkpoint(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_holdout_and_class_selection(synth_root):
    train_index, test_index = load_splits(str(synth_root), classes=["MoveRight", "Ring"], progress=False)
    assert train_index.class_names == ["MoveRight", "Ring"]
    assert {e.label for e in train_index.entries} == {0, 1}
    assert not {e.path for e in train_index.entries} & {e.path for e in test_index.entries}
    with pytest.raises(BadArgumentError, match="unknown class"):
        load_splits(str(synth_root), classes=["Dance"], progress=False)


def test_validation_split_holds_out_whole_groups_per_class():
    from vidlearn.data.index import DatasetSource, IndexEntry, VideoIndex
    from vidlearn.engine.sources import recording_group, validation_split

    assert recording_group("a/v_ApplyEyeMakeup_g08_c01.avi") == "v_ApplyEyeMakeup_g08"
    assert recording_group("Grow_g01_c03.mp4") == "Grow_g01" and recording_group("clip.mp4") == "clip"
    entries = [IndexEntry(f"{name}_g{g:02d}_c{c}.mp4", label) for label, name in enumerate(("A", "B"))
               for g in range(10) for c in range(2)] + [IndexEntry("C_only.mp4", 2)]  # fmt: skip
    index = VideoIndex(entries, ["A", "B", "C"], DatasetSource("synthactions", "."))
    train, val = validation_split(index, 0.2, seed=0)
    assert len(train) + len(val) == len(index) and not {e.path for e in train} & {e.path for e in val}
    assert val.class_counts() == {"A": 4, "B": 4, "C": 0}  # 2 groups of 2 per class; a lone video stays
    assert not {recording_group(e.path) for e in train} & {recording_group(e.path) for e in val}
    assert validation_split(index, 0.2, seed=1)[1].entries != val.entries  # the seed draws the groups
    with pytest.raises(BadArgumentError, match="val_fraction"):
        validation_split(index, 1.0)


def test_validation_picks_the_best_and_the_test_split_is_evaluated_once(synth_root, tmp_path):
    config = tiny_config(synth_root, tmp_path / "run", "epochs=3", "val_fraction=0.3", "patience=5")
    result = train(config, quiet=True)
    assert all("val_video_top1" in row and "test_video_top1" not in row for row in result.history)
    record = read_record(result.best_checkpoint)
    _, test_index = load_splits(str(synth_root), classes=CLASSES.split(","), progress=False)
    assert (
        record["data"]["val_videos"] > 0 and record["metrics"]["num_videos"] == record["data"]["val_videos"]
    )
    written = json.loads((tmp_path / "run" / "test.json").read_text())
    assert written["epoch"] == record["position"]["epoch"]
    assert written["details"]["num_videos"] == len(test_index) == result.test["details"]["num_videos"]
    assert written["test_video_top1"] == result.test["test_video_top1"]


def test_short_training_beats_chance(synth_root, tmp_path):
    """Two time-reversed classes and one appearance class, 15 training videos each: chance is 1/3."""
    config = load_config(
        None,
        [
            "num_frames=8",
            "target_fps=4",
            "size=48",
            "short_side=48",
            "batch_size=8",
            "workers=1",
            "test_clips=3",
            "classes=MoveLeft,MoveRight,Ring",
            "epochs=15",
            "lr=1e-2",
            "weight_decay=0",
            "eval_every=5",
        ],
        model="early_fusion",
        data=str(synth_root),
        out=str(tmp_path / "run"),
    )
    result = train(config, quiet=True)
    final = result.history[-1]
    assert final["test_video_top1"] >= 0.5, final
    assert final["train_loss"] < 0.8 * math.log(3), final  # well below the loss of a uniform guess
    record = read_record(result.best_checkpoint)
    assert record["class_names"] == ["MoveLeft", "MoveRight", "Ring"]
    assert record["config"]["hflip"] is False  # SynthActions names directions: no mirroring
    assert record["input"]["num_frames"] == 8 and record["params"] > 0 and record["flops_per_view"] > 0
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 1 + 15
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*")), "no TensorBoard events written"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model


def test_resume_after_kill_gives_the_same_model(synth_root, tmp_path):
    """A run killed with SIGKILL mid-epoch and resumed ends with exactly the weights of an uninterrupted run."""
    args = [*TINY, "epochs=2", "checkpoint_every=1", "eval_every=2"]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # both runs sum floats in the same order

    def command(out: Path) -> list[str]:
        return [
            *VIDLEARN,
            "train",
            "--model",
            "course_3d",
            "--data",
            str(synth_root),
            "--out",
            str(out),
            *args,
        ]

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(command(straight), check=True, stdout=subprocess.DEVNULL, env=env)
    process = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        last = killed / "last.json"
        if last.exists() and json.loads(last.read_text())["position"]["step"] >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    position = json.loads((killed / "last.json").read_text())["position"]
    assert position["epoch"] == 0 and position["batches_done"] >= 3, "the run was not killed mid-epoch"

    subprocess.run([*command(killed), "--resume"], check=True, stdout=subprocess.DEVNULL, env=env)
    a, b = _weights(straight / "last.safetensors"), _weights(killed / "last.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def trained_run(synth_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    train(tiny_config(synth_root, out, "epochs=2"), quiet=True)
    return out


def test_eval_cli_counts_every_view(trained_run, synth_root, tmp_path):
    png = tmp_path / "confusion.png"
    done = subprocess.run(
        [
            *VIDLEARN,
            "eval",
            "--checkpoint",
            str(trained_run),
            "--clips",
            "3",
            "--crops",
            "3",
            "--json",
            "--confusion",
            str(png),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(done.stdout)
    _, test_index = load_splits(str(synth_root), classes=CLASSES.split(","), progress=False)
    assert result["num_videos"] == len(test_index)
    assert result["num_views"] == len(test_index) * 3 * 3
    assert (result["num_clips"], result["num_crops"], result["aggregation"]) == (3, 3, "prob")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_cli_with_timeline(trained_run, synth_root):
    video = sorted((synth_root / "untrimmed").glob("*.mp4"))[0]
    done = subprocess.run(
        [
            *VIDLEARN,
            "predict",
            str(video),
            "--checkpoint",
            str(trained_run / "best.safetensors"),
            "--topk",
            "3",
            "--timeline",
            "1.0",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    prediction = json.loads(done.stdout.splitlines()[0])
    probabilities = [t["probability"] for t in prediction["top"]]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert all(label in CLASSES.split(",") for label in (t["label"] for t in prediction["top"]))
    starts = [w["start"] for w in prediction["timeline"]]
    assert len(starts) > 3 and starts == sorted(starts)


def test_user_errors_are_one_line(tmp_path):
    done = subprocess.run(
        [*VIDLEARN, "train", "--model", "no_such_model", "--data", str(tmp_path), "epochs=1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "error" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(
        [*VIDLEARN, "eval", "--checkpoint", str(tmp_path / "nothing.safetensors")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_two_process_distributed_training(synth_root, tmp_path):
    """torchrun with 2 CPU processes (gloo): trains, and the evaluation sees every test video once."""
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "--master_port",
            str(29500 + os.getpid() % 1000),
            "-m",
            "vidlearn.cli.main",
            "train",
            "--model",
            "course_3d",
            "--data",
            str(synth_root),
            "--out",
            str(out),
            *TINY,
            "epochs=1",
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )
    metrics = read_record(out / "best.safetensors")["metrics"]
    _, test_index = load_splits(str(synth_root), classes=CLASSES.split(","), progress=False)
    assert metrics["num_videos"] == len(test_index)
    assert metrics["num_views"] == len(test_index) * 2


def test_fast_training_is_used_where_it_pays():
    """fast=None picks the fast CPU path for models of >= 2 GFLOPs per clip only; True/False decide; never on a GPU."""
    from vidlearn.engine.train import use_fast_training

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert use_fast_training(None, cpu, 40_000_000_000) and not use_fast_training(None, cpu, 200_000_000)
    assert use_fast_training(True, cpu, 1) and not use_fast_training(False, cpu, 10**12)
    assert not use_fast_training(None, gpu, 10**12) and not use_fast_training(True, gpu, 10**12)
