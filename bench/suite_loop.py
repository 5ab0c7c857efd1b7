"""Row 7 of `make bench`: vidlearn's training loop against a plain, hand-written PyTorch loop.

The goal ("the loop costs nothing"): training clips/s of ``TrainingLoop`` running the real
``Classification`` objective >= 0.98x a plain loop (loader, model, optimiser step, nothing else)
on the same data and model, in two settings: the demo's (SynthActions from a prepared store,
16 frames at 8 fps, short side 64, 64 x 64 crops, batch 8; slow_fusion, its main model, and
single_frame, its lightest) and r3d_18 at 16 x 112 x 112 (the training defaults: stride 2, short
side 128 from a prepared store; batch 4).

Both sides train the objective's model (``Classification`` builds it; for r3d_18, at >= 2 GFLOPs
per clip, it applies ``optimize_for_training`` in place, so the plain loop trains the same
optimised model), reset to the same initial weights before every measurement, with a fresh AdamW
of the same hyper-parameters and parameter groups, fed by a loader with the same settings
(``make_loader``, ``EpochSampler(shuffle=True, seed)``, the loader's default workers) over the
same dataset object. The plain loop is ``model_input``, cross-entropy, ``zero_grad``,
``backward``, ``clip_grad_norm_``, ``step``: nothing else.

The loop runs as in real use: ``out`` is a folder (checkpoints after every epoch, metrics.csv and
TensorBoard), gradient clipping at 1.0, the learning-rate schedule, per-step loss and accuracy
sums; its progress bar is off (a bench is not a terminal: the bar would be disabled anyway).
Timed: the training epochs (``TrainingLoop._train_epoch``, from the start of its loader to the
last step; the plain loop the same span), ``epochs`` x ``steps`` batches. Not timed: what runs
between epochs — the evaluation (on a one-video test set, so that it is short) and the epoch's
bookkeeping (checkpoints, metrics.csv, TensorBoard) — whose cost per epoch is reported in the
note, with its share of one full epoch of that setting (``len(train) / batch`` steps).
"""

from __future__ import annotations

import dataclasses
import gc
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from harness import Context, Row, alternate, row_from
from torch.nn import functional as F

from vidlearn.data.dataset import EpochSampler, make_loader
from vidlearn.data.formats import load_synthactions
from vidlearn.data.prepared import PreparedSettings, prepare_videos
from vidlearn.engine.config import TrainConfig
from vidlearn.engine.distributed import Distributed
from vidlearn.engine.loop import LoopSettings, TrainingLoop, parameter_groups
from vidlearn.engine.train import Classification, use_fast_training

GOAL_LOOP = ">= 0.98"


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    config: TrainConfig  # without data/out/prepared: filled in by run()
    epochs: int
    steps: int | None  # batches per epoch (None: the whole epoch)
    # At least this many alternating repeats outside --tiny: short measurements, many of them, so
    # that the median ratio holds on a shared machine.
    repeats: int = 3


def cases(tiny: bool) -> list[Case]:
    if tiny:
        small = TrainConfig(
            model="course_3d", num_frames=4, stride=None, target_fps=8.0, size=32, short_side=32, batch_size=2
        )
        return [
            Case("course_3d, tiny", small, epochs=2, steps=2),
            Case(
                "course_3d, tiny, optimize_for_training",
                dataclasses.replace(small, fast=True),
                epochs=1,
                steps=2,
            ),
        ]
    demo = TrainConfig(
        model="slow_fusion",
        num_frames=16,
        stride=None,
        target_fps=8.0,
        size=64,
        short_side=64,
        batch_size=8,
        lr=3e-3,
    )
    r3d = TrainConfig(model="r3d_18", num_frames=16, stride=2, size=112, short_side=128, batch_size=4)
    return [
        Case("slow_fusion, the demo's setting", demo, epochs=6, steps=None, repeats=7),
        Case(
            "single_frame, the demo's setting",
            dataclasses.replace(demo, model="single_frame"),
            epochs=6,
            steps=None,
            repeats=7,
        ),
        Case("r3d_18, 16 x 112 x 112", r3d, epochs=1, steps=4),
    ]


class TimedClassification(Classification):
    """The real objective; only the time its evaluation takes is noted (it is left out of the timing)."""

    evaluate_seconds = 0.0

    def evaluate(self, dist):
        started = time.perf_counter()
        try:
            return super().evaluate(dist)
        finally:
            self.evaluate_seconds += time.perf_counter() - started


class TimedLoop(TrainingLoop):
    """The real loop; only the wall time of each training epoch is noted."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch_seconds: list[float] = []

    def _train_epoch(self):
        started = time.perf_counter()
        row = super()._train_epoch()
        self.epoch_seconds.append(time.perf_counter() - started)
        return row


def settings_of(config: TrainConfig) -> LoopSettings:
    """The loop's settings as ``train()`` makes them from its config (progress bar off)."""
    return LoopSettings.from_config(config, progress=False)


def clips_in(batches: int, batch_size: int, dataset_size: int, epochs: int) -> int:
    per_epoch = min(dataset_size, batches * batch_size)
    return per_epoch * epochs


