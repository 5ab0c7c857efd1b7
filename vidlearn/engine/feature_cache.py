"""Training an LRCN's recurrent head on frame features cached once from its frozen CNN.

The course: "sometimes don't backprop to the CNN to save memory; pretrain and use it as a feature
extractor". When the CNN is frozen (``lrcn(..., freeze_cnn=True)``) its features of a clip never
change, so they can be computed once (``cache_frame_features``) and the LSTM and classifier trained
on them for many epochs without decoding or running the CNN again (``train_on_cached_features``).
With no augmentation this gives the same updates as training the frozen-CNN model on the clips.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from vidlearn.engine.distributed import Distributed
from vidlearn.engine.loop import BatchLoss, LoopSettings, Objective, TrainingLoop
from vidlearn.errors import BadArgumentError
from vidlearn.models.blocks import require_positive


def cache_frame_features(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], device: str | torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a frozen LRCN's CNN once over ``loader``'s ``(clips B x C x T x H x W, labels B)`` batches.

    Moves ``model`` to ``device``. Returns the frame features ``N x T x D`` (float32, on the CPU)
    and the labels ``N`` (int64), in the loader's order.
    """
    _require_frozen_cnn(model)
    model.to(device)
    features, labels = [], []
    with torch.no_grad():
        for clips, batch_labels in loader:
            features.append(model.frame_features(clips.to(device)).float().cpu())
            labels.append(torch.as_tensor(batch_labels, dtype=torch.int64))
    if not features:
        raise BadArgumentError("the loader gave no batches to cache features from")
    return torch.cat(features), torch.cat(labels)


class ContinuedPermutationSampler:
    """Epoch ``e`` visits the samples in the order of the ``(e + 1)``-th ``torch.randperm(size)`` drawn
    from one generator seeded with ``seed`` (one generator for the whole run, as a plain loop would
    draw it). Depends only on (seed, epoch), so a resumed run visits what the whole run would."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch, self.skip = size, seed, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epoch + 1):
            order = torch.randperm(self.size, generator=generator)
        yield from order[self.skip :].tolist()

    def __len__(self) -> int:
        return self.size


class _RecurrentHead(nn.Module):
    """The LRCN's LSTM and classifier as a module of its own: ``N x T x D`` features -> logits."""

    def __init__(self, lrcn: nn.Module):
        super().__init__()
        self.lrcn = lrcn

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.lrcn.recurrent_head(features)


class CachedFeatureClassification(Objective):
    """Cross-entropy of a frozen-CNN LRCN's recurrent head on cached frame features."""

    def __init__(self, model: nn.Module, features: torch.Tensor, labels: torch.Tensor, seed: int):
        self.model = _RecurrentHead(model)
        self.train_set = TensorDataset(features, labels)
        self.seed = seed
        self.device = next(p for p in model.parameters() if p.requires_grad).device
        self.losses: list[float] = []

    def sampler(self, seed: int, dist: Distributed) -> ContinuedPermutationSampler:
        return ContinuedPermutationSampler(len(self.train_set), seed)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> BatchLoss:
        features, labels = batch
        loss = F.cross_entropy(model(features.to(self.device)), labels.to(self.device))
        self.losses.append(loss.item())
        return BatchLoss(loss, len(labels))


def train_on_cached_features(
    model: nn.Module,
    features: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> list[float]:
    """Train ``model``'s trainable parameters (a frozen LRCN's LSTM and classifier) on cached features.

    ``features`` ``N x T x D`` and ``labels`` ``N`` as ``cache_frame_features`` returns them. The
    recipe, run by the one training loop: Adam (AdamW without weight decay) at the constant
    learning rate ``lr``, no warm-up, no clipping; each epoch visits the samples in the order
    ``torch.randperm(N, generator=torch.Generator().manual_seed(seed))`` draws (one generator for
    the whole run), in batches of ``batch_size`` (the last may be smaller); cross-entropy of
    ``model.recurrent_head(features)``. The model is left in training mode with the trained
    weights. Returns the loss of every step.
    """
    _require_frozen_cnn(model)
    require_positive(epochs=epochs, batch_size=batch_size)
    if len(features) != len(labels) or len(features) == 0:
        raise BadArgumentError(
            f"need as many labels as feature sequences (at least one), got {len(features)} and {len(labels)}"
        )
    objective = CachedFeatureClassification(model, features, labels, seed)
    settings = LoopSettings(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=0.0,
        warmup_epochs=0,
        schedule="constant",
        clip_grad=None,
        amp="off",
        seed=seed,
        workers=0,
        progress=False,
    )
    TrainingLoop(objective, settings, objective.device).run()
    return objective.losses


def _require_frozen_cnn(model: nn.Module) -> None:
    if not getattr(model, "freeze_cnn", False):
        raise BadArgumentError(
            "cached frame features are only valid for a model whose CNN does not train; "
            "build it with freeze_cnn=True"
        )
