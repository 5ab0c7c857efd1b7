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
describes each class and how it is rendered; the modules follow the concerns: trajectories, classes,
scenes (and plans), rendering, ground truth (masks, boxes, true flow and segments, written beside
the videos on request and read back with ``read_ground_truth``), writing (the dataset on disk).
"""

from vidlearn.data.synth.classes import (
    APPEARANCE_KINDS,
    CLASS_NAMES,
    CLASSES,
    GENERIC_KINDS,
    TIME_REVERSED_PAIRS,
    TURNABLE_KINDS,
    ActionClass,
    class_by_name,
)
from vidlearn.data.synth.ground_truth import (
    DISTRACTOR,
    GROUND_TRUTH_KINDS,
    GroundTruth,
    ground_truth_path,
    parse_ground_truth,
    read_ground_truth,
    true_flow,
)
from vidlearn.data.synth.rendering import (
    MASK_COVERAGE,
    Sprite,
    render,
    render_array,
    render_with_instances,
    sprite_to_frame,
)
from vidlearn.data.synth.scenes import (
    BACKGROUND_PATTERNS,
    COLOURS,
    JITTER_MARGIN,
    MAX_DRIFT,
    TEXTURES,
    Appearance,
    Background,
    Camera,
    ClipPlan,
    Scene,
    Segment,
    Track,
    UntrimmedPlan,
    caption,
    plan_clip,
    plan_untrimmed,
)
from vidlearn.data.synth.trajectories import (
    BOUNCE_HZ,
    HOVER_HZ,
    ORBIT_HZ,
    SHAKE_HZ,
    ZIGZAG_HZ,
    MotionParams,
    Pose,
    approach,
    bounce,
    draw_motion,
    fade_in,
    fade_out,
    grow,
    hover,
    make_pose,
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
from vidlearn.data.synth.writing import (
    DEFAULT_NUM_UNTRIMMED,
    DEFAULT_NUM_VIDEOS,
    DEFAULT_VIDEOS_PER_CLASS,
    SYNTH_VERSION,
    TEST_FRACTION,
    GroupSplit,
    SynthSummary,
    split_groups,
    synthesize,
    videos_per_class,
)


__all__ = [
    "APPEARANCE_KINDS",
    "CLASS_NAMES",
    "CLASSES",
    "GENERIC_KINDS",
    "TIME_REVERSED_PAIRS",
    "TURNABLE_KINDS",
    "ActionClass",
    "class_by_name",
    "DISTRACTOR",
    "GROUND_TRUTH_KINDS",
    "GroundTruth",
    "ground_truth_path",
    "parse_ground_truth",
    "read_ground_truth",
    "true_flow",
    "MASK_COVERAGE",
    "Sprite",
    "render",
    "render_array",
    "render_with_instances",
    "sprite_to_frame",
    "BACKGROUND_PATTERNS",
    "COLOURS",
    "JITTER_MARGIN",
    "MAX_DRIFT",
    "TEXTURES",
    "Appearance",
    "Background",
    "Camera",
    "ClipPlan",
    "Scene",
    "Segment",
    "Track",
    "UntrimmedPlan",
    "caption",
    "plan_clip",
    "plan_untrimmed",
    "BOUNCE_HZ",
    "HOVER_HZ",
    "ORBIT_HZ",
    "SHAKE_HZ",
    "ZIGZAG_HZ",
    "MotionParams",
    "Pose",
    "approach",
    "bounce",
    "draw_motion",
    "fade_in",
    "fade_out",
    "grow",
    "hover",
    "make_pose",
    "move_left",
    "move_right",
    "orbit",
    "recede",
    "rotate_anticlockwise",
    "rotate_clockwise",
    "shake",
    "shrink",
    "there_and_back",
    "zigzag",
    "DEFAULT_NUM_UNTRIMMED",
    "DEFAULT_NUM_VIDEOS",
    "DEFAULT_VIDEOS_PER_CLASS",
    "SYNTH_VERSION",
    "TEST_FRACTION",
    "GroupSplit",
    "SynthSummary",
    "split_groups",
    "synthesize",
    "videos_per_class",
]
