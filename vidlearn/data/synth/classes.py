"""SynthActions classes: which trajectory and which shapes make each action, and why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vidlearn.data.synth.trajectories import (
    MotionParams,
    Pose,
    approach,
    bounce,
    fade_in,
    fade_out,
    grow,
    hover,
    move_left,
    move_right,
    orbit,
    recede,
    rotate_anticlockwise,
    rotate_clockwise,
    shake,
    shrink,
    there_and_back,
    zigzag,
)
from vidlearn.errors import BadArgumentError

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
    ActionClass(
        "MoveLeft",
        "time-reversed",
        _pair_text("moves from right to left", "MoveRight"),
        move_left,
        "moves left",
    ),
    ActionClass(
        "MoveRight",
        "time-reversed",
        _pair_text("moves from left to right", "MoveLeft"),
        move_right,
        "moves right",
    ),
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
        "Approach",
        "time-reversed",
        _pair_text("comes nearer: larger and lower together", "Recede"),
        approach,
        "comes closer",
    ),
    ActionClass(
        "Recede",
        "time-reversed",
        _pair_text("goes away: smaller and higher together", "Approach"),
        recede,
        "moves away",
    ),
    ActionClass("FadeIn", "time-reversed", _pair_text("fades in", "FadeOut"), fade_in, "fades in"),
    ActionClass("FadeOut", "time-reversed", _pair_text("fades out", "FadeIn"), fade_out, "fades out"),
    ActionClass("Ring", "appearance", _appearance_text("ring"), hover, "hovers in place", ("ring",)),
    ActionClass(
        "Crescent", "appearance", _appearance_text("crescent"), hover, "hovers in place", ("crescent",)
    ),
    ActionClass(
        "Hourglass", "appearance", _appearance_text("hourglass"), hover, "hovers in place", ("hourglass",)
    ),
    ActionClass(
        "Bounce", "motion", "The actor bounces along the ground: a motion pattern.", bounce, "bounces"
    ),
    ActionClass(
        "ZigZag",
        "motion",
        "The actor crosses the frame in a zigzag: a motion pattern.",
        zigzag,
        "zigzags across",
    ),
    ActionClass(
        "Orbit", "motion", "The actor circles around a point: a motion pattern.", orbit, "circles {turning}"
    ),
    ActionClass(
        "Shake", "motion", "The actor shakes quickly in place: a motion pattern.", shake, "shakes in place"
    ),
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
