"""Clip transforms: uint8 frames ``T x H x W x 3`` (RGB) in, model-ready float ``C x T x H x W`` out.

Every spatial function takes and returns a uint8 ``T x H x W x 3`` tensor (a numpy array is
accepted and wrapped without a copy). Crops are views that share memory with their input;
resizing and flipping return new tensors. Only :func:`to_float_cthw` leaves uint8.

The two pipelines, :func:`train_views` and :func:`test_views`, resize the short side, crop and
normalise. Test-time multi-view evaluation is clips x crops: the sampler chooses the clips
(``vidlearn.data.samplers``), :func:`test_views` gives the crops of one clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange

from vidlearn.data.samplers import ClipSpec
from vidlearn.errors import BadArgumentError
from vidlearn.io import short_side_size

# Kinetics-400 RGB statistics on [0, 1] pixels, as torchvision's video models are trained with.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)

Size = int | tuple[int, int]


def as_frames(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Check a clip is uint8 ``T x H x W x 3`` and return it as a tensor (numpy: shared memory)."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if not isinstance(frames, torch.Tensor):
        raise BadArgumentError(f"frames must be a tensor or numpy array, got {type(frames).__name__}")
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise BadArgumentError(
            f"frames must be uint8 T x H x W x 3, got {frames.dtype} of shape {tuple(frames.shape)}"
        )
    if min(frames.shape[:3]) < 1:
        raise BadArgumentError(f"frames must not be empty, got shape {tuple(frames.shape)}")
    return frames


def _pair(size: Size) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in pair
    ):
        raise BadArgumentError(f"size must be a positive int or a (height, width) pair, got {size!r}")
    return int(pair[0]), int(pair[1])


def short_side_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) after scaling the short side to ``size``: the same rule as resizing on decode
    (``vidlearn.io.short_side_size``), so frames decoded at the short side are not resized twice."""
    return short_side_size(height, width, size)


