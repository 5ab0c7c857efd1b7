"""Pictures of clips: masked-autoencoder reconstructions (original / masked / reconstructed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from vidlearn.files import atomic_path


def clip_to_uint8(clip: torch.Tensor, mean, std) -> np.ndarray:
    """Normalised float ``C x T x H x W`` -> uint8 ``T x H x W x 3`` RGB."""
    mean_column = torch.tensor(mean, dtype=clip.dtype, device=clip.device).view(3, 1, 1, 1)
    std_column = torch.tensor(std, dtype=clip.dtype, device=clip.device).view(3, 1, 1, 1)
    pixels = (clip * std_column + mean_column).clamp(0, 1) * 255
    return pixels.round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()


def save_reconstructions(
    path: str | Path,
    clips: torch.Tensor,
    masked: torch.Tensor,
    rebuilt: torch.Tensor,
    normalization,
    frames: int = 3,
) -> Path:
    """A PNG grid: one row per clip, and for ``frames`` evenly spaced frames the original, the
    masked input the encoder saw (masked tubelets grey) and the reconstruction."""
    mean, std = normalization.mean, normalization.std
    rows = []
    for original, hidden, rebuilt_clip in zip(clips, masked, rebuilt):
        t = original.shape[1]
        picks = np.linspace(0, t - 1, frames).round().astype(int)
        images = [clip_to_uint8(c, mean, std) for c in (original, hidden, rebuilt_clip)]
        hidden_pixels = (hidden == 0).all(dim=0).cpu().numpy()  # masked tubelets were zeroed
        images[1][hidden_pixels] = 128
        tiles = [
            np.pad(images[kind][k], ((2, 2), (2, 2), (0, 0)), constant_values=255)
            for k in picks
            for kind in range(3)
        ]
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    path = Path(path)
    with atomic_path(path, suffix=".png") as temporary:
        cv2.imwrite(temporary, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    return path
