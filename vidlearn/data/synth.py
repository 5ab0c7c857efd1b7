"""SynthActions: a procedurally rendered action dataset that makes the course's lessons measurable.

Every video shows one *actor* (a textured shape) doing one action over a textured, possibly
drifting background, with distractor shapes, camera jitter and sensor noise. The classes are
chosen so that each lesson of the course becomes a number you can measure:

* time-reversed pairs (MoveLeft/MoveRight, Grow/Shrink, ...): one class is the other played
  backwards, so the distribution of single frames is identical and a single-frame model is at
  chance within a pair; only motion tells them apart;
* appearance classes (Ring, Crescent, Hourglass): one frame decides, motion says nothing;
* motion-pattern classes (Bounce, ZigZag, Orbit, Shake): defined by how the actor moves;
* ThereAndBack: each half looks like MoveLeft or MoveRight; only the whole video decides
  (long-range structure).

Everything is deterministic: each video's random numbers derive from (seed, its identity), never
from the order of work, so any number of workers gives byte-identical files. docs/synthactions.md
describes each class and how it is rendered.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from statistics import NormalDist
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from vidlearn.errors import BadArgumentError
from vidlearn.files import write_text_atomic
from vidlearn.io import write_video
from vidlearn.progress import progress_bar

SYNTH_VERSION = 3

# ----------------------------------------------------------------------------------------------
# Trajectories: pure functions of normalised time u in [0, 1]
# ----------------------------------------------------------------------------------------------


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
    return Pose(*(np.broadcast_to(np.asarray(v, dtype=np.float64), u.shape).copy() for v in (x, y, scale, angle, alpha)))


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


# ----------------------------------------------------------------------------------------------
# Classes
# ----------------------------------------------------------------------------------------------

# Shapes any actor (and every distractor) may take; the appearance classes own three more kinds
# so that the kind alone decides them.
GENERIC_KINDS = ("circle", "square", "triangle", "star", "cross")
APPEARANCE_KINDS = ("ring", "crescent", "hourglass")
# A rotating plain circle looks still, so the Rotate* pair uses the kinds whose turn you can see.
TURNABLE_KINDS = ("square", "triangle", "star", "cross")


@dataclass(frozen=True)
class ActionClass:
    name: str
    family: str  # "time-reversed", "appearance", "motion" or "long-range"
    description: str  # what the class is and which lesson it tests
    trajectory: Callable[[np.ndarray, MotionParams], Pose]
    phrase: str  # the caption's verb phrase; {side} and {turning} come from the motion's direction
    kinds: tuple[str, ...] = GENERIC_KINDS


def _pair_text(motion: str, reverse: str) -> str:
    return (
        f"The actor {motion}. Time-reversed twin of {reverse}:"
        " identical single-frame statistics, only motion separates them."
    )


def _appearance_text(kind: str) -> str:
    return f"A {kind} that barely moves: one frame decides the class, motion carries no information."


CLASSES: tuple[ActionClass, ...] = (
    ActionClass("MoveLeft", "time-reversed", _pair_text("moves from right to left", "MoveRight"), move_left, "moves left"),
    ActionClass("MoveRight", "time-reversed", _pair_text("moves from left to right", "MoveLeft"), move_right, "moves right"),
    ActionClass("Grow", "time-reversed", _pair_text("grows in place", "Shrink"), grow, "grows"),
    ActionClass("Shrink", "time-reversed", _pair_text("shrinks in place", "Grow"), shrink, "shrinks"),
    ActionClass(
        "RotateClockwise",
        "time-reversed",
        _pair_text("turns clockwise in place", "RotateAnticlockwise"),
        rotate_clockwise,
        "rotates clockwise",
        TURNABLE_KINDS,
    ),
    ActionClass(
        "RotateAnticlockwise",
        "time-reversed",
        _pair_text("turns anticlockwise in place", "RotateClockwise"),
        rotate_anticlockwise,
        "rotates anticlockwise",
        TURNABLE_KINDS,
    ),
    ActionClass(
        "Approach", "time-reversed", _pair_text("comes nearer: larger and lower together", "Recede"), approach, "comes closer"
    ),
    ActionClass(
        "Recede", "time-reversed", _pair_text("goes away: smaller and higher together", "Approach"), recede, "moves away"
    ),
    ActionClass("FadeIn", "time-reversed", _pair_text("fades in", "FadeOut"), fade_in, "fades in"),
    ActionClass("FadeOut", "time-reversed", _pair_text("fades out", "FadeIn"), fade_out, "fades out"),
    ActionClass("Ring", "appearance", _appearance_text("ring"), hover, "hovers in place", ("ring",)),
    ActionClass("Crescent", "appearance", _appearance_text("crescent"), hover, "hovers in place", ("crescent",)),
    ActionClass("Hourglass", "appearance", _appearance_text("hourglass"), hover, "hovers in place", ("hourglass",)),
    ActionClass("Bounce", "motion", "The actor bounces along the ground: a motion pattern.", bounce, "bounces"),
    ActionClass("ZigZag", "motion", "The actor crosses the frame in a zigzag: a motion pattern.", zigzag, "zigzags across"),
    ActionClass("Orbit", "motion", "The actor circles around a point: a motion pattern.", orbit, "circles {turning}"),
    ActionClass("Shake", "motion", "The actor shakes quickly in place: a motion pattern.", shake, "shakes in place"),
    ActionClass(
        "ThereAndBack",
        "long-range",
        "The actor goes to the middle and returns. Any short clip looks like MoveLeft or MoveRight;"
        " only the whole video shows the return (long-range structure).",
        there_and_back,
        "goes {side} and comes back",
    ),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
TIME_REVERSED_PAIRS: tuple[tuple[str, str], ...] = (
    ("MoveLeft", "MoveRight"),
    ("Grow", "Shrink"),
    ("RotateClockwise", "RotateAnticlockwise"),
    ("Approach", "Recede"),
    ("FadeIn", "FadeOut"),
)


def class_by_name(name: str) -> ActionClass:
    for action in CLASSES:
        if action.name == name:
            return action
    raise BadArgumentError(f"unknown SynthActions class {name!r}; known: {', '.join(CLASS_NAMES)}")


# ----------------------------------------------------------------------------------------------
# Scene parameters (drawn from the RNG; small, picklable, no pixels yet)
# ----------------------------------------------------------------------------------------------

# Named so that captions say exactly what was drawn.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 40),
    "green": (50, 190, 60),
    "cyan": (40, 210, 225),
    "blue": (45, 85, 235),
    "purple": (145, 60, 210),
    "magenta": (230, 50, 200),
    "white": (245, 245, 245),
}
TEXTURES = ("solid", "striped", "dotted")
BACKGROUND_PATTERNS = ("striped", "checkered", "mottled")

JITTER_MARGIN = 4  # pixels: camera jitter never exceeds this
MAX_DRIFT = 48  # pixels: how far a drifting background may travel over a whole video


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    fps: int
    jitter_sigma: float  # pixels, per frame
    noise_sigma: float  # 8-bit levels


@dataclass(frozen=True)
class Background:
    pattern: str
    colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    period: float  # pixels
    angle: float  # degrees
    texture_seed: int  # the mottled pattern's random field


@dataclass(frozen=True)
class Appearance:
    kind: str
    colour: str
    texture: str
    size: float  # diameter at scale 1, as a fraction of the frame's shorter side
    texture_angle: float  # degrees
    texture_period: float  # fraction of the shape's radius


@dataclass(frozen=True)
class Track:
    """One shape on screen from frame ``start`` for ``len(pose)`` frames."""

    appearance: Appearance
    pose: Pose
    start: int = 0


@dataclass(frozen=True)
class Scene:
    """Everything needed to render a video, frame by frame."""

    camera: Camera
    frames: int
    background: Background
    drift: np.ndarray  # frames x 2 integer (dx, dy) offsets of the background
    jitter: np.ndarray  # frames x 2 integer (dx, dy) camera shake
    tracks: tuple[Track, ...]
    noise_seed: int


def _draw_camera(rng: np.random.Generator) -> Camera:
    width = int(rng.choice(np.arange(128, 321, 16)))
    aspect = (3, 4) if rng.random() < 0.5 else (9, 16)
    height = 2 * round(width * aspect[0] / aspect[1] / 2)  # yuv420p needs even sizes
    return Camera(width, height, int(rng.integers(12, 31)), rng.uniform(0.0, 1.5), rng.uniform(1.0, 5.0))


def _muted_colour(rng: np.random.Generator, value: float) -> tuple[int, int, int]:
    """A low-saturation colour, so that the saturated actors stand out from any background."""
    hue = rng.uniform(0, 180)
    hsv = np.uint8([[[hue, rng.uniform(20, 90), value]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _draw_background(rng: np.random.Generator, camera: Camera) -> Background:
    dark = rng.uniform(50, 100)
    light = dark + rng.uniform(35, 70)
    return Background(
        pattern=str(rng.choice(BACKGROUND_PATTERNS)),
        colours=(_muted_colour(rng, dark), _muted_colour(rng, light)),
        period=rng.uniform(0.08, 0.25) * min(camera.width, camera.height),
        angle=rng.uniform(0, 180),
        texture_seed=int(rng.integers(2**31)),
    )


def _draw_appearance(
    rng: np.random.Generator, kinds: Sequence[str], size_range=(0.16, 0.34), textures=TEXTURES
) -> Appearance:
    return Appearance(
        kind=str(rng.choice(kinds)),
        colour=str(rng.choice(list(COLOURS))),
        texture=str(rng.choice(textures)),
        size=rng.uniform(*size_range),
        texture_angle=rng.uniform(0, 180),
        texture_period=rng.uniform(0.35, 0.6),
    )


def _draw_drift(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Half the backgrounds stay put; the others glide at most MAX_DRIFT pixels in a straight line."""
    ramp = np.linspace(0.0, 1.0, frames)[:, None]
    travel = rng.uniform(-MAX_DRIFT, MAX_DRIFT, size=2) * (rng.random() < 0.5)
    return np.rint(np.maximum(-travel, 0) + ramp * travel).astype(np.int64)


