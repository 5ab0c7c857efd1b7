"""The colour-wheel picture of optical flow: hue is the direction, saturation the magnitude.

As in the Middlebury flow pictures the course shows, a pixel that does not move is white and a
fast one is a saturated colour; the legend wheel shows which colour means which direction (its
rim is the magnitude ``max_magnitude``). Directions are screen directions: y grows downwards, so
red (hue 0) is rightwards and the hues turn clockwise on screen (down is yellow-green, left cyan,
up violet).
"""

from __future__ import annotations

import cv2
import numpy as np

from vidlearn.errors import BadArgumentError


def check_flow(flow: np.ndarray) -> np.ndarray:
    """Raise ``BadArgumentError`` unless ``flow`` is a float ``... x H x W x 2`` array."""
    flow = np.asarray(flow)
    if flow.ndim < 3 or flow.shape[-1] != 2 or not np.issubdtype(flow.dtype, np.floating):
        raise BadArgumentError(f"expected float flow of shape ... x H x W x 2, got {flow.dtype} {flow.shape}")
    return flow


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """``H x W x 2`` (or ``N x H x W x 2``) flow -> uint8 RGB picture of the same height and width.

    ``max_magnitude``: the displacement (pixels) drawn fully saturated; larger ones are clipped.
    ``None`` uses the largest magnitude in ``flow`` (a still video is then all white).
    """
    flow = check_flow(flow).astype(np.float32, copy=False)
    if flow.ndim == 4:
        limit = max_magnitude if max_magnitude is not None else _largest_magnitude(flow)
        return np.stack([flow_to_rgb(f, limit) for f in flow])
    magnitude, angle = cv2.cartToPolar(flow[..., 0], flow[..., 1], angleInDegrees=True)
    limit = max_magnitude if max_magnitude is not None else _largest_magnitude(flow)
    if limit <= 0:
        return np.full((*flow.shape[:2], 3), 255, np.uint8)
    hsv = np.empty((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = np.round(angle / 2) % 180  # OpenCV's 8-bit hue is degrees / 2
    hsv[..., 1] = np.clip(magnitude / limit * 255, 0, 255).astype(np.uint8)
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _largest_magnitude(flow: np.ndarray) -> float:
    return float(np.sqrt((flow.astype(np.float64) ** 2).sum(-1)).max()) if flow.size else 0.0


def color_wheel(size: int = 64) -> np.ndarray:
    """The legend: a ``size x size`` RGB disc whose pixel at offset (dx, dy) from the centre has the
    colour of the flow (dx, dy); the rim is full magnitude, the outside is white."""
    if size < 8:
        raise BadArgumentError(f"the colour wheel needs at least 8 pixels, got {size}")
    radius = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) - radius
    wheel = flow_to_rgb(np.stack([x, y], axis=-1), max_magnitude=radius)
    wheel[np.hypot(x, y) > radius] = 255
    return wheel


def with_legend(picture: np.ndarray, size: int | None = None) -> np.ndarray:
    """A copy of the ``H x W x 3`` picture with the colour wheel in its bottom-right corner."""
    height, width = picture.shape[:2]
    size = size or max(16, min(height, width) // 4)
    if size + 2 > min(height, width):
        return picture.copy()
    out = picture.copy()
    out[height - size - 2 : height - 2, width - size - 2 : width - 2] = color_wheel(size)
    return out
