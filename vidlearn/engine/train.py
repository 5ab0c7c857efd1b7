"""The training loop: clips in, checkpoints and metrics out, resumable exactly after a kill.

A run writes into ``config.out``: ``last.safetensors`` (resumable: weights, optimiser, RNG, position),
``best.safetensors`` (best video accuracy so far, for use), ``metrics.csv``, TensorBoard events under
``tb/``, and ``config.yaml``. ``resume=True`` continues from ``last.safetensors`` at the exact
epoch and batch where it stopped: clip sampling depends only on (seed, epoch, item) and the
optimiser, learning-rate position and RNG state are restored, so the resumed run computes the
same updates as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from vidlearn import __version__
from vidlearn.data.dataset import EpochSampler, make_loader
from vidlearn.data.index import VideoIndex
from vidlearn.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from vidlearn.engine.config import TrainConfig
from vidlearn.engine.distributed import Distributed
from vidlearn.engine.evaluate import evaluate_model
from vidlearn.engine.logs import MetricsLog
from vidlearn.engine.inputs import make_dataset, with_store_method
from vidlearn.engine.modeling import build_model, load_initial_weights, model_cost
from vidlearn.engine.runtime import autocast_context, pick_device
from vidlearn.engine.sources import label_subset, load_splits
from vidlearn.speed import optimize_for_training
from vidlearn.errors import BadArgumentError
from vidlearn.progress import progress_bar


# Datasets whose classes name a direction (MoveLeft/MoveRight, "pushing from left to right"):
# mirroring a training clip would give it the wrong label.
DIRECTION_SENSITIVE_FORMATS = ("synthactions", "ssv2")
HEADLINE_METRICS = ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy")


@dataclass
class TrainResult:
    out: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict[str, Any]]
    seconds: float


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up from 0 to ``base_lr`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and normalisation weights (1-D parameters), as is standard for AdamW."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# Below this many multiply-adds per clip the fast training path measured 5-12% slower (the demo's
# 64 x 64 models); above it (the ResNets and MViT at their clip sizes) 1.1-1.2x faster (docs/model-speed.md).
FAST_TRAINING_MIN_FLOPS = 2e9


def use_fast_training(setting: bool | None, device: torch.device, flops_per_clip: int) -> bool:
    """``fast``: True / False, or None (auto: on a CPU, for models where it pays)."""
    if setting is not None:
        return bool(setting) and device.type == "cpu"
    return device.type == "cpu" and flops_per_clip >= FAST_TRAINING_MIN_FLOPS


class Trainer:
    """Trains ``config.model`` on ``config.data``; ``run()`` does the whole job."""

    def __init__(self, config: TrainConfig, resume: bool = False, train_index: VideoIndex | None = None, test_index: VideoIndex | None = None, quiet: bool = False):
        self.config = config
        self.out = Path(config.out)
        self.dist = Distributed.from_environment()
        self.device = pick_device(config.device, self.dist)
        self.quiet = quiet or not self.dist.is_main
        if train_index is None or test_index is None:
            train_index, test_index = load_splits(config.data, config.split, progress=not self.quiet, classes=config.classes)
        train_index = label_subset(train_index, config.label_fraction, config.seed)
        if train_index.class_names != test_index.class_names:
            raise BadArgumentError("train and test subsets disagree on the class list")
        self.class_names = train_index.class_names
        self.config = config = with_store_method(config, train_index.source.root)
        self.hflip = config.hflip if config.hflip is not None else train_index.source.format not in DIRECTION_SENSITIVE_FORMATS
        # uint8 batches from the loader, normalised on the device: a quarter of the bytes to move.
        self.train_set = make_dataset(train_index, config.clip_spec(train=True, hflip=self.hflip), True, config, seed=config.seed, normalize=False)
        self.test_set = make_dataset(test_index, config.clip_spec(train=False), False, config, seed=config.seed)
        torch.manual_seed(config.seed)
        self.model = build_model(config, len(self.class_names))
        if config.init and not resume:
            self.init_report = load_initial_weights(self.model, config.init)
            if not self.quiet:
                print(f"vidlearn: init from {config.init}: {self.init_report.summary()}")
        self.model.to(self.device)
        self.cost = model_cost(self.model, config)
        if use_fast_training(config.fast, self.device, self.cost["flops"]):
            optimize_for_training(self.model)  # in place: same parameters, same state-dict keys
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, config.weight_decay), lr=config.lr)
        self.sampler = EpochSampler(len(self.train_set), shuffle=True, seed=config.seed, rank=self.dist.rank, num_replicas=self.dist.world_size)
        self.loader = make_loader(self.train_set, config.batch_size, self.sampler, config.workers)
        self.steps_per_epoch = self._steps_per_epoch()
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = int(round(config.warmup_epochs * self.steps_per_epoch))
        self.epoch, self.batches_done, self.step = 0, 0, 0
        self.best_accuracy = -1.0
        self.latest_metrics: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        if resume:
            self._resume()
        self.train_model = self.dist.wrap(self.model)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    # -- bookkeeping -----------------------------------------------------------
    def _batches_per_epoch(self) -> int:
        batches = math.ceil(len(self.sampler) / self.config.batch_size)
        limit = self.config.max_steps_per_epoch
        return min(batches, limit * self.config.grad_accum) if limit else batches

    def _steps_per_epoch(self) -> int:
        return math.ceil(self._batches_per_epoch() / self.config.grad_accum)

    def record(self, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON record saved with every checkpoint: enough to reproduce the run and to use the model."""
        spec = self.config.clip_spec(train=False)
        return {
            "library": f"vidlearn {__version__}",
            "model": {"name": self.config.model, "args": self.model_args(), "num_classes": len(self.class_names)},
            "class_names": self.class_names,
            "input": {
                "num_frames": spec.num_frames,
                "stride": spec.stride,
                "target_fps": spec.target_fps,
                "short_side": spec.short_side,
                "size": spec.size,
                "layout": "B x C x T x H x W",
                "normalization": {"mean": list(self.train_set.normalization.mean), "std": list(self.train_set.normalization.std)},
            },
            "data": {
                "path": self.config.data,
                "split": self.config.split,
                "train_videos": len(self.train_set),
                "test_videos": len(self.test_set),
                "format": self.train_set.index.source.format,
            },
            "config": {**self.config.to_dict(), "hflip": self.hflip},
            "params": self.cost["params"],
            "flops_per_view": self.cost["flops"],
            "flops_rule": "one multiply-add = one FLOP",
            "metrics": metrics or {},
            "position": {"epoch": self.epoch, "batches_done": self.batches_done, "step": self.step, "best_video_top1": self.best_accuracy},
            "history": self.history,
        }

    def model_args(self) -> dict[str, Any]:
        return dict(getattr(self.model, "vidlearn_args", {}))

    def _checkpoint(self, name: str, metrics: dict[str, Any] | None = None, resumable: bool = True) -> Path:
        metrics = self.latest_metrics if metrics is None else metrics
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()
        checkpoint = Checkpoint(
            record=self.record(metrics),
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict() if resumable else None,
            rng=rng if resumable else {},
        )
        return save_checkpoint(self.out / f"{name}.safetensors", checkpoint)

    def _resume(self) -> None:
        path = self.out / "last.safetensors"
        checkpoint = load_checkpoint(path)
        saved = checkpoint.record["config"]
        for key in ("model", "data", "batch_size", "num_frames", "size", "seed", "epochs", "grad_accum"):
            if saved.get(key) != getattr(self.config, key):
                raise BadArgumentError(f"{path}: cannot resume: {key} was {saved.get(key)!r}, now {getattr(self.config, key)!r}")
        self.model.load_state_dict(checkpoint.model)
        if checkpoint.optimizer is None:
            raise BadArgumentError(f"{path}: this checkpoint holds no optimiser state; it cannot be resumed")
        self.optimizer.load_state_dict(checkpoint.optimizer)
        torch.set_rng_state(checkpoint.rng["torch"])
        if "cuda" in checkpoint.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(checkpoint.rng["cuda"])
        position = checkpoint.record["position"]
        self.epoch, self.batches_done, self.step = position["epoch"], position["batches_done"], position["step"]
        self.best_accuracy = position["best_video_top1"]
        self.history = checkpoint.record.get("history", [])
        self.latest_metrics = checkpoint.record.get("metrics", {})

    # -- the loop -------------------------------------------------------------
    def run(self) -> TrainResult:
        started = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        log = MetricsLog(self.out, enabled=self.dist.is_main)
        if self.dist.is_main:
            (self.out / "config.yaml").write_text(yaml.safe_dump(self.config.to_dict(), sort_keys=False))
        try:
            while self.epoch < self.config.epochs:
                train_metrics = self._train_epoch()
                self.epoch, self.batches_done = self.epoch + 1, 0
                row = {"epoch": self.epoch, "step": self.step, **train_metrics}
                result = None
                if self.epoch % self.config.eval_every == 0 or self.epoch == self.config.epochs:
                    result = evaluate_model(self.model, self.test_set, self.config.batch_size, self.device, self.config.aggregation, workers=self.config.workers, dist=self.dist, progress=not self.quiet)
                    row.update({f"test_{k}": getattr(result, k) for k in HEADLINE_METRICS})
                    self.latest_metrics = result.to_json()
                self.history.append(row)
                log.write(row)
                if result is not None and self.dist.is_main and result.video_top1 > self.best_accuracy:
                    self.best_accuracy = result.video_top1
                    self._checkpoint("best", metrics=result.to_json(), resumable=False)
                if self.dist.is_main:
                    self._checkpoint("last", metrics=self.latest_metrics)
                    if not self.quiet:
                        print(_epoch_line(row))
        finally:
            log.close()
        best = self.out / "best.safetensors"
        if self.dist.is_main and not best.exists():  # evaluation never ran (eval_every > epochs)
            self._checkpoint("best", resumable=False)
        return TrainResult(self.out, best, self.out / "last.safetensors", self.history, time.perf_counter() - started)

    def _train_epoch(self) -> dict[str, float]:
        config = self.config
        self.train_model.train()
        self.sampler.set_epoch(self.epoch)
        self.sampler.skip = self.batches_done * config.batch_size
        batches = self._batches_per_epoch()
        seen = correct = 0
        loss_sum = 0.0
        started = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with progress_bar(batches, f"epoch {self.epoch + 1}/{config.epochs}", enabled=not self.quiet) as advance:
            advance(self.batches_done)
            for clips, labels in self.loader:
                clips = self.train_set.model_input(clips.to(self.device, non_blocking=True))
                labels = labels.to(self.device, non_blocking=True)
                with autocast_context(config.amp, self.device):
                    logits = self.train_model(clips)
                    loss = self.loss_fn(logits.float(), labels)
                (loss / config.grad_accum).backward()
                self.batches_done += 1
                if self.batches_done % config.grad_accum == 0 or self.batches_done == batches:
                    self._optimizer_step()
                seen += len(labels)
                correct += int((logits.argmax(1) == labels).sum())
                loss_sum += float(loss.detach()) * len(labels)
                rate = seen / max(1e-9, time.perf_counter() - started)
                advance(1, f"loss {loss_sum / seen:.3f} acc {correct / seen:.3f} {rate:.1f} clips/s")
                if config.checkpoint_every and self.step and self.batches_done % (config.checkpoint_every * config.grad_accum) == 0 and self.batches_done < batches and self.dist.is_main:
                    self._checkpoint("last")
                if self.batches_done >= batches:
                    break
        totals = self.dist.sum([loss_sum, correct, seen])
        elapsed = time.perf_counter() - started
        return {"train_loss": totals[0] / max(1, totals[2]), "train_clip_top1": totals[1] / max(1, totals[2]), "clips_per_second": totals[2] / max(1e-9, elapsed), "lr": self.optimizer.param_groups[0]["lr"]}

    def _optimizer_step(self) -> None:
        if self.config.clip_grad:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, self.total_steps, self.warmup_steps, self.config.lr)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1


def _epoch_line(row: dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.3f}", f"train clip acc {row['train_clip_top1']:.3f}", f"{row['clips_per_second']:.1f} clips/s"]
    if "test_video_top1" in row:
        parts += [f"test clip acc {row['test_clip_top1']:.3f}", f"test video acc {row['test_video_top1']:.3f}"]
    return " | ".join(parts)


def train(config: TrainConfig, resume: bool = False, **kwargs) -> TrainResult:
    """Train as configured; see ``Trainer``."""
    trainer = Trainer(config, resume=resume, **kwargs)
    try:
        return trainer.run()
    finally:
        trainer.dist.close()
