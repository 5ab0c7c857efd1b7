"""SynthActions rendering: a scene's frames, drawn from its plan."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import NormalDist

import cv2
import numpy as np

from vidlearn.data.synth.scenes import COLOURS, JITTER_MARGIN, MAX_DRIFT, Appearance, Background, Scene

_UNIT_POLYGONS: dict[str, np.ndarray] = {
    # Unit radius, centred, pointing up at angle 0 (y grows downwards).
    "square": np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)]) / math.sqrt(2),
    "triangle": np.array([(math.sin(a), -math.cos(a)) for a in np.radians([0, 120, 240])]),
    "star": np.array(
        [
            (r * math.sin(a), -r * math.cos(a))
            for a, r in zip(np.radians(np.arange(0, 360, 36)), [1.0, 0.42] * 5)
        ]
    ),
    "cross": np.array(
        [
            (-0.3, -1),
            (0.3, -1),
            (0.3, -0.3),
            (1, -0.3),
            (1, 0.3),
            (0.3, 0.3),
            (0.3, 1),
            (-0.3, 1),
            (-0.3, 0.3),
            (-1, 0.3),
            (-1, -0.3),
            (-0.3, -0.3),
        ]
    ),
    "hourglass": np.array([(-0.6, -0.8), (0.6, -0.8), (0.08, 0), (0.6, 0.8), (-0.6, 0.8), (-0.08, 0)]),
}
_SUBPIXEL_BITS = 4  # cv2 drawing with fractional coordinates
# Masks are drawn 4x larger without anti-aliasing, then area-averaged: exact coverage at the edges
# (cv2's own LINE_AA draws a half-pixel outline on top of the fill, making shapes visibly larger).
_SUPERSAMPLE = 4


def _fixed_point(points: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(points) * (1 << _SUBPIXEL_BITS)).astype(np.int32)


def _shape_mask(kind: str, side: int, radius: float) -> np.ndarray:
    """A side x side uint8 coverage mask of ``kind`` with unit radius ``radius`` pixels, centred."""
    big = side * _SUPERSAMPLE
    mask = np.zeros((big, big), np.uint8)
    # Output pixel i averages input pixels [4i, 4i + 4), so its centre sits at input 4i + 1.5.
    centre = np.full(2, (side - 1) / 2 * _SUPERSAMPLE + (_SUPERSAMPLE - 1) / 2)
    scale = radius * _SUPERSAMPLE

    def disc(offset, r, value):
        x, y = _fixed_point(centre + np.asarray(offset) * scale)
        cv2.circle(
            mask, (int(x), int(y)), int(_fixed_point(r * scale)), value, -1, cv2.LINE_8, _SUBPIXEL_BITS
        )

    if kind == "circle":
        disc((0, 0), 1.0, 255)
    elif kind == "ring":
        disc((0, 0), 1.0, 255)
        disc((0, 0), 0.55, 0)
    elif kind == "crescent":  # the bite is on the right, so the mass sits left of centre
        disc((0, 0), 1.0, 255)
        disc((0.45, -0.1), 0.8, 0)
    else:
        polygon = _fixed_point(centre + _UNIT_POLYGONS[kind] * scale)
        cv2.fillPoly(mask, [polygon], 255, cv2.LINE_8, _SUBPIXEL_BITS)
    return cv2.resize(mask, (side, side), interpolation=cv2.INTER_AREA)


def _texture_weight(appearance: Appearance, side: int, radius: float) -> np.ndarray:
    """Where the darker shade shows (0..1), in the shape's own frame so that it turns with it."""
    if appearance.texture == "solid":
        return np.zeros((side, side), np.float32)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) - (side - 1) / 2
    period = appearance.texture_period * radius
    if appearance.texture == "striped":
        theta = math.radians(appearance.texture_angle)
        phase = (xx * math.cos(theta) + yy * math.sin(theta)) / period
        return (np.mod(phase, 1.0) < 0.5).astype(np.float32)
    cell_x = np.mod(xx / period, 1.0) - 0.5
    cell_y = np.mod(yy / period, 1.0) - 0.5
    return (cell_x**2 + cell_y**2 < 0.09).astype(np.float32)