def run(ctx: Context) -> list[Row]:
    if ctx.synth_root is None:
        ctx.log("loop: no SynthActions dataset, skipped")
        return []
    threads = torch.get_num_threads()
    device = torch.device("cpu")
    train_index, test_index = (
        load_synthactions(ctx.synth_root, subset="train"),
        load_synthactions(ctx.synth_root, subset="test"),
    )
    # One test video: the evaluation after the last epoch runs (as in real use) but stays short.
    test_index = dataclasses.replace(test_index, entries=(test_index.entries or train_index.entries)[:1])
    rows: list[Row] = []
    prepared: dict[int, Path] = {}
    for case in cases(ctx.tiny):
        side = case.config.short_side
        if side not in prepared:
            prepared[side] = ctx.work_dir / f"prepared-loop-s{side}"
            ctx.log(f"loop: preparing SynthActions at short side {side}")
            prepare_videos(
                [e.path for e in (*train_index, *test_index)],
                prepared[side],
                train_index.source.root,
                PreparedSettings(short_side=side),
                progress=False,
            )
        ctx.log(f"loop: {case.name}")
        rows.append(measure_case(ctx, case, train_index, test_index, prepared[side], device))
        gc.collect()
    torch.set_num_threads(threads)
    return rows


def measure_case(ctx: Context, case: Case, train_index, test_index, store: Path, device: torch.device) -> Row:
    runs_dir = Path(tempfile.mkdtemp(prefix="loop-runs-", dir=ctx.work_dir))
    config = dataclasses.replace(
        case.config,
        data=str(ctx.synth_root),
        prepared=str(store),
        out=str(runs_dir / "run"),
        epochs=case.epochs,
        max_steps_per_epoch=case.steps,
        eval_every=10_000,
        test_clips=1,
        seed=0,
    )
    dist = Distributed()
    objective = TimedClassification(config, device, dist, train_index, test_index, quiet=True)
    model, dataset = objective.model, objective.train_set
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    base = settings_of(objective.config)
    batch_size = base.batch_size
    full_epoch_batches = -(-len(dataset) // batch_size)
    batches = min(full_epoch_batches, case.steps or full_epoch_batches)
    clips = clips_in(batches, batch_size, len(dataset), case.epochs)
    workers = make_loader(dataset, batch_size, EpochSampler(len(dataset), shuffle=True)).num_workers
    between: list[float] = []  # per epoch: the loop's time outside its training epochs, less the evaluation
    runs = [0]

    def ours() -> float:
        model.load_state_dict(initial)
        runs[0] += 1
        settings = dataclasses.replace(base, out=runs_dir / f"loop-{runs[0]}")
        loop = TimedLoop(objective, settings, device, dist)
        objective.evaluate_seconds = 0.0
        started = time.perf_counter()
        loop.run()
        total = time.perf_counter() - started
        trained = sum(loop.epoch_seconds)
        between.append((total - trained - objective.evaluate_seconds) / case.epochs)
        shutil.rmtree(settings.out)  # r3d_18's checkpoints: 0.5 GB a run
        return clips / trained

    def plain() -> float:
        model.load_state_dict(initial)
        sampler = EpochSampler(len(dataset), shuffle=True, seed=base.seed)
        loader = make_loader(dataset, batch_size, sampler, base.workers)
        optimizer = torch.optim.AdamW(
            parameter_groups(model, base.weight_decay), lr=base.lr, betas=tuple(base.betas)
        )
        model.train()
        done, seconds = 0, 0.0
        for epoch in range(case.epochs):
            started = time.perf_counter()
            sampler.set_epoch(epoch)
            for step, (clips_, labels) in enumerate(loader):
                loss = F.cross_entropy(model(dataset.model_input(clips_)), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), base.clip_grad)
                optimizer.step()
                done += len(labels)
                if step + 1 == batches:
                    break
            seconds += time.perf_counter() - started
        assert done == clips, (done, clips)
        return done / seconds

    repeats = ctx.repeats if ctx.tiny else max(ctx.repeats, case.repeats)
    ours_values, plain_values = alternate(ours, plain, repeats)
    per_epoch = statistics.median(between[1:] or between)  # the warm-up run left out
    full_epoch = full_epoch_batches * batch_size / statistics.median(ours_values)
    fast = (
        "optimize_for_training (both sides)"
        if use_fast_training(objective.config.fast, device, objective.cost["flops"])
        else "plain model (both sides)"
    )
    cfg = objective.config
    frames = (
        f"{cfg.num_frames} frames at {cfg.target_fps:g} fps"
        if cfg.target_fps
        else f"{cfg.num_frames} frames, stride {cfg.stride}"
    )
    note = (
        f"TrainingLoop + Classification (out folder, clip 1.0, schedule, loss/accuracy sums) vs a plain loop; "
        f"batch {batch_size}, {frames}, short side {cfg.short_side}, {cfg.size} x {cfg.size}, prepared store, {workers} loader worker(s), "
        f"{dataset.__class__.__name__} of {len(dataset)} videos; {fast}; timed: {case.epochs} epoch(s) x {batches} batches, "
        f"{clips} clips per measurement; between epochs (not timed, evaluation left out): {per_epoch:.2f} s per epoch "
        f"(checkpoints, metrics.csv, TensorBoard) = {per_epoch / full_epoch:.1%} of a full epoch ({full_epoch_batches} batches, {full_epoch:.0f} s)"
    )
    return row_from(
        case.name,
        ours_values,
        plain_values,
        unit="clips/s",
        goal=GOAL_LOOP,
        peer_name=f"plain PyTorch loop ({torch.get_num_threads()} threads)",
        note=note,
        group="loop",
    )
