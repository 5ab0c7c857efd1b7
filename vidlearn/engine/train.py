"""Supervised classification of clips: the ``Classification`` objective and ``train``, which runs
it on the one training loop (``vidlearn.engine.loop``).

A run writes into ``config.out``: ``last.safetensors`` (resumable: weights, optimiser, RNG,
position), ``best.safetensors`` (best ``best_metric``, video accuracy by default, for use),
``metrics.csv``, TensorBoard events under ``tb/``, and ``config.yaml``. ``resume=True`` continues
from ``last.safetensors`` at the exact epoch and batch where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.nn import functional as F

from vidlearn.data.dataset import ClipDataset
from vidlearn.data.index import VideoIndex
from vidlearn.engine.checkpoint import load_checkpoint
from vidlearn.engine.config import TrainConfig
from vidlearn.engine.distributed import Distributed, distributed_job
from vidlearn.engine.evaluate import evaluate_model
from vidlearn.engine.inputs import make_dataset, with_store_method
from vidlearn.engine.loop import BatchLoss, Evaluation, LoopSettings, Objective, TrainingLoop
from vidlearn.engine.modeling import build_model, load_initial_weights, model_cost
from vidlearn.engine.runtime import pick_device
from vidlearn.engine.sources import label_subset, load_splits, validation_split
from vidlearn.errors import BadArgumentError
from vidlearn.files import write_text_atomic
from vidlearn.speed import optimize_for_training

# Datasets whose classes name a direction (MoveLeft/MoveRight, "pushing from left to right"):
# mirroring a training clip would give it the wrong label.
DIRECTION_SENSITIVE_FORMATS = ("synthactions", "ssv2")
HEADLINE_METRICS = ("clip_top1", "clip_top5", "video_top1", "video_top5", "mean_class_accuracy")

# Below this many multiply-adds per clip the fast training path measured 5-12% slower (the demo's
# 64 x 64 models); above it (the ResNets and MViT at their clip sizes) 1.1-1.2x faster (docs/model-speed.md).
FAST_TRAINING_MIN_FLOPS = 2e9


@dataclass
class TrainResult:
    """``test``: the test split's evaluation of the model a user should take (``best`` when the run
    validates on a split of its own, else the final model, evaluated after the last epoch):
    headline metrics plus ``details`` (``EvaluationResult.to_json()``, with the confusion matrix)."""

    out: Path
    best_checkpoint: Path
    last_checkpoint: Path
    history: list[dict[str, Any]]
    seconds: float
    test: dict[str, Any]
    stopped_early: bool = False


def use_fast_training(setting: bool | None, device: torch.device, flops_per_clip: int) -> bool:
    """``fast``: True / False, or None (auto: on a CPU, for models where it pays)."""
    if setting is not None:
        return bool(setting) and device.type == "cpu"
    return device.type == "cpu" and flops_per_clip >= FAST_TRAINING_MIN_FLOPS


class Classification(Objective):
    """Cross-entropy on labelled clips; evaluated by clip and video accuracy over clips x crops."""

    resume_keys = ("model", "data", "num_frames", "size")

    def __init__(
        self,
        config: TrainConfig,
        device: torch.device,
        dist: Distributed,
        train_index: VideoIndex,
        test_index: VideoIndex,
        resume: bool = False,
        quiet: bool = False,
    ):
        val_index = None
        if config.val_fraction > 0:  # carved before label_fraction: every run of a study validates alike
            train_index, val_index = validation_split(train_index, config.val_fraction, config.seed)
            self.evaluation_name = "val"
        train_index = label_subset(train_index, config.label_fraction, config.seed)
        if train_index.class_names != test_index.class_names:
            raise BadArgumentError("train and test subsets disagree on the class list")
        self.class_names = train_index.class_names
        self.config = config = with_store_method(config, train_index.source.root)
        self.device, self.quiet = device, quiet
        self.hflip = (
            config.hflip
            if config.hflip is not None
            else train_index.source.format not in DIRECTION_SENSITIVE_FORMATS
        )
        # uint8 batches from the loader, normalised on the device: a quarter of the bytes to move.
        self.train_set = make_dataset(
            train_index,
            config.clip_spec(train=True, hflip=self.hflip),
            True,
            config,
            seed=config.seed,
            normalize=False,
        )
        self.test_set = make_dataset(
            test_index, config.clip_spec(train=False), False, config, seed=config.seed
        )
        self.eval_set = (
            self.test_set
            if val_index is None
            else make_dataset(val_index, config.clip_spec(train=False), False, config, seed=config.seed)
        )
        torch.manual_seed(config.seed)
        self.model = build_model(config, len(self.class_names))
        if config.init and not resume:
            report = load_initial_weights(self.model, config.init)
            if not quiet:
                print(f"vidlearn: init from {config.init}: {report.summary()}")
        self.model.to(device)
        self.cost = model_cost(self.model, config)
        if use_fast_training(config.fast, device, self.cost["flops"]):
            optimize_for_training(self.model)  # in place: same parameters, same state-dict keys

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> BatchLoss:
        clips, labels = batch
        clips = self.train_set.model_input(clips.to(self.device, non_blocking=True))
        labels = labels.to(self.device, non_blocking=True)
        logits = model(clips)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.config.label_smoothing)
        accuracy = float((logits.argmax(1) == labels).sum()) / len(labels)
        return BatchLoss(loss, len(labels), {"clip_top1": accuracy})

    def evaluate(self, dist: Distributed, dataset: ClipDataset | None = None) -> Evaluation:
        """On the validation split if there is one, else on the test split (or on ``dataset``)."""
        config = self.config
        result = evaluate_model(
            self.model,
            self.eval_set if dataset is None else dataset,
            config.batch_size,
            self.device,
            config.aggregation,
            workers=config.workers,
            dist=dist,
            progress=not self.quiet,
        )
        return Evaluation({k: getattr(result, k) for k in HEADLINE_METRICS}, result.to_json())

    def record(self) -> dict[str, Any]:
        """Enough to reproduce the run and to use the model."""
        spec = self.config.clip_spec(train=False)
        return {
            "model": {
                "name": self.config.model,
                "args": dict(getattr(self.model, "vidlearn_args", {})),
                "num_classes": len(self.class_names),
            },
            "class_names": self.class_names,
            "input": {
                "num_frames": spec.num_frames,
                "stride": spec.stride,
                "target_fps": spec.target_fps,
                "short_side": spec.short_side,
                "size": spec.size,
                "layout": "B x C x T x H x W",
                "normalization": {
                    "mean": list(self.train_set.normalization.mean),
                    "std": list(self.train_set.normalization.std),
                },
            },
            "data": {
                "path": self.config.data,
                "split": self.config.split,
                "train_videos": len(self.train_set),
                "val_videos": len(self.eval_set) if self.eval_set is not self.test_set else 0,
                "test_videos": len(self.test_set),
                "format": self.train_set.index.source.format,
            },
            "config": {**self.config.to_dict(), "hflip": self.hflip},
            "params": self.cost["params"],
            "flops_per_view": self.cost["flops"],
            "flops_rule": "one multiply-add = one FLOP",
        }


def final_test(objective: Classification, loop: TrainingLoop, dist: Distributed, out: Path) -> dict[str, Any]:
    """The test split's verdict. Validating runs load ``best.safetensors`` (chosen on validation)
    and evaluate it on the test split once, written to ``test.json``; other runs already evaluated
    the test split after their last epoch."""
    if objective.eval_set is objective.test_set:
        return {**loop.history[-1], "details": loop.latest_evaluation}
    dist.barrier()  # rank 0 writes best.safetensors; every rank reads it
    best = load_checkpoint(out / "best.safetensors")
    objective.model.load_state_dict(best.model)
    evaluation = objective.evaluate(dist, objective.test_set)
    best_epoch = best.record["position"]["epoch"]
    test = {"epoch": best_epoch, **{f"test_{k}": v for k, v in evaluation.metrics.items()}}
    if dist.is_main:
        write_text_atomic(
            out / "test.json", json.dumps({**test, "details": evaluation.details}, indent=1) + "\n"
        )
    return {**test, "details": evaluation.details}


def train(
    config: TrainConfig,
    resume: bool = False,
    train_index: VideoIndex | None = None,
    test_index: VideoIndex | None = None,
    quiet: bool = False,
) -> TrainResult:
    """Train ``config.model`` on ``config.data`` as configured (single process, or every process
    of a torchrun job). The indexes, when given, replace loading ``config.data``'s splits."""
    with distributed_job() as dist:
        device = pick_device(config.device, dist)
        quiet = quiet or not dist.is_main
        if train_index is None or test_index is None:
            train_index, test_index = load_splits(
                config.data, config.split, progress=not quiet, classes=config.classes
            )
        objective = Classification(config, device, dist, train_index, test_index, resume=resume, quiet=quiet)
        loop = TrainingLoop(
            objective,
            LoopSettings.from_config(objective.config, progress=not quiet),
            device,
            dist,
            resume=resume,
        )
        out = Path(config.out)
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.yaml").write_text(yaml.safe_dump(objective.config.to_dict(), sort_keys=False))
        result = loop.run()
        test = final_test(objective, loop, dist, out)
        return TrainResult(
            out,
            out / "best.safetensors",
            out / "last.safetensors",
            result.history,
            result.seconds,
            test,
            result.stopped_early,
        )