@dataclass(frozen=True)
class Sprite:
    """A shape pre-rendered as premultiplied RGBA at several resolutions (a mip chain), so that
    drawing it small never aliases its texture."""

    levels: tuple[np.ndarray, ...]  # S x S x 4 uint8, each half the size of the previous
    radius: float  # unit radius in pixels at level 0

    @classmethod
    def build(cls, appearance: Appearance, max_radius_px: float) -> Sprite:
        radius = max(max_radius_px, 2.0)
        side = 2 * math.ceil(radius) + 4
        coverage = _shape_mask(appearance.kind, side, radius).astype(np.float32) / 255
        colour = np.asarray(COLOURS[appearance.colour], np.float32)
        shade = _texture_weight(appearance, side, radius)[..., None]
        rgb = colour * (1 - 0.55 * shade)
        rgba = np.concatenate([rgb * coverage[..., None], 255 * coverage[..., None]], axis=2)
        levels = [np.rint(rgba).astype(np.uint8)]
        while levels[-1].shape[0] >= 16:
            levels.append(cv2.pyrDown(levels[-1]))
        return cls(tuple(levels), radius)

    def level_for(self, radius_px: float) -> int:
        """The smallest level still at least as large as the requested radius."""
        if radius_px <= 0:
            return len(self.levels) - 1
        return min(max(math.floor(math.log2(self.radius / radius_px)), 0), len(self.levels) - 1)


def sprite_to_frame(
    centre_x: float, centre_y: float, scale: float, angle_deg: float, sprite_centre: float
) -> np.ndarray:
    """The 2 x 3 affine map from sprite pixels to frame pixels.

    Positive angles turn anticlockwise on screen: with y pointing down, the point above the
    centre goes to the left of it after +90 degrees.
    """
    c = scale * math.cos(math.radians(angle_deg))
    s = scale * math.sin(math.radians(angle_deg))
    return np.array(
        [
            [c, s, centre_x - (c + s) * sprite_centre],
            [-s, c, centre_y - (c - s) * sprite_centre],
        ],
        dtype=np.float64,
    )


