"""Pre-training without labels: the VideoMAE objective (masked tubelet reconstruction) on any
videos, run by the one training loop (``vidlearn.engine.loop``).

A run writes into ``config.out``: ``last.safetensors`` (the whole masked autoencoder with its
optimiser state, after every epoch and every ``checkpoint_every`` steps: ``resume=True``
continues from it exactly), ``encoder.safetensors``
(the encoder alone, under ``vit_video``'s names, for ``vidlearn train model=vit_video
init=OUT/encoder.safetensors``), ``metrics.csv`` (loss per epoch) and ``reconstruction_eNNN.png``
pictures (original / masked / reconstructed frames of a few fixed clips).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidlearn import __version__
from vidlearn.data.dataset import ClipDataset
from vidlearn.data.samplers import ClipSpec
from vidlearn.engine.checkpoint import Checkpoint, save_checkpoint
from vidlearn.engine.distributed import distributed_job
from vidlearn.engine.inputs import prepared_store
from vidlearn.engine.loop import BatchLoss, LoopSettings, Objective, TrainingLoop
from vidlearn.engine.runtime import pick_device
from vidlearn.engine.sources import unlabelled_videos
from vidlearn.errors import BadArgumentError
from vidlearn.ssl.videomae import VideoMAE
from vidlearn.viz.pictures import save_reconstructions

METHODS = ("videomae",)


@dataclass
class PretrainConfig:
    """A pre-training run. ``encoder``: the ViT size (tiny, small, base); clips of ``num_frames``
    frames every ``stride`` frames (or at ``target_fps``), short side ``short_side``, random
    ``size`` crops (mirrored at random unless ``hflip`` is False). AdamW with warm-up and cosine
    decay, the VideoMAE paper's betas (0.9, 0.95) and weight decay 0.05, gradients accumulated over
    ``grad_accum`` batches and clipped to norm ``clip_grad``; ``amp`` and ``checkpoint_every`` as
    in training. ``prepared``: frames from a ``vidlearn prepare`` store, as in training ("auto",
    "off" or a store's folder). Under torchrun each process trains on its share of the clips."""

    data: str = "synth"
    out: str = "runs/pretrain"
    method: str = "videomae"
    encoder: str = "tiny"
    mask_ratio: float = 0.9
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    grad_accum: int = 1
    clip_grad: float | None = 1.0
    amp: str = "auto"
    checkpoint_every: int = 0
    num_frames: int = 16
    stride: int | None = 2
    target_fps: float | None = None
    size: int = 112
    short_side: int = 128
    hflip: bool = True
    seed: int = 0
    workers: int | None = None
    device: str = "auto"
    max_steps_per_epoch: int | None = None
    picture_every: int = 5
    prepared: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise BadArgumentError(
                f"unknown pre-training method {self.method!r}; available: {', '.join(METHODS)}"
            )
        if self.target_fps is not None:
            self.stride = None

    def clip_spec(self) -> ClipSpec:
        return ClipSpec(
            num_frames=self.num_frames,
            stride=self.stride,
            target_fps=self.target_fps,
            size=self.size,
            short_side=self.short_side,
            hflip=self.hflip,
        )


@dataclass
class PretrainResult:
    out: Path
    encoder_checkpoint: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class MaskedVideoModelling(Objective):
    """VideoMAE: reconstruct the pixels of masked space-time tubelets; no labels, no evaluation.
    After each epoch it saves the encoder alone and, every ``picture_every`` epochs, pictures of a
    few fixed clips (original / masked / reconstructed)."""

    resume_keys = ("data", "encoder", "num_frames", "size", "mask_ratio")

    def __init__(self, config: PretrainConfig, device: torch.device, progress: bool = True):
        self.config, self.device = config, device
        videos = unlabelled_videos(config.data, progress=progress)
        prepared = prepared_store(config.prepared, videos.source.root, config.short_side)
        self.train_set = ClipDataset(
            videos, config.clip_spec(), train=True, seed=config.seed, prepared=prepared, normalize=False
        )
        torch.manual_seed(config.seed)
        self.model = VideoMAE(
            config.encoder, config.num_frames, (config.size, config.size), config.mask_ratio
        ).to(device)
        # The same clips, masks and generator every time, so pictures of successive epochs compare.
        shown = torch.stack([self.train_set[(0, k)][0] for k in range(min(4, len(self.train_set)))])
        self.shown = self.train_set.model_input(shown.to(device))

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> BatchLoss:
        clips, _ = batch
        loss, _, _ = model(self.train_set.model_input(clips.to(self.device)))
        return BatchLoss(loss, len(clips))

    def record(self) -> dict[str, Any]:
        return {
            "kind": "pretraining",
            "config": dataclasses.asdict(self.config),
            "mask_ratio": self.model.mask_ratio,
        }

    def after_epoch(self, epoch: int, out: Path | None) -> None:
        config = self.config
        if epoch % config.picture_every == 0 or epoch == config.epochs or epoch == 1:
            self.model.eval()
            generator = torch.Generator(device=self.device).manual_seed(config.seed)
            masked, rebuilt = self.model.reconstruct(self.shown, generator=generator)
            save_reconstructions(
                out / f"reconstruction_e{epoch:03d}.png",
                self.shown,
                masked,
                rebuilt,
                self.train_set.normalization,
            )
        # The encoder alone, described as the vit_video model it initialises (no classes yet).
        record = {"library": f"vidlearn {__version__}", **self.record(), "position": {"epoch": epoch}}
        record["model"] = {"name": "vit_video", "args": dict(self.model.backbone_options), "num_classes": 0}
        save_checkpoint(out / "encoder.safetensors", Checkpoint(record, self.model.encoder_state_dict()))


def pretrain(config: PretrainConfig, resume: bool = False, progress: bool = True) -> PretrainResult:
    """Pre-train a VideoMAE on the videos of ``config.data`` (labels, if any, are not used)."""
    with distributed_job() as dist:
        device = pick_device(config.device, dist)
        progress = progress and dist.is_main
        objective = MaskedVideoModelling(config, device, progress)
        settings = LoopSettings.from_config(config, betas=(0.9, 0.95), progress=progress, label="pretrain")
        result = TrainingLoop(objective, settings, device, dist, resume=resume).run()
        return PretrainResult(result.out, result.out / "encoder.safetensors", result.history, result.seconds)