def _interpolate_via_float(tchw: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of a uint8 ``T x C x H x W`` batch through one float copy."""
    resized = F.interpolate(tchw.float(), size=shape, mode="bilinear", antialias=True, align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def _interpolate_uint8(tchw: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of a uint8 ``T x C x H x W`` batch, interpolating once."""
    if tchw.device.type == "cpu":
        # torch has a native uint8 antialiased kernel on CPU only: no float copy, about 5x faster.
        return F.interpolate(tchw, size=shape, mode="bilinear", antialias=True, align_corners=False)
    return _interpolate_via_float(tchw, shape)


def resize(frames: torch.Tensor | np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Resize every frame to exactly ``size = (height, width)``: bilinear, antialiased, uint8 out.

    Returns the input unchanged when it already has that size.
    """
    frames = as_frames(frames)
    shape = _pair(size)
    if tuple(frames.shape[1:3]) == shape:
        return frames
    # T x H x W x C viewed as T x C x H x W is channels-last memory, which the uint8 kernel wants.
    resized = _interpolate_uint8(rearrange(frames, "t h w c -> t c h w"), shape)
    return rearrange(resized, "t c h w -> t h w c")


def resize_short_side(frames: torch.Tensor | np.ndarray, size: int) -> torch.Tensor:
    """Resize so the short side is ``size`` and the aspect ratio is kept (see :func:`short_side_shape`)."""
    frames = as_frames(frames)
    size = _pair(size)[0]
    return resize(frames, short_side_shape(frames.shape[1], frames.shape[2], size))


def _crop(frames: torch.Tensor, top: int, left: int, shape: tuple[int, int]) -> torch.Tensor:
    return frames[:, top : top + shape[0], left : left + shape[1]]


def _crop_shape(frames: torch.Tensor, size: Size) -> tuple[int, int]:
    shape = _pair(size)
    height, width = frames.shape[1:3]
    if shape[0] > height or shape[1] > width:
        raise BadArgumentError(f"crop {shape[0]}x{shape[1]} does not fit in frames of {height}x{width}")
    return shape


def random_crop_origin(
    height: int, width: int, shape: tuple[int, int], rng: np.random.Generator
) -> tuple[int, int]:
    """(top, left) of a ``shape`` crop drawn uniformly over all positions where it fits."""
    top = int(rng.integers(0, height - shape[0] + 1))
    left = int(rng.integers(0, width - shape[1] + 1))
    return top, left


def random_crop(frames: torch.Tensor | np.ndarray, size: Size, rng: np.random.Generator) -> torch.Tensor:
    """Crop ``size`` at a position drawn uniformly over all positions where it fits (a view)."""
    frames = as_frames(frames)
    shape = _crop_shape(frames, size)
    return _crop(frames, *random_crop_origin(*frames.shape[1:3], shape, rng), shape)


def random_resized_crop(
    frames: torch.Tensor | np.ndarray,
    size: Size,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """A crop covering a fraction of the frame's area drawn uniformly from ``scale``, of aspect
    ratio (width / height) drawn log-uniformly from ``ratio``, resized to ``size``; the same crop
    for every frame. As torchvision's ``RandomResizedCrop``: ten tries, then the largest centred
    crop within ``ratio``."""
    frames = as_frames(frames)
    height, width = frames.shape[1:3]
    area = height * width
    log_ratio = np.log(ratio)
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = float(np.exp(rng.uniform(*log_ratio)))
        w, h = round(np.sqrt(target_area * aspect)), round(np.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top, left = random_crop_origin(height, width, (h, w), rng)
            return resize(_crop(frames, top, left, (h, w)), _pair(size))
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    return resize(_crop(frames, _centre_offset(height, h), _centre_offset(width, w), (h, w)), _pair(size))


def colour_jitter(
    frames: torch.Tensor | np.ndarray, strength: float, rng: np.random.Generator
) -> torch.Tensor:
    """Brightness, contrast and saturation each scaled by a factor drawn from [1 - strength,
    1 + strength], in that order, the same factors for every frame of the clip (as torchvision's
    ``ColorJitter`` defines them: contrast about the mean grey level, saturation about each pixel's
    grey level). uint8 ``T x H x W x 3`` in and out; ``strength`` 0 returns the input."""
    frames = as_frames(frames)
    if strength == 0:
        return frames
    if not 0 <= strength < 1:
        raise BadArgumentError(f"colour jitter strength must be in [0, 1), got {strength}")
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
    luma = torch.tensor([0.299, 0.587, 0.114])
    x = frames.float() * float(brightness)
    x = x.clamp_(0, 255)
    grey = (x @ luma).mean()
    x = ((x - grey) * float(contrast) + grey).clamp_(0, 255)
    pixel_grey = (x @ luma).unsqueeze(-1)
    x = ((x - pixel_grey) * float(saturation) + pixel_grey).clamp_(0, 255)
    return x.round_().to(torch.uint8)


def _centre_offset(length: int, crop: int) -> int:
    # ceil((length - crop) / 2), PySlowFast's rule: an odd margin puts the extra pixel on top/left.
    return (length - crop + 1) // 2


def center_crop(frames: torch.Tensor | np.ndarray, size: Size) -> torch.Tensor:
    """Crop ``size`` at offsets ``ceil((H - h) / 2)``, ``ceil((W - w) / 2)`` (a view)."""
    frames = as_frames(frames)
    shape = _crop_shape(frames, size)
    top = _centre_offset(frames.shape[1], shape[0])
    left = _centre_offset(frames.shape[2], shape[1])
    return _crop(frames, top, left, shape)


def crop_origins(height: int, width: int, shape: tuple[int, int], num_crops: int) -> list[tuple[int, int]]:
    """(top, left) of the test crops: the centre crop (``num_crops=1``) or the three crops of
    :func:`three_crop`."""
    top = _centre_offset(height, shape[0])
    left = _centre_offset(width, shape[1])
    if num_crops == 1:
        return [(top, left)]
    if height > width:
        return [(y, left) for y in (0, top, height - shape[0])]
    return [(top, x) for x in (0, left, width - shape[1])]


def three_crop(frames: torch.Tensor | np.ndarray, size: Size) -> list[torch.Tensor]:
    """Three crops along the longer side: start, centre, end (views), as PySlowFast's test crops.

    Along the longer side (the width when H <= W, as in PySlowFast's ``spatial_shift_crop``) the
    offsets are ``0``, ``ceil((L - s) / 2)`` and ``L - s``; on the other side the crop is centred
    with ``ceil``. The middle crop equals :func:`center_crop`. (MMAction2's ThreeCrop uses
    ``0, d, 2d`` with ``d = floor((L - s) / 2)``, which differs by one pixel for odd margins.)
    """
    frames = as_frames(frames)
    shape = _crop_shape(frames, size)
    return [_crop(frames, top, left, shape) for top, left in crop_origins(*frames.shape[1:3], shape, 3)]


def horizontal_flip(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Mirror every frame left-right: ``out[:, :, x] = frames[:, :, W - 1 - x]`` (a new tensor)."""
    return torch.flip(as_frames(frames), dims=(2,))


def frame_dropout(frames: torch.Tensor | np.ndarray, p: float, rng: np.random.Generator) -> torch.Tensor:
    """Drop each frame but the first with probability ``p``; a dropped frame shows its predecessor.

    Replacement chains: if frames 3 and 4 are both dropped, both show frame 2, i.e. every output
    frame is the latest kept frame at or before it. T is unchanged; ``p = 0`` returns the frames
    as they are and ``p = 1`` repeats the first frame T times.
    """
    frames = as_frames(frames)
    if not 0.0 <= p <= 1.0:
        raise BadArgumentError(f"frame dropout probability must be in [0, 1], got {p!r}")
    positions = np.arange(frames.shape[0])
    kept = rng.random(frames.shape[0]) >= p
    kept[0] = True
    source = np.maximum.accumulate(np.where(kept, positions, 0))
    return frames[torch.from_numpy(source)]


def _channel_column(values: Sequence[float], name: str) -> torch.Tensor:
    column = torch.tensor([float(v) for v in values], dtype=torch.float32)
    if column.shape != (3,):
        raise BadArgumentError(f"{name} must have one value per RGB channel, got {values!r}")
    return column.view(3, 1, 1, 1)


def to_uint8_cthw(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 ``T x H x W x 3`` -> contiguous uint8 ``C x T x H x W``: the model's layout, a quarter
    of float32's bytes (what a loader worker hands over; :func:`normalize_clips` finishes it)."""
    return rearrange(as_frames(frames), "t h w c -> c t h w").contiguous()


def normalize_clips(
    clips: torch.Tensor,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
) -> torch.Tensor:
    """uint8 ``... x C x T x H x W`` (one clip or a batch, on any device) -> float32,
    ``(x / 255 - mean) / std``. ``mean`` and ``std`` are per RGB channel on the [0, 1] scale."""
    if clips.dtype != torch.uint8 or clips.ndim < 4 or clips.shape[-4] != 3:
        raise BadArgumentError(
            f"clips must be uint8 ... x 3 x T x H x W, got {clips.dtype} of shape {tuple(clips.shape)}"
        )
    std_column = _channel_column(std, "std")
    if (std_column <= 0).any():
        raise BadArgumentError(f"std must be positive, got {std!r}")
    mean_column = _channel_column(mean, "mean")
    # The affine map folded into one multiply-subtract; the same float32 constants on every device.
    scale, shift = (1.0 / (255.0 * std_column)).to(clips.device), (mean_column / std_column).to(clips.device)
    return clips.to(torch.float32).mul_(scale).sub_(shift)


def to_float_cthw(
    frames: torch.Tensor | np.ndarray,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
) -> torch.Tensor:
    """uint8 ``T x H x W x 3`` -> contiguous float32 ``C x T x H x W``, ``(x / 255 - mean) / std``.

    ``mean`` and ``std`` are per RGB channel on the [0, 1] scale.
    """
    return normalize_clips(to_uint8_cthw(frames), mean, std)


def train_views(
    frames: torch.Tensor | np.ndarray,
    spec: ClipSpec,
    rng: np.random.Generator,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    normalize: bool = True,
) -> torch.Tensor:
    """Training view of one clip: short side to ``spec.short_side``, random ``spec.size`` crop (or,
    when ``spec.crop_scale`` < 1, a random-resized crop of ``crop_scale``-1 of the area), horizontal
    flip with probability 1/2 (when ``spec.hflip``), colour jitter of ``spec.colour_jitter``,
    normalised float ``C x T x size x size`` (``normalize=False``: uint8, for
    :func:`normalize_clips` to finish later)."""
    resized = resize_short_side(frames, spec.short_side)
    if spec.crop_scale < 1:
        crop = random_resized_crop(resized, spec.size, rng, scale=(spec.crop_scale, 1.0))
    else:
        crop = random_crop(resized, spec.size, rng)
    if spec.hflip and rng.random() < 0.5:
        crop = horizontal_flip(crop)
    if spec.colour_jitter > 0:
        crop = colour_jitter(crop, spec.colour_jitter, rng)
    return _model_layout(crop, mean, std, normalize)


def test_views(
    frames: torch.Tensor | np.ndarray,
    spec: ClipSpec,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    normalize: bool = True,
) -> list[torch.Tensor]:
    """Test views of one clip: short side to ``spec.short_side``, then ``spec.num_crops`` crops
    of ``spec.size`` (1: centre crop, 3: :func:`three_crop`), each normalised float
    ``C x T x size x size`` (``normalize=False``: uint8)."""
    resized = resize_short_side(frames, spec.short_side)
    crops = [center_crop(resized, spec.size)] if spec.num_crops == 1 else three_crop(resized, spec.size)
    return [_model_layout(crop, mean, std, normalize) for crop in crops]


def _model_layout(
    frames: torch.Tensor, mean: Sequence[float], std: Sequence[float], normalize: bool
) -> torch.Tensor:
    return to_float_cthw(frames, mean, std) if normalize else to_uint8_cthw(frames)


# The name starts with "test": without this, pytest collects it as a test wherever it is imported.
test_views.__test__ = False