def _composite(
    frame: np.ndarray, sprite: Sprite, x: float, y: float, radius: float, angle: float, alpha: float
) -> tuple[int, int, np.ndarray] | None:
    """Draw ``sprite`` into ``frame`` (in place) with its centre at pixel (x, y).

    Returns where it was drawn, ``(x0, y0, coverage)``: the shape's coverage (``h x w`` uint8,
    255 = fully inside, before opacity) of the frame's pixels from (x0, y0) on; None if nothing was.
    """
    if alpha <= 0 or radius <= 0:
        return None
    height, width = frame.shape[:2]
    x0, y0 = max(math.floor(x - radius) - 2, 0), max(math.floor(y - radius) - 2, 0)
    x1, y1 = min(math.ceil(x + radius) + 3, width), min(math.ceil(y + radius) + 3, height)
    if x1 <= x0 or y1 <= y0:
        return None
    level = sprite.level_for(radius)
    rgba = sprite.levels[level]
    # pyrDown keeps pixel k of a level at pixel 2k of the one above, so coordinates halve exactly.
    sprite_centre = (sprite.levels[0].shape[0] - 1) / 2 / 2**level
    matrix = sprite_to_frame(x - x0, y - y0, radius / (sprite.radius / 2**level), angle, sprite_centre)
    warped = cv2.warpAffine(
        rgba, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    roi = frame[y0:y1, x0:x1]
    cover = warped[..., 3:4].astype(np.float32) * (alpha / 255)
    roi[...] = np.rint(roi * (1 - cover) + warped[..., :3].astype(np.float32) * alpha).astype(np.uint8)
    return x0, y0, warped[..., 3]


def _background_texture(background: Background, height: int, width: int) -> np.ndarray:
    """An RGB texture big enough for any drift and jitter window."""
    margin = 2 * (JITTER_MARGIN + MAX_DRIFT)
    rows, cols = height + margin, width + margin
    if background.pattern == "mottled":
        rng = np.random.default_rng(background.texture_seed)
        coarse = rng.random(
            (max(2, round(rows / background.period)) + 1, max(2, round(cols / background.period)) + 1)
        )
        weight = cv2.resize(coarse.astype(np.float32), (cols, rows), interpolation=cv2.INTER_CUBIC)
    else:
        yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
        theta = math.radians(background.angle)
        u = (xx * math.cos(theta) + yy * math.sin(theta)) * (2 * math.pi / background.period)
        v = (yy * math.cos(theta) - xx * math.sin(theta)) * (2 * math.pi / background.period)
        wave = np.sin(u) if background.pattern == "striped" else np.sin(u) * np.sin(v)
        weight = 0.5 + 1.5 * wave  # steep but not hard edges: little aliasing, cheap to encode
    weight = np.clip(weight, 0.0, 1.0)[..., None]
    dark, light = (np.asarray(c, np.float32) for c in background.colours)
    return np.rint(dark + (light - dark) * weight).astype(np.uint8)


def _noise_tables(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables turning uniform bytes into Gaussian noise, split into its positive and
    negative parts so that adding it is two saturating cv2 operations (fast, no int16 copy)."""
    quantiles = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)]) * sigma
    positive = np.clip(np.rint(quantiles), 0, 255).astype(np.uint8)
    negative = np.clip(np.rint(-quantiles), 0, 255).astype(np.uint8)
    return positive, negative


# A pixel belongs to a shape's mask where the shape covers at least half of it.
MASK_COVERAGE = 128


def render_with_instances(scene: Scene) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(frame, instances)`` for each frame: the ``H x W x 3`` uint8 RGB frame and an
    ``H x W`` uint8 map of which track each pixel shows: 0 for the background, ``i + 1`` for
    ``scene.tracks[i]``, where that track's shape covers at least half the pixel (MASK_COVERAGE,
    whatever its opacity, as long as it is drawn at all) and no later track (drawn on top) does.
    """
    camera = scene.camera
    height, width = camera.height, camera.width
    short_side = min(height, width)
    texture = _background_texture(scene.background, height, width)
    # Each sprite is drawn at the largest size its track reaches, so it is only ever scaled down.
    sprites = [
        Sprite.build(t.appearance, t.appearance.size / 2 * short_side * t.pose.scale.max())
        for t in scene.tracks
    ]
    positive, negative = _noise_tables(camera.noise_sigma)
    noise_rng = np.random.default_rng(scene.noise_seed)
    origin = JITTER_MARGIN + MAX_DRIFT
    for k in range(scene.frames):
        (drift_x, drift_y), (shake_x, shake_y) = scene.drift[k], scene.jitter[k]
        top, left = origin + drift_y + shake_y, origin + drift_x + shake_x
        frame = texture[top : top + height, left : left + width].copy()
        instances = np.zeros((height, width), np.uint8)
        for instance_id, (track, sprite) in enumerate(zip(scene.tracks, sprites), start=1):
            j = k - track.start
            if 0 <= j < len(track.pose):
                pose = track.pose
                # The camera moved by the jitter, so everything in the scene shifts the other way.
                drawn = _composite(
                    frame,
                    sprite,
                    pose.x[j] * width - shake_x,
                    pose.y[j] * height - shake_y,
                    track.appearance.size / 2 * short_side * pose.scale[j],
                    pose.angle[j],
                    pose.alpha[j],
                )
                if drawn is not None:
                    x0, y0, coverage = drawn
                    region = instances[y0 : y0 + coverage.shape[0], x0 : x0 + coverage.shape[1]]
                    region[coverage >= MASK_COVERAGE] = instance_id
        uniform = np.frombuffer(noise_rng.bytes(frame.size), np.uint8).reshape(frame.shape)
        frame = cv2.subtract(cv2.add(frame, cv2.LUT(uniform, positive)), cv2.LUT(uniform, negative))
        yield frame, instances


def render(scene: Scene) -> Iterator[np.ndarray]:
    """Yield the scene's frames, ``H x W x 3`` uint8 RGB, one at a time (long videos never sit in memory)."""
    for frame, _ in render_with_instances(scene):
        yield frame


def render_array(scene: Scene) -> np.ndarray:
    """All frames of a (short) scene as one ``T x H x W x 3`` array."""
    return np.stack(list(render(scene)))
