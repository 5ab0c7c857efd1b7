"""The one training loop (vidlearn.engine.loop): accumulation, resume, best checkpoints, the
documented example objective, and that no other code calls backward()."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from vidlearn.engine.checkpoint import load_checkpoint
from vidlearn.engine.loop import BatchLoss, Evaluation, LoopSettings, Objective, TrainingLoop, lr_at
from vidlearn.errors import BadArgumentError

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


class Points(torch.utils.data.Dataset):
    """``size`` fixed random points in 6-D with a label; items by (epoch, position) keys."""

    def __init__(self, size: int = 24):
        generator = torch.Generator().manual_seed(5)
        self.x = torch.randn(size, 6, generator=generator)
        self.y = (self.x[:, 0] + self.x[:, 1] > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key):
        return self.x[key[1]], self.y[key[1]]


class NoisyPoints(Objective):
    """Classification of ``Points`` with dropout and input noise: randomness the loop must restore."""

    resume_keys = ("width",)

    def __init__(self, scores: list[float] | None = None):
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
        self.train_set = Points()
        self.scores = scores

    def loss(self, model, batch):
        x, y = batch
        logits = model(x + 0.1 * torch.randn_like(x))
        return BatchLoss(
            F.cross_entropy(logits, y), len(y), {"accuracy": (logits.argmax(1) == y).float().mean().item()}
        )

    def evaluate(self, dist):
        if self.scores is None:
            return None
        epoch = len(self.scores_seen) if hasattr(self, "scores_seen") else 0
        self.scores_seen = [*getattr(self, "scores_seen", []), self.scores[epoch]]
        return Evaluation({"score": self.scores[epoch]}, {"score": self.scores[epoch]})

    def record(self):
        return {"config": {"width": 16}}


def settings(out=None, **changes) -> LoopSettings:
    return LoopSettings(
        **{"epochs": 3, "batch_size": 4, "lr": 1e-2, "workers": 0, "progress": False, "out": out, **changes}
    )


def test_learning_rate_schedules():
    assert lr_at(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert lr_at(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert lr_at(55, 100, 10, 1.0) == pytest.approx(0.5)  # half way through the cosine
    assert lr_at(100, 100, 10, 1.0) == pytest.approx(0.0)
    assert lr_at(80, 100, 10, 1.0, schedule="constant") == 1.0
    with pytest.raises(BadArgumentError, match="schedule"):
        LoopSettings(schedule="step")
    with pytest.raises(BadArgumentError, match="grad_accum"):
        LoopSettings(grad_accum=0)


def test_accumulating_two_half_batches_is_one_full_batch():
    """Mean losses over two batches of 2, accumulated, give the gradient of one batch of 4."""

    class Plain(NoisyPoints):
        def loss(self, model, batch):
            x, y = batch
            logits = model(x)
            return BatchLoss(F.cross_entropy(logits, y), len(y))

    runs = []
    for batch_size, accumulate in ((4, 1), (2, 2)):
        objective = Plain()
        objective.model[2].p = 0.0
        loop = TrainingLoop(
            objective, settings(batch_size=batch_size, grad_accum=accumulate, clip_grad=None), CPU
        )
        history = loop.run().history
        assert [row["step"] for row in history] == [6, 12, 18]
        runs.append(objective.model.state_dict())
    for key in runs[0]:
        assert torch.allclose(runs[0][key], runs[1][key], atol=1e-6), key


def test_clipping_bounds_the_gradient_norm(monkeypatch):
    norms = []
    real_step = torch.optim.AdamW.step

    def record_then_step(optimizer, *args, **kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.append(
            float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        )
        return real_step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", record_then_step)
    TrainingLoop(NoisyPoints(), settings(clip_grad=1e-3, epochs=1), CPU).run()
    assert norms and max(norms) <= 1e-3 * (1 + 1e-4)


def test_killed_mid_epoch_then_resumed_gives_the_same_weights(tmp_path, monkeypatch):
    straight = TrainingLoop(NoisyPoints(), settings(tmp_path / "straight", checkpoint_every=2), CPU)
    straight.run()
    real_save = TrainingLoop.save

    def save_then_die(loop, name, *args, **kwargs):
        path = real_save(loop, name, *args, **kwargs)
        if name == "last" and loop.step == 8:  # epoch 2 of 3, two of its six steps done
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(TrainingLoop, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        TrainingLoop(NoisyPoints(), settings(tmp_path / "killed", checkpoint_every=2), CPU).run()
    monkeypatch.setattr(TrainingLoop, "save", real_save)
    position = json.loads((tmp_path / "killed" / "last.json").read_text())["position"]
    assert (position["epoch"], position["batches_done"]) == (1, 2)
    resumed = TrainingLoop(NoisyPoints(), settings(tmp_path / "killed", checkpoint_every=2), CPU, resume=True)
    history = resumed.run().history
    assert [row["train_loss"] for row in history] == [row["train_loss"] for row in straight.history]
    a = load_checkpoint(tmp_path / "straight" / "last.safetensors").model
    b = load_checkpoint(tmp_path / "killed" / "last.safetensors").model
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(BadArgumentError, match="batch_size"):
        TrainingLoop(NoisyPoints(), settings(tmp_path / "killed", batch_size=3), CPU, resume=True)


@pytest.mark.parametrize("mode, expected", [("max", 0.9), ("min", 0.2)])
def test_best_checkpoint_follows_the_named_metric(tmp_path, mode, expected):
    loop = TrainingLoop(
        NoisyPoints(scores=[0.5, 0.9, 0.2]), settings(tmp_path, best_metric="score", best_mode=mode), CPU
    )
    history = loop.run().history
    assert [row["test_score"] for row in history] == [0.5, 0.9, 0.2]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["metrics"]["score"] == expected and best["position"]["best"]["value"] == expected
    with pytest.raises(BadArgumentError, match="best_metric 'loss'"):
        TrainingLoop(
            NoisyPoints(scores=[0.5]), settings(tmp_path / "other", epochs=1, best_metric="loss"), CPU
        ).run()


def test_patience_stops_the_run_and_a_resume_stays_stopped(tmp_path):
    """Best at epoch 2, then two evaluations without improvement: with patience 2 the run stops
    after epoch 4 of 6, best.safetensors is epoch 2's, and resuming the stopped run trains nothing."""
    scores = [0.5, 0.9, 0.8, 0.9, 0.95, 0.99]
    run = settings(tmp_path, epochs=6, best_metric="score", patience=2)
    result = TrainingLoop(NoisyPoints(scores=scores), run, CPU).run()
    assert result.stopped_early and [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "best.json").read_text())["position"]["epoch"] == 2
    resumed = TrainingLoop(NoisyPoints(scores=scores), run, CPU, resume=True).run()
    assert resumed.stopped_early and len(resumed.history) == 4
    with pytest.raises(BadArgumentError, match="patience needs a best_metric"):
        settings(patience=2)


def test_a_run_without_an_out_folder_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = TrainingLoop(NoisyPoints(), settings(), CPU).run()
    assert len(result.history) == 3 and not any(tmp_path.iterdir())


def test_the_documented_example_objective_learns(tmp_path):
    """docs/training.md's complete example objective, run as a user would paste it."""
    text = (ROOT / "docs" / "training.md").read_text()
    code = re.search(r"<!-- example: arrow-of-time -->\n```python\n(.*?)```", text, re.S).group(1)
    assert 35 <= len(code.splitlines()) <= 60
    (tmp_path / "arrow.py").write_text(code)
    done = subprocess.run(
        [sys.executable, "arrow.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "runs" / "arrow" / "metrics.csv").read_text().splitlines()
    header, last = rows[0].split(","), rows[-1].split(",")
    assert float(last[header.index("test_accuracy")]) >= 0.9
    assert (tmp_path / "runs" / "arrow" / "best.safetensors").exists()


def test_backward_is_called_in_one_place():
    calls = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "vidlearn").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.backward\(", line)
    ]
    assert len(calls) == 1 and calls[0].startswith("vidlearn/engine/loop.py"), calls
