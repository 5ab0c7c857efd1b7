"""SynthActions scenes and plans: what each video contains (camera, background, actors, distractors,
caption), drawn from random numbers that derive from (seed, the video's identity) only; no pixels yet."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vidlearn.data.synth.classes import CLASS_NAMES, CLASSES, GENERIC_KINDS, ActionClass
from vidlearn.data.synth.trajectories import MotionParams, Pose, draw_motion, make_pose

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


# Captions: one sentence per clip, from the very numbers drawn for it.
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


# Plans. Distinct streams so that a trimmed clip and an untrimmed video never share random numbers.
_CLIP_STREAM = 0
_UNTRIMMED_STREAM = 1


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(key))


def _scene(
    rng: np.random.Generator, camera: Camera, background: Background, frames: int, actors: tuple[Track, ...]
) -> Scene:
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
