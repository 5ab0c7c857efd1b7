"""Pre-training without labels: VideoMAE (masked tubelet reconstruction) on any videos.

A run writes into ``config.out``: ``last.safetensors`` (the whole masked autoencoder with its
optimiser state, after every epoch: ``resume=True`` continues from it), ``encoder.safetensors``
(the encoder alone, under ``vit_video``'s names, for ``vidlearn train model=vit_video
init=OUT/encoder.safetensors``), ``metrics.csv`` (loss per epoch) and ``reconstruction_eNNN.png``
pictures (original / masked / reconstructed frames of a few fixed clips).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidlearn import __version__
from vidlearn.data.dataset import ClipDataset, EpochSampler, make_loader
from vidlearn.engine.inputs import prepared_store
from vidlearn.data.samplers import ClipSpec
from vidlearn.engine.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from vidlearn.engine.logs import MetricsLog
from vidlearn.engine.runtime import pick_device
from vidlearn.engine.sources import unlabelled_videos
from vidlearn.engine.train import lr_at, parameter_groups
from vidlearn.errors import BadArgumentError
from vidlearn.progress import progress_bar
from vidlearn.ssl.videomae import VideoMAE
from vidlearn.viz.pictures import save_reconstructions

METHODS = ("videomae",)


@dataclass
class PretrainConfig:
    """A pre-training run. ``encoder``: the ViT size (tiny, small, base); clips of ``num_frames``
    frames every ``stride`` frames (or at ``target_fps``), short side ``short_side``, random
    ``size`` crops (mirrored at random unless ``hflip`` is False). AdamW with warm-up and cosine
    decay, the VideoMAE paper's betas (0.9, 0.95) and weight decay 0.05. ``prepared``: frames from a
    ``vidlearn prepare`` store, as in training ("auto", "off" or a store's folder)."""

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
            raise BadArgumentError(f"unknown pre-training method {self.method!r}; available: {', '.join(METHODS)}")
        if self.target_fps is not None:
            self.stride = None

    def clip_spec(self) -> ClipSpec:
        return ClipSpec(num_frames=self.num_frames, stride=self.stride, target_fps=self.target_fps, size=self.size, short_side=self.short_side, hflip=self.hflip)


@dataclass
class PretrainResult:
    out: Path
    encoder_checkpoint: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def pretrain(config: PretrainConfig, resume: bool = False, progress: bool = True) -> PretrainResult:
    """Pre-train a VideoMAE on the videos of ``config.data`` (labels, if any, are not used)."""
    started = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)
    videos = unlabelled_videos(config.data, progress=progress)
    prepared = prepared_store(config.prepared, videos.source.root, config.short_side)
    dataset = ClipDataset(videos, config.clip_spec(), train=True, seed=config.seed, prepared=prepared, normalize=False)
    torch.manual_seed(config.seed)
    model = VideoMAE(config.encoder, config.num_frames, (config.size, config.size), config.mask_ratio).to(device)
    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.95))
    sampler = EpochSampler(len(dataset), shuffle=True, seed=config.seed)
    loader = make_loader(dataset, config.batch_size, sampler, config.workers)
    batches = len(loader) if not config.max_steps_per_epoch else min(len(loader), config.max_steps_per_epoch)
    total_steps, warmup_steps = batches * config.epochs, round(config.warmup_epochs * batches)
    epoch, history = 0, []
    if resume:
        epoch, history = _resume(out / "last.safetensors", config, model, optimizer)
    # The same clips, masks and generator every time, so pictures of successive epochs compare.
    shown = dataset.model_input(torch.stack([dataset[(0, k)][0] for k in range(min(4, len(dataset)))]).to(device))
    log = MetricsLog(out)
    try:
        while epoch < config.epochs:
            model.train()
            sampler.set_epoch(epoch)
            loss_sum, seen, epoch_started = 0.0, 0, time.perf_counter()
            with progress_bar(batches, f"pretrain {epoch + 1}/{config.epochs}", enabled=progress) as advance:
                for step_in_epoch, (clips, _) in enumerate(loader):
                    if step_in_epoch >= batches:
                        break
                    step = epoch * batches + step_in_epoch
                    for group in optimizer.param_groups:
                        group["lr"] = lr_at(step, total_steps, warmup_steps, config.lr)
                    loss, _, _ = model(dataset.model_input(clips.to(device)))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    loss_sum += float(loss.detach()) * len(clips)
                    seen += len(clips)
                    advance(1, f"loss {loss_sum / seen:.4f}")
            epoch += 1
            row = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "clips_per_second": seen / max(time.perf_counter() - epoch_started, 1e-9)}
            history.append(row)
            log.write(row)
            if epoch % config.picture_every == 0 or epoch == config.epochs or epoch == 1:
                model.eval()
                masked, rebuilt = model.reconstruct(shown, generator=torch.Generator(device=device).manual_seed(config.seed))
                save_reconstructions(out / f"reconstruction_e{epoch:03d}.png", shown, masked, rebuilt, dataset.normalization)
            _save(out, config, model, optimizer, epoch, history)
            if progress:
                print(f"epoch {epoch} | masked-tubelet loss {row['train_loss']:.4f} | {row['clips_per_second']:.1f} clips/s")
    finally:
        log.close()
    return PretrainResult(out, out / "encoder.safetensors", history, time.perf_counter() - started)


def _record(config: PretrainConfig, model: VideoMAE, epoch: int, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "library": f"vidlearn {__version__}",
        "kind": "pretraining",
        "config": dataclasses.asdict(config),
        "position": {"epoch": epoch},
        "history": history,
        "mask_ratio": model.mask_ratio,
    }


def _save(out: Path, config: PretrainConfig, model: VideoMAE, optimizer, epoch: int, history: list[dict[str, Any]]) -> None:
    record = _record(config, model, epoch, history)
    save_checkpoint(out / "last.safetensors", Checkpoint(record, model.state_dict(), optimizer.state_dict(), {"torch": torch.get_rng_state()}))
    # The encoder alone, described as the vit_video model it initialises (no classes yet).
    encoder_record = dict(record, model={"name": "vit_video", "args": dict(model.backbone_options), "num_classes": 0})
    save_checkpoint(out / "encoder.safetensors", Checkpoint(encoder_record, model.encoder_state_dict()))


def _resume(path: Path, config: PretrainConfig, model: VideoMAE, optimizer) -> tuple[int, list[dict[str, Any]]]:
    checkpoint = load_checkpoint(path)
    saved = checkpoint.record["config"]
    for key in ("data", "encoder", "num_frames", "size", "batch_size", "epochs", "seed", "mask_ratio"):
        if saved.get(key) != getattr(config, key):
            raise BadArgumentError(f"{path}: cannot resume: {key} was {saved.get(key)!r}, now {getattr(config, key)!r}")
    model.load_state_dict(checkpoint.model)
    optimizer.load_state_dict(checkpoint.optimizer)
    torch.set_rng_state(checkpoint.rng["torch"])
    return checkpoint.record["position"]["epoch"], list(checkpoint.record.get("history", []))
