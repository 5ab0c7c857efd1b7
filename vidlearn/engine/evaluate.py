"""Evaluation over views (clips x crops) of every test video, on one process or many."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidlearn.data.dataset import ClipDataset, EpochSampler, Normalization, make_loader
from vidlearn.engine.checkpoint import load_checkpoint
from vidlearn.engine.config import TrainConfig
from vidlearn.engine.distributed import Distributed
from vidlearn.engine.inputs import make_dataset
from vidlearn.engine.metrics import EvaluationResult, evaluate_views
from vidlearn.engine.modeling import model_from_record
from vidlearn.engine.runtime import inference_model, pick_device
from vidlearn.engine.sources import load_splits
from vidlearn.errors import BadArgumentError
from vidlearn.progress import progress_bar


@torch.no_grad()
def view_logits(
    model: nn.Module,
    dataset: ClipDataset,
    batch_size: int,
    device: torch.device,
    workers: int | None = None,
    dist: Distributed | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits of every view of every video: ``(N_views x K, labels per view, video id per view)``.

    Under ``torchrun`` each process scores every ``world_size``-th video (no padding) and the
    results are gathered, so every video is counted exactly once.
    """
    dist = dist or Distributed()
    model = inference_model(model, device)
    sampler = EpochSampler(len(dataset), shuffle=False, rank=dist.rank, num_replicas=dist.world_size)
    videos_per_batch = max(1, batch_size // dataset.views_per_video)
    loader = make_loader(dataset, videos_per_batch, sampler, workers)
    logits, labels, videos = [], [], []
    with progress_bar(math.ceil(len(sampler) / videos_per_batch), "evaluating", enabled=progress) as advance:
        for views, label, video in loader:
            batch, per_video = views.shape[:2]
            scores = model(views.flatten(0, 1).to(device)).float().cpu()
            logits.append(scores)
            labels.append(label.repeat_interleave(per_video))
            videos.append(video.repeat_interleave(per_video))
            advance()
    local = (
        (torch.cat(logits).numpy(), torch.cat(labels).numpy(), torch.cat(videos).numpy()) if logits else None
    )
    parts = [p for p in dist.gather_objects(local) if p is not None]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))


def evaluate_model(
    model: nn.Module,
    dataset: ClipDataset,
    batch_size: int,
    device: torch.device,
    aggregation: str = "prob",
    workers: int | None = None,
    dist: Distributed | None = None,
    progress: bool = True,
) -> EvaluationResult:
    """Clip and video accuracy (and the rest of ``EvaluationResult``) of ``model`` on a test dataset."""
    logits, labels, videos = view_logits(model, dataset, batch_size, device, workers, dist, progress)
    return evaluate_views(
        logits,
        labels,
        videos,
        dataset.spec.num_clips,
        dataset.spec.num_crops,
        dataset.class_names,
        mode=aggregation,
    )


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | None = None,
    num_clips: int | None = None,
    num_crops: int | None = None,
    aggregation: str | None = None,
    batch_size: int = 8,
    workers: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate a saved model on the test subset of ``data`` (default: the data it was trained on).

    The clip recipe (frames, stride, sizes, normalisation) comes from the checkpoint; the numbers of
    test clips and crops and the aggregation default to the training run's and can be overridden.
    """
    loaded = load_checkpoint(checkpoint)
    record = loaded.record
    overrides = {"test_clips": num_clips, "test_crops": num_crops, "aggregation": aggregation}
    config = TrainConfig(**{**record["config"], **{k: v for k, v in overrides.items() if v is not None}})
    if config.prepared not in ("auto", "off") and (data or not Path(config.prepared).exists()):
        # The training run's store belongs to its dataset and machine: here, the evaluated dataset's own.
        config = dataclasses.replace(config, prepared="auto")
    _, test_index = load_splits(data or config.data, config.split, progress=progress, classes=config.classes)
    if test_index.class_names != record["class_names"]:
        raise BadArgumentError(
            f"{checkpoint}: the model's classes differ from the dataset's ({len(record['class_names'])} vs {len(test_index.class_names)} classes)"
        )
    model = model_from_record(record)
    model.load_state_dict(loaded.model)
    norm = record["input"]["normalization"]
    dataset = make_dataset(
        test_index,
        config.clip_spec(train=False),
        False,
        config,
        normalization=Normalization(tuple(norm["mean"]), tuple(norm["std"])),
    )
    dist = Distributed.from_environment()
    target = pick_device(device, dist)
    return evaluate_model(
        model.to(target),
        dataset,
        batch_size,
        target,
        config.aggregation,
        workers,
        dist,
        progress and dist.is_main,
    )