def _draw_jitter(rng: np.random.Generator, camera: Camera, frames: int) -> np.ndarray:
    jitter = np.rint(rng.normal(0.0, camera.jitter_sigma, size=(frames, 2)))
    return np.clip(jitter, -JITTER_MARGIN, JITTER_MARGIN).astype(np.int64)


def _reflect(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Fold a free path back into [low, high], as if bouncing off the walls."""
    q = (values - low) / (high - low)
    return low + (high - low) * (1.0 - np.abs(np.mod(q, 2.0) - 1.0))


def _draw_distractor(rng: np.random.Generator, frames: int, fps: int) -> Track:
    """A small plain shape wandering with a randomly turning heading and a random spin."""
    appearance = _draw_appearance(rng, GENERIC_KINDS, size_range=(0.06, 0.11), textures=("solid",))
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 1.5 / math.sqrt(fps), frames))
    speed = rng.uniform(0.05, 0.2) / fps  # frame fractions per frame
    start = rng.uniform(0.1, 0.9, size=2)
    x = _reflect(start[0] + np.cumsum(speed * np.cos(heading)), 0.05, 0.95)
    y = _reflect(start[1] + np.cumsum(speed * np.sin(heading)), 0.05, 0.95)
    angle = rng.uniform(0, 360) + rng.uniform(-90, 90) / fps * np.arange(frames)
    return Track(appearance, make_pose(np.zeros(frames), x, y, angle=angle))


def _draw_distractors(rng: np.random.Generator, frames: int, fps: int) -> tuple[Track, ...]:
    return tuple(_draw_distractor(rng, frames, fps) for _ in range(int(rng.integers(0, 4))))


def _normalised_time(frames: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, frames)


def _actor_track(rng: np.random.Generator, action: ActionClass, frames: int, fps: int, start: int) -> Track:
    """A fresh actor doing ``action`` for ``frames`` frames from frame ``start``."""
    appearance = _draw_appearance(rng, action.kinds)
    motion = draw_motion(rng, frames / fps)
    return Track(appearance, action.trajectory(_normalised_time(frames), motion), start)


# ----------------------------------------------------------------------------------------------
# Captions
# ----------------------------------------------------------------------------------------------

_COUNT_WORDS = ("one", "two", "three")


def _size_word(size: float) -> str:
    return "small" if size < 0.22 else "medium-sized" if size < 0.28 else "large"


def caption(action: ActionClass, appearance: Appearance, motion: MotionParams, scene: Scene) -> str:
    """One sentence built from the render parameters, e.g.

    "a small red striped square moves left over a checkered background, with two other shapes moving around".
    """
    texture = "" if appearance.texture == "solid" else f"{appearance.texture} "
    verb = action.phrase.format(
        side="right" if motion.direction > 0 else "left",
        turning="clockwise" if motion.direction > 0 else "anticlockwise",
    )
    drifting = "drifting " if np.any(scene.drift != scene.drift[0]) else ""
    text = (
        f"a {_size_word(appearance.size)} {appearance.colour} {texture}{appearance.kind} {verb}"
        f" over a {drifting}{scene.background.pattern} background"
    )
    others = len(scene.tracks) - 1
    if others:
        text += f", with {_COUNT_WORDS[others - 1]} other shape{'s' if others > 1 else ''} moving around"
    return text


# ----------------------------------------------------------------------------------------------
# Plans: what each video contains, derived from (seed, identity) only
# ----------------------------------------------------------------------------------------------

# Distinct streams so that a trimmed clip and an untrimmed video never share random numbers.
_CLIP_STREAM = 0
_UNTRIMMED_STREAM = 1


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(key))


def _scene(rng: np.random.Generator, camera: Camera, background: Background, frames: int, actors: tuple[Track, ...]) -> Scene:
    """A scene around the given actors: background drift, camera jitter, distractors and noise drawn from ``rng``."""
    return Scene(
        camera=camera,
        frames=frames,
        background=background,
        drift=_draw_drift(rng, frames),
        jitter=_draw_jitter(rng, camera, frames),
        tracks=(*actors, *_draw_distractors(rng, frames, camera.fps)),
        noise_seed=int(rng.integers(2**31)),
    )


@dataclass(frozen=True)
class ClipPlan:
    """One trimmed clip: its place in the dataset, its scene and its caption."""

    label: int  # 0-based index into CLASSES
    group: int  # 1-based, as in UCF101
    clip: int  # 1-based within the group
    scene: Scene
    caption: str

    @property
    def relative_path(self) -> str:
        """Path relative to DIR/clips, UCF101 style."""
        name = CLASS_NAMES[self.label]
        return f"{name}/{name}_g{self.group:02d}_c{self.clip:02d}.mp4"


def plan_clip(seed: int, label: int, group: int, clip: int) -> ClipPlan:
    """The clip ``clip`` of group ``group`` of class ``label``.

    Every clip draws its own camera (size, fps, jitter, noise level), background and actor look;
    groups only name clips and decide the split, as UCF101's do. Sharing a scene within a group, as
    UCF101's recordings do, was tried: with the few groups per class of a demo-sized set, a model
    then learned "this camera/background means this class" (98% training, below-chance test accuracy).
    """
    action = CLASSES[label]
    rng = _rng(seed, _CLIP_STREAM, label, group, clip)
    camera = _draw_camera(rng)
    background = _draw_background(rng, camera)
    appearance = _draw_appearance(rng, action.kinds)
    frames = max(2, round(rng.uniform(2.0, 6.0) * camera.fps))
    motion = draw_motion(rng, frames / camera.fps)
    actor = Track(appearance, action.trajectory(_normalised_time(frames), motion))
    scene = _scene(rng, camera, background, frames, (actor,))
    return ClipPlan(label, group, clip, scene, caption(action, appearance, motion, scene))


@dataclass(frozen=True)
class Segment:
    """One action inside an untrimmed video: frames [start_frame, end_frame), times in seconds."""

    label: int
    start_frame: int
    end_frame: int
    fps: int

    @property
    def start(self) -> float:
        return self.start_frame / self.fps

    @property
    def end(self) -> float:
        return self.end_frame / self.fps


@dataclass(frozen=True)
class UntrimmedPlan:
    index: int  # 1-based
    scene: Scene
    segments: tuple[Segment, ...]

    @property
    def name(self) -> str:
        return f"untrimmed_{self.index:04d}.mp4"


def plan_untrimmed(seed: int, index: int) -> UntrimmedPlan:
    """A 20-40 s video: actions of random classes, one after another, separated by 1-4 s of
    background only (distractors keep wandering), each with a fresh actor."""
    rng = _rng(seed, _UNTRIMMED_STREAM, index)
    camera = _draw_camera(rng)
    background = _draw_background(rng, camera)
    fps = camera.fps
    frames = round(rng.uniform(20.0, 40.0) * fps)
    segments, actors = [], []
    cursor = round(rng.uniform(1.0, 3.0) * fps)
    while True:
        length = round(rng.uniform(2.0, 6.0) * fps)
        if cursor + length + fps > frames:  # keep at least one second of background at the end
            break
        label = int(rng.integers(len(CLASSES)))
        actors.append(_actor_track(rng, CLASSES[label], length, fps, start=cursor))
        segments.append(Segment(label, cursor, cursor + length, fps))
        cursor += length + round(rng.uniform(1.0, 4.0) * fps)
    scene = _scene(rng, camera, background, frames, tuple(actors))
    return UntrimmedPlan(index, scene, tuple(segments))


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------

_UNIT_POLYGONS: dict[str, np.ndarray] = {
    # Unit radius, centred, pointing up at angle 0 (y grows downwards).
    "square": np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)]) / math.sqrt(2),
    "triangle": np.array([(math.sin(a), -math.cos(a)) for a in np.radians([0, 120, 240])]),
    "star": np.array(
        [(r * math.sin(a), -r * math.cos(a)) for a, r in zip(np.radians(np.arange(0, 360, 36)), [1.0, 0.42] * 5)]
    ),
    "cross": np.array(
        [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3),
         (0.3, 1), (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]
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
        cv2.circle(mask, (int(x), int(y)), int(_fixed_point(r * scale)), value, -1, cv2.LINE_8, _SUBPIXEL_BITS)

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


def sprite_to_frame(centre_x: float, centre_y: float, scale: float, angle_deg: float, sprite_centre: float) -> np.ndarray:
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


def _composite(frame: np.ndarray, sprite: Sprite, x: float, y: float, radius: float, angle: float, alpha: float) -> None:
    """Draw ``sprite`` into ``frame`` (in place) with its centre at pixel (x, y)."""
    if alpha <= 0 or radius <= 0:
        return
    height, width = frame.shape[:2]
    x0, y0 = max(math.floor(x - radius) - 2, 0), max(math.floor(y - radius) - 2, 0)
    x1, y1 = min(math.ceil(x + radius) + 3, width), min(math.ceil(y + radius) + 3, height)
    if x1 <= x0 or y1 <= y0:
        return
    level = sprite.level_for(radius)
    rgba = sprite.levels[level]
    # pyrDown keeps pixel k of a level at pixel 2k of the one above, so coordinates halve exactly.
    sprite_centre = (sprite.levels[0].shape[0] - 1) / 2 / 2**level
    matrix = sprite_to_frame(x - x0, y - y0, radius / (sprite.radius / 2**level), angle, sprite_centre)
    warped = cv2.warpAffine(rgba, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    roi = frame[y0:y1, x0:x1]
    cover = warped[..., 3:4].astype(np.float32) * (alpha / 255)
    roi[...] = np.rint(roi * (1 - cover) + warped[..., :3].astype(np.float32) * alpha).astype(np.uint8)


def _background_texture(background: Background, height: int, width: int) -> np.ndarray:
    """An RGB texture big enough for any drift and jitter window."""
    margin = 2 * (JITTER_MARGIN + MAX_DRIFT)
    rows, cols = height + margin, width + margin
    if background.pattern == "mottled":
        rng = np.random.default_rng(background.texture_seed)
        coarse = rng.random((max(2, round(rows / background.period)) + 1, max(2, round(cols / background.period)) + 1))
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


def render(scene: Scene) -> Iterator[np.ndarray]:
    """Yield the scene's frames, ``H x W x 3`` uint8 RGB, one at a time (long videos never sit in memory)."""
    camera = scene.camera
    height, width = camera.height, camera.width
    short_side = min(height, width)
    texture = _background_texture(scene.background, height, width)
    # Each sprite is drawn at the largest size its track reaches, so it is only ever scaled down.
    sprites = [Sprite.build(t.appearance, t.appearance.size / 2 * short_side * t.pose.scale.max()) for t in scene.tracks]
    positive, negative = _noise_tables(camera.noise_sigma)
    noise_rng = np.random.default_rng(scene.noise_seed)
    origin = JITTER_MARGIN + MAX_DRIFT
    for k in range(scene.frames):
        (drift_x, drift_y), (shake_x, shake_y) = scene.drift[k], scene.jitter[k]
        top, left = origin + drift_y + shake_y, origin + drift_x + shake_x
        frame = texture[top : top + height, left : left + width].copy()
        for track, sprite in zip(scene.tracks, sprites):
            j = k - track.start
            if 0 <= j < len(track.pose):
                pose = track.pose
                # The camera moved by the jitter, so everything in the scene shifts the other way.
                _composite(
                    frame,
                    sprite,
                    pose.x[j] * width - shake_x,
                    pose.y[j] * height - shake_y,
                    track.appearance.size / 2 * short_side * pose.scale[j],
                    pose.angle[j],
                    pose.alpha[j],
                )
        uniform = np.frombuffer(noise_rng.bytes(frame.size), np.uint8).reshape(frame.shape)
        frame = cv2.subtract(cv2.add(frame, cv2.LUT(uniform, positive)), cv2.LUT(uniform, negative))
        yield frame


def true_flow(scene: Scene, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The true optical flow from frame ``k`` to ``k + 1`` of a scene, and where it is defined.

    Returns ``(flow, valid)``: float32 ``H x W x 2`` (dx, dy) in pixels and a bool ``H x W`` mask.
    The background moves by minus the change of drift and camera shake; a shape's pixels follow
    its affine pose change (translation, scaling and rotation about its centre). ``valid`` keeps
    the background well away from every shape and each opaque shape's core (within 0.45 of its
    radius, inside any of the shapes); it drops occlusion borders, faded shapes and pixels that
    leave the frame, where no flow is well defined.
    """
    if not 0 <= k < scene.frames - 1:
        raise BadArgumentError(f"frame {k} has no successor in a scene of {scene.frames} frames")
    camera = scene.camera
    height, width, short_side = camera.height, camera.width, min(camera.height, camera.width)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    window_shift = (scene.drift[k + 1] + scene.jitter[k + 1]) - (scene.drift[k] + scene.jitter[k])
    flow = np.empty((height, width, 2), np.float64)
    flow[..., 0], flow[..., 1] = -window_shift[0], -window_shift[1]
    valid = np.ones((height, width), bool)
    for track in scene.tracks:
        j = k - track.start
        placed = [(j + d, k + d) for d in (0, 1) if 0 <= j + d < len(track.pose)]
        maps = []
        for pose_index, frame_index in placed:
            pose = track.pose
            radius = track.appearance.size / 2 * short_side * pose.scale[pose_index]
            centre = (pose.x[pose_index] * width - scene.jitter[frame_index][0], pose.y[pose_index] * height - scene.jitter[frame_index][1])
            affine = sprite_to_frame(*centre, radius, pose.angle[pose_index], 0.0)
            maps.append((centre, radius, affine, pose.alpha[pose_index]))
            valid &= np.hypot(x - centre[0], y - centre[1]) > 1.3 * radius + 2
        if len(maps) == 2 and min(m[3] for m in maps) >= 0.5:
            (centre, radius, before, _), (_, _, after, _) = maps
            # frame(k+1) point = after o before^-1 (frame(k) point)
            inverse = cv2.invertAffineTransform(before)
            unit_x = inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2]
            unit_y = inverse[1, 0] * x + inverse[1, 1] * y + inverse[1, 2]
            core = np.hypot(x - centre[0], y - centre[1]) < 0.45 * radius
            flow[..., 0][core] = (after[0, 0] * unit_x + after[0, 1] * unit_y + after[0, 2] - x)[core]
            flow[..., 1][core] = (after[1, 0] * unit_x + after[1, 1] * unit_y + after[1, 2] - y)[core]
            valid |= core
    landing_x, landing_y = x + flow[..., 0], y + flow[..., 1]
    valid &= (landing_x >= 0) & (landing_x <= width - 1) & (landing_y >= 0) & (landing_y <= height - 1)
    return flow.astype(np.float32), valid


def render_array(scene: Scene) -> np.ndarray:
    """All frames of a (short) scene as one ``T x H x W x 3`` array."""
    return np.stack(list(render(scene)))


# ----------------------------------------------------------------------------------------------
# The dataset on disk
# ----------------------------------------------------------------------------------------------

DEFAULT_VIDEOS_PER_CLASS = 30
DEFAULT_NUM_VIDEOS = DEFAULT_VIDEOS_PER_CLASS * len(CLASSES)
DEFAULT_NUM_UNTRIMMED = 10
TEST_FRACTION = 0.27  # UCF101's split 1 holds out 7 of 25 groups
# UCF101 groups hold 4-7 clips; a little smaller here keeps the split close to TEST_FRACTION.
MIN_CLIPS_PER_GROUP, MAX_CLIPS_PER_GROUP = 3, 6


def videos_per_class(num_videos: int) -> int:
    """Classes stay balanced: ``num_videos`` is rounded up to a multiple of the class count."""
    return math.ceil(num_videos / len(CLASSES))


@dataclass(frozen=True)
class GroupSplit:
    """How one class's clips fall into groups, and how many trailing groups are held out for test."""

    sizes: tuple[int, ...]  # clips per group, group 1 first
    test_groups: int

    @property
    def test_clips(self) -> int:
        return sum(self.sizes[len(self.sizes) - self.test_groups :])

    def is_test(self, group: int) -> bool:
        return group > len(self.sizes) - self.test_groups


def _even_sizes(clips: int, groups: int) -> tuple[int, ...]:
    # Smaller groups first, which leaves the larger ones for the test split at the end.
    base, extra = divmod(clips, groups)
    return (base,) * (groups - extra) + (base + 1,) * extra


def split_groups(clips: int) -> GroupSplit:
    """Group ``clips`` clips of one class and hold out the trailing groups whose share of clips is
    nearest TEST_FRACTION. At least four groups when there are that many clips, so even a tiny set
    has both splits; a single clip has no test split."""
    fewest = max(min(clips, 4), math.ceil(clips / MAX_CLIPS_PER_GROUP))
    most = max(fewest, math.ceil(clips / MIN_CLIPS_PER_GROUP))
    candidates = [GroupSplit(_even_sizes(clips, g), k) for g in range(fewest, most + 1) for k in range(1, g)]
    if not candidates:
        return GroupSplit((clips,), 0)
    return min(candidates, key=lambda s: (abs(s.test_clips / clips - TEST_FRACTION), len(s.sizes)))


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    classes: tuple[str, ...]
    clips: int
    train_clips: int
    test_clips: int
    untrimmed: int
    segments: int
    rendered: int  # videos written by this run
    skipped: int  # videos already complete from an earlier run
    seconds: float


@dataclass(frozen=True)
class _Settings:
    """What fixes the dataset's content; a directory is only ever filled with one of these."""

    seed: int
    videos_per_class: int
    num_untrimmed: int
    version: int = SYNTH_VERSION

    def as_dict(self) -> dict:
        return {
            "seed": self.seed,
            "videos_per_class": self.videos_per_class,
            "num_untrimmed": self.num_untrimmed,
            "version": self.version,
        }


def _csv_text(rows: Iterable[Sequence]) -> str:
    buffer = StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _check_settings(out_dir: Path, settings: _Settings) -> None:
    """Refuse to mix two datasets in one directory; identical settings resume."""
    record = out_dir / "synth.json"
    if not record.exists():
        return
    try:
        previous = json.loads(record.read_text(encoding="utf-8")).get("settings")
    except (OSError, ValueError) as error:
        raise BadArgumentError(f"{record}: unreadable ({error}); use an empty directory") from None
    if previous != settings.as_dict():
        raise BadArgumentError(
            f"{record}: {out_dir} already holds SynthActions made with {previous}, not {settings.as_dict()};"
            " re-run with the same arguments to resume, or use another directory"
        )


def _metadata(settings: _Settings, complete: bool, counts: dict) -> str:
    return json.dumps(
        {
            "dataset": "SynthActions",
            "version": SYNTH_VERSION,
            "seed": settings.seed,
            "complete": complete,
            "settings": settings.as_dict(),
            "counts": counts,
            "classes": [
                {"index": i + 1, "name": c.name, "family": c.family, "description": c.description}
                for i, c in enumerate(CLASSES)
            ],
            "time_reversed_pairs": [list(pair) for pair in TIME_REVERSED_PAIRS],
        },
        indent=2,
    ) + "\n"


def _write_scene(job: tuple[str, Scene]) -> None:
    path, scene = job
    write_video(path, render(scene), scene.camera.fps)


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run_jobs(jobs: list[tuple[str, Scene]], workers: int, progress: bool) -> None:
    workers = min(workers, len(jobs))
    with progress_bar(len(jobs), "SynthActions", enabled=progress) as advance:
        if workers <= 1:
            for job in jobs:
                _write_scene(job)
                advance()
            return
        import multiprocessing

        # Chunks of a few videos amortise the pickling; many chunks per worker balance the load.
        chunksize = max(1, min(8, len(jobs) // (4 * workers)))
        # Fork where the platform has it: spawned workers would re-run a caller's script that lacks
        # an `if __name__ == "__main__"` guard. Workers leave OpenCV's thread settings alone:
        # cv2.setNumThreads in a child forked after the parent used OpenCV deadlocks.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with context.Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_scene, jobs, chunksize=chunksize):
                advance()


def synthesize(
    out_dir: str | Path,
    num_videos: int = DEFAULT_NUM_VIDEOS,
    seed: int = 0,
    workers: int | None = None,
    num_untrimmed: int = DEFAULT_NUM_UNTRIMMED,
    progress: bool = True,
) -> SynthSummary:
    """Render SynthActions into ``out_dir`` (layout in docs/synthactions.md).

    ``num_videos`` trimmed clips in total, rounded up so that every class has the same count;
    ``num_untrimmed`` long videos with segment annotations. ``workers`` processes (default: every
    available core). Videos already complete from an earlier run with the same arguments are kept,
    so an interrupted run resumes; a directory made with other arguments is refused.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BadArgumentError(f"seed must be a non-negative integer, got {seed!r}")
    if num_videos < 1:
        raise BadArgumentError(f"num_videos must be at least 1, got {num_videos}")
    if num_untrimmed < 0:
        raise BadArgumentError(f"num_untrimmed must be at least 0, got {num_untrimmed}")
    if workers is not None and workers < 1:
        raise BadArgumentError(f"workers must be at least 1, got {workers}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    settings = _Settings(int(seed), videos_per_class(num_videos), num_untrimmed)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_settings(out_dir, settings)
    write_text_atomic(out_dir / "synth.json", _metadata(settings, complete=False, counts={}))

    split = split_groups(settings.videos_per_class)
    clips = [
        plan_clip(settings.seed, label, group, clip)
        for label in range(len(CLASSES))
        for group, size in enumerate(split.sizes, start=1)
        for clip in range(1, size + 1)
    ]
    untrimmed = [plan_untrimmed(settings.seed, index) for index in range(1, num_untrimmed + 1)]

    # Long videos first: they are the slowest jobs, and starting them early balances the workers.
    wanted = [(out_dir / "untrimmed" / p.name, p.scene) for p in untrimmed]
    wanted += [(out_dir / "clips" / p.relative_path, p.scene) for p in clips]
    jobs = [(str(path), scene) for path, scene in wanted if not path.exists()]
    _run_jobs(jobs, workers or _default_workers(), progress)

    _write_split_files(out_dir, clips, split)
    _write_captions(out_dir, clips)
    segments = _write_segments(out_dir, untrimmed)
    test_clips = sum(split.is_test(p.group) for p in clips)
    counts = {
        "classes": len(CLASSES),
        "clips": len(clips),
        "clips_per_class": settings.videos_per_class,
        "groups_per_class": len(split.sizes),
        "test_groups_per_class": split.test_groups,
        "train": len(clips) - test_clips,
        "test": test_clips,
        "untrimmed": len(untrimmed),
        "segments": segments,
    }
    write_text_atomic(out_dir / "synth.json", _metadata(settings, complete=True, counts=counts))
    return SynthSummary(
        out_dir=out_dir,
        classes=CLASS_NAMES,
        clips=len(clips),
        train_clips=len(clips) - test_clips,
        test_clips=test_clips,
        untrimmed=len(untrimmed),
        segments=segments,
        rendered=len(jobs),
        skipped=len(wanted) - len(jobs),
        seconds=time.perf_counter() - started,
    )


def _write_split_files(out_dir: Path, clips: Sequence[ClipPlan], split: GroupSplit) -> None:
    """UCF101's ucfTrainTestlist: 1-based class indices; train lines carry the label, test lines do not."""
    lists = out_dir / "ucfTrainTestlist"
    lists.mkdir(exist_ok=True)
    write_text_atomic(lists / "classInd.txt", "".join(f"{i} {name}\n" for i, name in enumerate(CLASS_NAMES, start=1)))
    train = "".join(f"{p.relative_path} {p.label + 1}\n" for p in clips if not split.is_test(p.group))
    test = "".join(f"{p.relative_path}\n" for p in clips if split.is_test(p.group))
    write_text_atomic(lists / "trainlist01.txt", train)
    write_text_atomic(lists / "testlist01.txt", test)


def _write_captions(out_dir: Path, clips: Sequence[ClipPlan]) -> None:
    rows = [(p.relative_path, CLASS_NAMES[p.label], p.caption) for p in clips]
    write_text_atomic(out_dir / "captions.csv", _csv_text([("path", "label", "caption"), *rows]))


def _write_segments(out_dir: Path, untrimmed: Sequence[UntrimmedPlan]) -> int:
    """segments.csv (written even when empty, so readers find the file); returns the row count."""
    rows = [(p.name, CLASS_NAMES[s.label], f"{s.start:.6f}", f"{s.end:.6f}") for p in untrimmed for s in p.segments]
    folder = out_dir / "untrimmed"
    folder.mkdir(exist_ok=True)
    write_text_atomic(folder / "segments.csv", _csv_text([("video", "label", "start", "end"), *rows]))
    return len(rows)
