"""The one training loop. Every way of learning in vidlearn is an ``Objective`` that this loop runs.

An objective says what is learnt: the model it trains, the data it learns from, the loss on one
batch (with the metrics worth logging) and, optionally, an evaluation. ``TrainingLoop`` owns the
rest, the same for every objective: AdamW with its parameter groups, linear warm-up then cosine
decay, gradient accumulation and clipping, mixed precision where it pays, the progress bar,
``metrics.csv`` and TensorBoard, atomic safetensors checkpoints with their JSON record, exact
resume after a kill, torchrun data parallelism, evaluation every N epochs and the best checkpoint
by a named metric. ``docs/training.md`` shows a complete new objective.

A run writes into ``settings.out`` (nothing is written when it is None): ``last.safetensors``
(resumable: weights, optimiser, RNG and position in the run, after every epoch and every
``checkpoint_every`` optimiser steps), ``best.safetensors`` (the weights with the best
``best_metric`` so far, when the objective evaluates), ``metrics.csv`` and ``tb/``. Resuming is
exact: the sampler's order depends only on (seed, epoch), the dataset's randomness on (seed,
epoch, item), and the optimiser, schedule position and RNG are restored, so a resumed run
computes the same updates as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from vidlearn import __version__
from vidlearn.data.dataset import EpochSampler, make_loader
from vidlearn.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from vidlearn.engine.distributed import Distributed
from vidlearn.engine.logs import MetricsLog
from vidlearn.engine.runtime import autocast_context
from vidlearn.errors import BadArgumentError
from vidlearn.progress import progress_bar

SCHEDULES = ("cosine", "constant")
RESUME_SETTINGS = ("batch_size", "epochs", "grad_accum", "seed")


@dataclass
class BatchLoss:
    """What an objective's ``loss`` returns: the loss to minimise (a scalar tensor, the mean over
    the batch), how many samples it averages, and metrics of the batch as plain floats (means over
    the batch; the loop logs their sample-weighted epoch averages as ``train_<name>``)."""

    loss: torch.Tensor
    count: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Evaluation:
    """What an objective's ``evaluate`` returns: headline numbers (logged as ``test_<name>``, and
    one of them may choose the best checkpoint) and the full JSON-able result kept in checkpoints."""

    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


class Objective:
    """A way of learning. Subclasses set ``model`` and ``train_set`` and define ``loss``.

    ``loss(model, batch)`` receives the module to call, which is ``self.model`` or, under
    torchrun, its DistributedDataParallel wrapper: call it (its ``forward``) so that gradients are
    averaged across processes. ``batch`` is what the loader collates from ``train_set``'s items.
    """

    model: nn.Module
    train_set: Dataset
    #: What ``evaluate`` measures on, the prefix of its metrics in logs: "test", or "val" for a
    #: validation split carved from the training data.
    evaluation_name: str = "test"
    #: Config keys (of ``record()["config"]``) that must be unchanged for a run to resume.
    resume_keys: tuple[str, ...] = ()

    def loss(self, model: nn.Module, batch: Any) -> BatchLoss:
        raise NotImplementedError

    def evaluate(self, dist: Distributed) -> Evaluation | None:
        """Called every ``eval_every`` epochs and after the last one; None: this objective has none."""
        return None

    def record(self) -> dict[str, Any]:
        """JSON-able description saved in every checkpoint (model name and arguments, config, data...)."""
        return {}

    def sampler(self, seed: int, dist: Distributed) -> EpochSampler:
        """The training order: shuffled by (seed, epoch), each process its share under torchrun."""
        return EpochSampler(
            len(self.train_set), shuffle=True, seed=seed, rank=dist.rank, num_replicas=dist.world_size
        )

    def parameter_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        return parameter_groups(self.model, weight_decay)

    def after_epoch(self, epoch: int, out: Path | None) -> None:
        """Called on the main process after each epoch's training, before its checkpoint (pictures, exports)."""


