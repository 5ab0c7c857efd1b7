"""Row 4 of `make bench`: end-to-end training throughput against the model alone.

The demo's configuration (SynthActions, 16 frames at 8 fps, short side 64, 64 x 64 crops, batch 8,
read from a prepared store, the loader's default split; the goal applies to it):
clips/s of training steps fed by the real ``ClipDataset`` + ``DataLoader`` (vidlearn.data.make_loader)
against the same steps on a batch already in memory (model-only, all cores computing). The ratio says
how well loading hides behind compute. Each way of sharing the two cores between decoding workers and
the training step is measured, from the original files and from a prepared store.

Steady state only: each end-to-end measurement starts the loader (its workers fork and fill their
queues), drops the first batches, times ``steps`` batches (running on across epochs as training
does), then stops the workers, so that none of them decodes while the model-only side is measured.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from dataclasses import dataclass

import torch
from harness import Context, Row, alternate, row_from
from torch import nn

from vidlearn.data.dataset import ClipDataset, EpochSampler, make_loader
from vidlearn.data.formats import load_synthactions
from vidlearn.data.prepared import PreparedSettings, PreparedStore, prepare_videos
from vidlearn.engine.config import TrainConfig
from vidlearn.engine.modeling import build_model

GOAL_E2E = ">= 0.9"
DEMO_MODELS = (
    "single_frame",
    "slow_fusion",
)  # the lightest and the main model of the demo: the hardest to hide loading behind
WARM_BATCHES = 3


@dataclass(frozen=True)
class Split:
    """How the cores are shared: decoding worker processes and the training step's threads."""

    workers: int
    threads: int

    def __str__(self) -> str:
        return f"{self.workers} loader worker(s) + {self.threads} compute thread(s)"


SPLITS = (Split(2, 2), Split(1, 2), Split(0, 2))


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, clips: torch.Tensor, labels: torch.Tensor
) -> None:
    loss = nn.functional.cross_entropy(model(clips), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def model_only(model, optimizer, batch, steps: int, threads: int):
    clips, labels = batch

    def measure() -> float:
        torch.set_num_threads(threads)
        start = time.perf_counter()
        for _ in range(steps):
            train_step(model, optimizer, clips, labels)
        return steps * len(clips) / (time.perf_counter() - start)

    return measure


def batches_forever(dataset: ClipDataset, batch_size: int, workers: int, first_epoch: int):
    """Training batches epoch after epoch from one loader, as the training loop draws them."""
    sampler = EpochSampler(len(dataset), shuffle=True, seed=0)
    loader = make_loader(dataset, batch_size, sampler, workers)
    epoch = first_epoch
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def end_to_end(model, optimizer, dataset: ClipDataset, batch_size: int, split: Split, steps: int):
    """As the training loop does it: uint8 batches from the loader, normalised by ``model_input``."""
    epochs = [0]

    def measure() -> float:
        torch.set_num_threads(split.threads)
        epochs[0] += 10
        batches = batches_forever(dataset, batch_size, split.workers, epochs[0])
        for _ in range(WARM_BATCHES):
            next(batches)
        start = time.perf_counter()
        done = 0
        for _ in range(steps):
            clips, labels = next(batches)
            train_step(model, optimizer, dataset.model_input(clips), labels)
            done += len(clips)
        rate = done / (time.perf_counter() - start)
        batches.close()  # the loader goes, and its workers with it
        gc.collect()
        return rate

    return measure


def run(ctx: Context) -> list[Row]:
    if ctx.synth_root is None:
        ctx.log("end-to-end: no SynthActions dataset, skipped")
        return []
    config = TrainConfig(
        model="single_frame",
        data=str(ctx.synth_root),
        num_frames=16,
        stride=None,
        target_fps=8.0,
        size=64,
        short_side=64,
        batch_size=8,
    )
    if ctx.tiny:
        config = TrainConfig(
            model="course_3d",
            data=str(ctx.synth_root),
            num_frames=4,
            stride=None,
            target_fps=8.0,
            size=32,
            short_side=32,
            batch_size=2,
        )
    models = ("course_3d",) if ctx.tiny else DEMO_MODELS
    splits = (Split(1, 1), Split(0, 2)) if ctx.tiny else SPLITS
    steps = 2 if ctx.tiny else 8
    threads = torch.get_num_threads()
    index = load_synthactions(ctx.synth_root, subset="train")
    folder = ctx.work_dir / "prepared-e2e"
    prepare_videos(
        [e.path for e in index.entries],
        folder,
        index.source.root,
        PreparedSettings(short_side=config.short_side),
        progress=False,
    )
    sources = {
        "original files": None,
        "prepared store": PreparedStore(folder, index.source.root),
    }
    rows: list[Row] = []
    for name in models:
        config = dataclasses.replace(config, model=name)
        torch.manual_seed(0)
        model = build_model(config, len(index.class_names))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        spec = config.clip_spec(train=True, hflip=False)
        shape = (config.batch_size, 3, config.num_frames, config.size, config.size)
        batch = (torch.randn(shape), torch.randint(0, len(index.class_names), (config.batch_size,)))
        baseline = model_only(model, optimizer, batch, steps, threads)
        baseline()  # warm-up: allocator, thread pool, first-call kernels
        for source, store in sources.items():
            dataset = ClipDataset(index, spec, train=True, seed=0, prepared=store, normalize=False)
            default_workers = make_loader(
                dataset, config.batch_size, EpochSampler(len(dataset), shuffle=True)
            ).num_workers
            for split in splits:
                ctx.log(f"end-to-end {name}, {source}, {split}")
                repeats = min(ctx.repeats, 2)  # each end-to-end measurement starts its workers: seconds each
                ours, peer = alternate(
                    end_to_end(model, optimizer, dataset, config.batch_size, split, steps),
                    baseline,
                    repeats,
                    warmup=False,
                )
                # The goal is the demo's configuration: a prepared store, the loader's default split.
                demo_setting = store is not None and split.workers == default_workers
                rows.append(
                    row_from(
                        f"{name}, {source}: {split}",
                        ours,
                        peer,
                        unit="clips/s",
                        goal=GOAL_E2E if demo_setting else "",
                        peer_name=f"model only ({threads} threads)",
                        group="e2e",
                        note="the demo's setting (loader default)"
                        if demo_setting
                        else ("loader default" if split.workers == default_workers else ""),
                    )
                )
    torch.set_num_threads(threads)
    return rows
