"""SynthActions trajectories: each class's motion as a pure function of normalised time u in [0, 1]."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pose:
    """Per-frame state of one shape; every field is an array with one value per frame.

    x, y are the centre as fractions of the frame width and height (y grows downwards, as on
    screen); scale multiplies the shape's base size; angle is in degrees, positive meaning
    anticlockwise as seen on screen; alpha is opacity in [0, 1].
    """

    x: np.ndarray
    y: np.ndarray
    scale: np.ndarray
    angle: np.ndarray
    alpha: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def make_pose(u: np.ndarray, x, y, scale=1.0, angle=0.0, alpha=1.0) -> Pose:
    """A Pose from per-frame arrays or constants, all broadcast to the shape of ``u``."""
    u = np.asarray(u, dtype=np.float64)
    return Pose(
        *(
            np.broadcast_to(np.asarray(v, dtype=np.float64), u.shape).copy()
            for v in (x, y, scale, angle, alpha)
        )
    )


@dataclass(frozen=True)
class MotionParams:
    """The random numbers a trajectory may use, drawn the same way for every class.

    Because the draw never depends on the class, a class and its time reverse see identical
    parameter distributions, hence identical distributions of single frames.
    """

    duration: float  # seconds, so periodic motions keep a real-time rate whatever the length
    left_x: float  # the two ends of horizontal travel
    right_x: float
    anchor_x: float  # where a stationary actor stands
    anchor_y: float
    small_scale: float  # the scale range of Grow/Shrink and Approach/Recede
    large_scale: float
    angle: float  # resting orientation, degrees
    turns: float  # how far Rotate* turns over the clip, in full turns
    low_alpha: float  # the opacity range of FadeIn/FadeOut
    high_alpha: float
    horizon_y: float  # Approach/Recede: far (small, high) and near (large, low) rows
    ground_y: float
    bounce_height: float  # fraction of the frame height
    zigzag_amplitude: float  # fraction of the frame height
    orbit_radius_x: float  # fractions of width and height: an ellipse on screen
    orbit_radius_y: float
    shake_amplitude: float  # fraction of the frame size
    shake_direction: float  # degrees: the axis of shaking
    hover_amplitude: float  # the appearance classes barely move
    tempo: float  # multiplies every periodic rate
    phase: float  # in cycles, for periodic motions
    direction: int  # +1 or -1: ZigZag, Orbit and ThereAndBack go either way


# Periodic rates in cycles per second (before ``tempo``); kept below 6 Hz so that even 12 fps
# samples every motion without aliasing.
BOUNCE_HZ = 1.0
ZIGZAG_HZ = 0.8
ORBIT_HZ = 0.35
SHAKE_HZ = 3.0
HOVER_HZ = 0.2


def draw_motion(rng: np.random.Generator, duration: float) -> MotionParams:
    """Draw the motion parameters of one action lasting ``duration`` seconds."""
    return MotionParams(
        duration=duration,
        left_x=rng.uniform(0.15, 0.32),
        right_x=rng.uniform(0.68, 0.85),
        anchor_x=rng.uniform(0.38, 0.62),
        anchor_y=rng.uniform(0.38, 0.62),
        small_scale=rng.uniform(0.45, 0.6),
        large_scale=rng.uniform(1.25, 1.5),
        angle=rng.uniform(0.0, 360.0),
        turns=rng.uniform(0.3, 0.8),
        low_alpha=rng.uniform(0.0, 0.1),
        high_alpha=rng.uniform(0.9, 1.0),
        horizon_y=rng.uniform(0.3, 0.4),
        ground_y=rng.uniform(0.65, 0.72),
        bounce_height=rng.uniform(0.25, 0.4),
        zigzag_amplitude=rng.uniform(0.12, 0.2),
        orbit_radius_x=rng.uniform(0.18, 0.25),
        orbit_radius_y=rng.uniform(0.2, 0.28),
        shake_amplitude=rng.uniform(0.03, 0.05),
        shake_direction=rng.uniform(0.0, 180.0),
        hover_amplitude=rng.uniform(0.005, 0.015),
        tempo=rng.uniform(0.8, 1.25),
        phase=rng.uniform(0.0, 1.0),
        direction=int(rng.choice((-1, 1))),
    )


def _lerp(a: float, b: float, u: np.ndarray) -> np.ndarray:
    return a + (b - a) * u


def _cycles(m: MotionParams, rate_hz: float) -> float:
    return rate_hz * m.tempo * m.duration


def move_left(u: np.ndarray, m: MotionParams) -> Pose:
    """From the right end of travel to the left end, at constant speed."""
    return make_pose(u, _lerp(m.right_x, m.left_x, u), m.anchor_y, angle=m.angle)


def move_right(u: np.ndarray, m: MotionParams) -> Pose:
    return move_left(1.0 - u, m)


def grow(u: np.ndarray, m: MotionParams) -> Pose:
    """In place, from small to large."""
    return make_pose(u, m.anchor_x, m.anchor_y, scale=_lerp(m.small_scale, m.large_scale, u), angle=m.angle)


def shrink(u: np.ndarray, m: MotionParams) -> Pose:
    return grow(1.0 - u, m)


def rotate_anticlockwise(u: np.ndarray, m: MotionParams) -> Pose:
    """In place, turning ``turns`` of a full turn anticlockwise on screen."""
    return make_pose(u, m.anchor_x, m.anchor_y, angle=m.angle + 360.0 * m.turns * u)


def rotate_clockwise(u: np.ndarray, m: MotionParams) -> Pose:
    return rotate_anticlockwise(1.0 - u, m)


def approach(u: np.ndarray, m: MotionParams) -> Pose:
    """Perspective on a ground plane: nearer means larger and lower in the frame, together."""
    return make_pose(
        u,
        m.anchor_x,
        _lerp(m.horizon_y, m.ground_y, u),
        scale=_lerp(m.small_scale, m.large_scale, u),
        angle=m.angle,
    )


def recede(u: np.ndarray, m: MotionParams) -> Pose:
    return approach(1.0 - u, m)


def fade_in(u: np.ndarray, m: MotionParams) -> Pose:
    """In place, opacity rising from nearly invisible to nearly opaque."""
    return make_pose(u, m.anchor_x, m.anchor_y, angle=m.angle, alpha=_lerp(m.low_alpha, m.high_alpha, u))


def fade_out(u: np.ndarray, m: MotionParams) -> Pose:
    return fade_in(1.0 - u, m)


def hover(u: np.ndarray, m: MotionParams) -> Pose:
    """Nearly still: a slow wobble of a few thousandths of the frame, so motion carries no label."""
    theta = 2 * np.pi * (m.phase + _cycles(m, HOVER_HZ) * u)
    return make_pose(
        u,
        m.anchor_x + m.hover_amplitude * np.cos(theta),
        m.anchor_y + m.hover_amplitude * np.sin(theta),
        angle=m.angle,
    )


def bounce(u: np.ndarray, m: MotionParams) -> Pose:
    """A ball bouncing on the ground row (|sin| arcs) while drifting a little sideways."""
    arcs = np.abs(np.sin(np.pi * (m.phase + _cycles(m, BOUNCE_HZ) * u)))
    x = m.anchor_x + m.direction * 0.1 * (u - 0.5)
    return make_pose(u, x, m.ground_y - m.bounce_height * arcs, angle=m.angle)


def _triangle_wave(cycles: np.ndarray) -> np.ndarray:
    """Period 1, values in [-1, 1], straight segments: the zig and the zag."""
    return 4.0 * np.abs(cycles - np.floor(cycles + 0.5)) - 1.0


def zigzag(u: np.ndarray, m: MotionParams) -> Pose:
    """Across the frame (either way) while going up and down along straight lines."""
    start, end = (m.left_x, m.right_x) if m.direction > 0 else (m.right_x, m.left_x)
    y = m.anchor_y + m.zigzag_amplitude * _triangle_wave(m.phase + _cycles(m, ZIGZAG_HZ) * u)
    return make_pose(u, _lerp(start, end, u), y, angle=m.angle)


def orbit(u: np.ndarray, m: MotionParams) -> Pose:
    """Around an ellipse centred at the anchor; direction +1 is clockwise on screen (y down)."""
    theta = 2 * np.pi * (m.phase + m.direction * _cycles(m, ORBIT_HZ) * u)
    return make_pose(
        u,
        m.anchor_x + m.orbit_radius_x * np.cos(theta),
        m.anchor_y + m.orbit_radius_y * np.sin(theta),
        angle=m.angle,
    )


def shake(u: np.ndarray, m: MotionParams) -> Pose:
    """Fast small oscillation in place along a random axis."""
    offset = m.shake_amplitude * np.sin(2 * np.pi * (m.phase + _cycles(m, SHAKE_HZ) * u))
    axis = np.radians(m.shake_direction)
    return make_pose(u, m.anchor_x + offset * np.cos(axis), m.anchor_y + offset * np.sin(axis), angle=m.angle)


def there_and_back(u: np.ndarray, m: MotionParams) -> Pose:
    """From one end of travel to the middle and back, at MoveLeft/MoveRight's speed.

    Direction +1 goes right first. Any short clip looks like MoveLeft or MoveRight; only the
    whole video (long-range structure) shows the return.
    """
    start = m.left_x if m.direction > 0 else m.right_x
    middle = 0.5 * (m.left_x + m.right_x)
    return make_pose(u, _lerp(start, middle, 1.0 - np.abs(2.0 * u - 1.0)), m.anchor_y, angle=m.angle)