@dataclass
class LoopSettings:
    """How to optimise. ``lr`` is the peak learning rate, reached after ``warmup_epochs`` of linear
    warm-up; ``schedule`` "cosine" then decays it to zero at the end, "constant" keeps it.
    ``grad_accum`` batches are summed into one optimiser step; gradients are clipped to norm
    ``clip_grad`` (None: not clipped). ``amp``: see ``runtime.autocast_context``.
    ``checkpoint_every``: also save ``last`` every so many optimiser steps inside an epoch (0: at
    epoch ends only). ``best_metric``: the evaluation metric that picks ``best.safetensors``, larger
    is better unless ``best_mode`` is "min". ``patience``: stop early when ``best_metric`` has not
    improved for this many evaluations in a row (None: run every epoch). ``max_steps_per_epoch``
    caps an epoch (smoke runs)."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 1.0
    schedule: str = "cosine"
    grad_accum: int = 1
    clip_grad: float | None = 1.0
    amp: str = "auto"
    seed: int = 0
    workers: int | None = None
    eval_every: int = 1
    checkpoint_every: int = 0
    max_steps_per_epoch: int | None = None
    best_metric: str | None = None
    best_mode: str = "max"
    patience: int | None = None
    out: Path | None = None
    progress: bool = True
    label: str = "epoch"

    @classmethod
    def from_config(cls, config: Any, **changes: Any) -> LoopSettings:
        """The loop's share of a run's config dataclass (every field of the same name), then ``changes``."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in dataclasses.asdict(config).items() if k in names}
        return cls(**{**values, **changes})

    def __post_init__(self) -> None:
        if self.out is not None:
            self.out = Path(self.out)
        if self.schedule not in SCHEDULES:
            raise BadArgumentError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.best_mode not in ("max", "min"):
            raise BadArgumentError(f"best_mode must be max or min, got {self.best_mode!r}")
        if self.patience is not None:
            if self.best_metric is None:
                raise BadArgumentError("patience needs a best_metric to watch")
            if int(self.patience) < 1:
                raise BadArgumentError(f"patience must be at least 1, got {self.patience}")
        for name in ("epochs", "batch_size", "grad_accum", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise BadArgumentError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class LoopResult:
    out: Path | None
    history: list[dict[str, Any]]
    seconds: float
    stopped_early: bool = False


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float, schedule: str = "cosine") -> float:
    """Linear warm-up from 0 to ``base_lr`` over ``warmup_steps``, then cosine decay to 0 at
    ``total_steps`` (or ``base_lr`` kept, for the "constant" schedule)."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and normalisation weights (1-D parameters), as is standard for AdamW.
    Frozen parameters (``requires_grad=False``) are left out."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class TrainingLoop:
    """Runs ``objective`` as ``settings`` say; ``run()`` does the whole job.

    ``device`` is where the objective's model already lives; ``dist`` the torchrun process group
    (``Distributed()`` for one process). ``resume=True`` continues from ``out/last.safetensors``.
    """

    def __init__(
        self,
        objective: Objective,
        settings: LoopSettings,
        device: torch.device,
        dist: Distributed | None = None,
        resume: bool = False,
    ):
        self.objective, self.settings, self.device = objective, settings, device
        self.dist = dist or Distributed()
        self.out = Path(settings.out) if settings.out is not None else None
        self.show = settings.progress and self.dist.is_main
        self.optimizer = torch.optim.AdamW(
            objective.parameter_groups(settings.weight_decay), lr=settings.lr, betas=tuple(settings.betas)
        )
        self.sampler = objective.sampler(settings.seed, self.dist)
        self.loader = make_loader(objective.train_set, settings.batch_size, self.sampler, settings.workers)
        self.batches_per_epoch = self._batches_per_epoch()
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / settings.grad_accum)
        self.total_steps = self.steps_per_epoch * settings.epochs
        self.warmup_steps = int(round(settings.warmup_epochs * self.steps_per_epoch))
        self.epoch, self.batches_done, self.step = 0, 0, 0
        # The epoch's running sums (samples, loss, metrics), kept in mid-epoch checkpoints so that
        # a resumed epoch reports the same averages as an uninterrupted one.
        self.epoch_sums: dict[str, float] = {}
        self.best_value: float | None = None
        # Evaluations in a row without a better best_metric, and whether patience ran out.
        self.stale_evaluations, self.stopped_early = 0, False
        self.latest_evaluation: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        if resume:
            self._resume()
        self.train_model = self.dist.wrap(objective.model)

    def _batches_per_epoch(self) -> int:
        batches = math.ceil(len(self.sampler) / self.settings.batch_size)
        limit = self.settings.max_steps_per_epoch
        return min(batches, limit * self.settings.grad_accum) if limit else batches

    # -- checkpoints -----------------------------------------------------------
    def record(self, evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON record of a checkpoint: the objective's description, the latest evaluation,
        where the run stands and its history."""
        best = {
            "metric": self.settings.best_metric,
            "mode": self.settings.best_mode,
            "value": self.best_value,
        }
        return {
            "library": f"vidlearn {__version__}",
            **self.objective.record(),
            "loop": {
                k: v for k, v in dataclasses.asdict(self.settings).items() if k not in ("out", "progress")
            },
            "metrics": self.latest_evaluation if evaluation is None else evaluation,
            "position": {
                "epoch": self.epoch,
                "batches_done": self.batches_done,
                "step": self.step,
                "best": best,
                "stale_evaluations": self.stale_evaluations,
                "stopped_early": self.stopped_early,
                "epoch_sums": self.epoch_sums,
            },
            "history": self.history,
        }

    def save(self, name: str, evaluation: dict[str, Any] | None = None, resumable: bool = True) -> Path:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state()
        checkpoint = Checkpoint(
            record=self.record(evaluation),
            model=self.objective.model.state_dict(),
            optimizer=self.optimizer.state_dict() if resumable else None,
            rng=rng if resumable else {},
        )
        return save_checkpoint(self.out / f"{name}.safetensors", checkpoint)

    def _resume(self) -> None:
        if self.out is None:
            raise BadArgumentError("cannot resume a run that writes no checkpoints (no out folder)")
        path = self.out / "last.safetensors"
        checkpoint = load_checkpoint(path)
        saved_config, config = checkpoint.record.get("config", {}), self.objective.record().get("config", {})
        changes = [(key, saved_config.get(key), config.get(key)) for key in self.objective.resume_keys]
        # The order of updates depends on these: a changed one would not continue the same run.
        saved_loop = checkpoint.record.get("loop", {})
        changes += [(key, saved_loop.get(key), getattr(self.settings, key)) for key in RESUME_SETTINGS]
        for key, before, now in changes:
            if before != now:
                raise BadArgumentError(f"{path}: cannot resume: {key} was {before!r}, now {now!r}")
        if checkpoint.optimizer is None:
            raise BadArgumentError(f"{path}: this checkpoint holds no optimiser state; it cannot be resumed")
        self.objective.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        torch.set_rng_state(checkpoint.rng["torch"])
        if "cuda" in checkpoint.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(checkpoint.rng["cuda"])
        position = checkpoint.record["position"]
        self.epoch, self.batches_done, self.step = (
            position["epoch"],
            position["batches_done"],
            position["step"],
        )
        self.best_value = position.get("best", {}).get("value")
        self.stale_evaluations = position.get("stale_evaluations", 0)
        self.stopped_early = position.get("stopped_early", False)
        self.epoch_sums = dict(position.get("epoch_sums", {}))
        self.history = list(checkpoint.record.get("history", []))
        self.latest_evaluation = checkpoint.record.get("metrics", {})

    # -- the loop ---------------------------------------------------------------
    def run(self) -> LoopResult:
        started = time.perf_counter()
        writes = self.out is not None and self.dist.is_main
        if writes:
            self.out.mkdir(parents=True, exist_ok=True)
        log = MetricsLog(self.out, enabled=writes) if self.out is not None else None
        try:
            while self.epoch < self.settings.epochs and not self.stopped_early:
                row = self._train_epoch()
                self.epoch, self.batches_done, self.epoch_sums = self.epoch + 1, 0, {}
                row = {"epoch": self.epoch, "step": self.step, **row}
                evaluation = None
                if self.epoch % self.settings.eval_every == 0 or self.epoch == self.settings.epochs:
                    evaluation = self.objective.evaluate(self.dist)
                if evaluation is not None:
                    name = self.objective.evaluation_name
                    row.update({f"{name}_{k}": v for k, v in evaluation.metrics.items()})
                    self.latest_evaluation = evaluation.details
                self.history.append(row)
                if self.dist.is_main:
                    self.objective.after_epoch(self.epoch, self.out)
                if log is not None:
                    log.write(row)
                if evaluation is not None and self._improves(evaluation):
                    self.best_value = evaluation.metrics[self.settings.best_metric]
                    self.stale_evaluations = 0
                    if writes:
                        self.save("best", evaluation=evaluation.details, resumable=False)
                elif evaluation is not None and self.settings.best_metric is not None:
                    self.stale_evaluations += 1
                    patience = self.settings.patience
                    self.stopped_early = patience is not None and self.stale_evaluations >= patience
                if writes:
                    self.save("last")
                if self.show:
                    print(epoch_line(row))
                    if self.stopped_early:
                        print(
                            f"stopped early after epoch {self.epoch}: {self.settings.best_metric} has not "
                            f"improved for {self.stale_evaluations} evaluations (best {self.best_value:.4f})"
                        )
        finally:
            if log is not None:
                log.close()
        if writes and self.settings.best_metric and not (self.out / "best.safetensors").exists():
            self.save("best", resumable=False)  # evaluation never ran (eval_every > epochs)
        return LoopResult(self.out, self.history, time.perf_counter() - started, self.stopped_early)

    def _improves(self, evaluation: Evaluation) -> bool:
        name = self.settings.best_metric
        if name is None:
            return False
        if name not in evaluation.metrics:
            raise BadArgumentError(
                f"best_metric {name!r} is not among the evaluation's metrics: {', '.join(evaluation.metrics)}"
            )
        value = evaluation.metrics[name]
        if self.best_value is None:
            return True
        return value > self.best_value if self.settings.best_mode == "max" else value < self.best_value

    def _train_epoch(self) -> dict[str, float]:
        settings, objective = self.settings, self.objective
        self.train_model.train()
        self.sampler.set_epoch(self.epoch)
        self.sampler.skip = self.batches_done * settings.batch_size
        batches = self.batches_per_epoch
        sums = self.epoch_sums if self.batches_done else {}
        self.epoch_sums = sums
        sums.setdefault("samples", 0)
        sums.setdefault("loss", 0.0)
        started_with = sums["samples"]
        started = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with progress_bar(
            batches, f"{settings.label} {self.epoch + 1}/{settings.epochs}", enabled=self.show
        ) as advance:
            advance(self.batches_done)
            for batch in self.loader:
                boundary = (
                    self.batches_done + 1
                ) % settings.grad_accum == 0 or self.batches_done + 1 == batches
                # Between optimiser steps DDP need not average gradients: one all-reduce per step.
                sync = (
                    contextlib.nullcontext()
                    if boundary or not self.dist.enabled
                    else self.train_model.no_sync()
                )
                with sync:
                    with autocast_context(settings.amp, self.device):
                        result = objective.loss(self.train_model, batch)
                    (result.loss / settings.grad_accum).backward()
                self.batches_done += 1
                if boundary:
                    self._optimizer_step()
                sums["samples"] += result.count
                sums["loss"] += float(result.loss.detach()) * result.count
                for name, value in result.metrics.items():
                    sums[name] = sums.get(name, 0.0) + value * result.count
                seen = sums["samples"]
                rate = (seen - started_with) / max(1e-9, time.perf_counter() - started)
                shown = " ".join(
                    f"{k} {v / seen:.3f}" for k, v in sums.items() if k not in ("samples", "loss")
                )
                advance(1, f"loss {sums['loss'] / seen:.4f} {shown} {rate:.1f}/s")
                if self._checkpoint_due(batches):
                    self.save("last")
                if self.batches_done >= batches:
                    break
        names = [k for k in sums if k not in ("samples", "loss")]
        totals = self.dist.sum(
            [sums["loss"], sums["samples"], sums["samples"] - started_with, *(sums[k] for k in names)]
        )
        count = max(1, totals[1])
        elapsed = max(1e-9, time.perf_counter() - started)
        row = {
            "train_loss": totals[0] / count,
            **{f"train_{k}": v / count for k, v in zip(names, totals[3:])},
        }
        return {**row, "clips_per_second": totals[2] / elapsed, "lr": self.optimizer.param_groups[0]["lr"]}

    def _checkpoint_due(self, batches: int) -> bool:
        every = self.settings.checkpoint_every
        if not every or not self.step or self.out is None or not self.dist.is_main:
            return False
        return self.batches_done % (every * self.settings.grad_accum) == 0 and self.batches_done < batches

    def _optimizer_step(self) -> None:
        if self.settings.clip_grad:
            nn.utils.clip_grad_norm_(self.objective.model.parameters(), self.settings.clip_grad)
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(
                self.step, self.total_steps, self.warmup_steps, self.settings.lr, self.settings.schedule
            )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1


def epoch_line(row: dict[str, Any]) -> str:
    """One line per epoch: ``epoch 3 | loss 0.812 | train clip_top1 0.700 | 41.2 clips/s | test video_top1 0.650``."""
    parts = [f"epoch {row['epoch']}", f"loss {row['train_loss']:.4f}"]
    parts += [
        f"train {k[6:]} {v:.3f}" for k, v in row.items() if k.startswith("train_") and k != "train_loss"
    ]
    parts.append(f"{row['clips_per_second']:.1f} clips/s")
    parts += [
        f"{k.split('_', 1)[0]} {k.split('_', 1)[1]} {v:.3f}"
        for k, v in row.items()
        if k.startswith(("test_", "val_"))
    ]
    return " | ".join(parts)
