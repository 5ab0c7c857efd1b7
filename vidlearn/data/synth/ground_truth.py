"""SynthActions ground truth: what is known exactly because the scene was drawn, not filmed.

Beside each video ``NAME.mp4``, on request (``vidlearn synth --ground-truth ...``):

* ``NAME.masks.npz``: ``masks``, ``T x H x W`` uint8 instance ids (0 = background, ``i + 1`` = the
  scene's track ``i``: actors first, then distractors), the track each pixel shows;
* ``NAME.boxes.json``: per instance its class, role and per frame ``[x1, y1, x2, y2]`` (the
  extent of its mask in pixel edges: columns x1 .. x2 - 1, rows y1 .. y2 - 1), null where unseen;
* ``NAME.flow.npz``: ``flow``, ``(T-1) x H x W x 2`` float32 (dx, dy) in pixels with
  ``I_{t+1}(x + dx, y + dy) = I_t(x, y)``, and ``valid``, ``(T-1) x H x W`` bool, where it is defined;
* ``NAME.segments.json`` (untrimmed videos only): the actions with their frames and times.

Each file appears whole or not at all. ``read_ground_truth(video)`` reads them back.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidlearn.data.synth.rendering import sprite_to_frame
from vidlearn.data.synth.scenes import Scene, Segment
from vidlearn.errors import AnnotationError, BadArgumentError
from vidlearn.files import atomic_path

GROUND_TRUTH_KINDS = ("masks", "boxes", "flow", "segments")
DISTRACTOR = "distractor"  # the class of every track that is not an actor
_SUFFIXES = {"masks": ".masks.npz", "boxes": ".boxes.json", "flow": ".flow.npz", "segments": ".segments.json"}


def parse_ground_truth(kinds: str | Iterable[str]) -> tuple[str, ...]:
    """``"masks,boxes"`` or ``["masks", "boxes"]`` as the known kinds, in GROUND_TRUTH_KINDS order."""
    names = [k.strip() for k in (kinds.split(",") if isinstance(kinds, str) else kinds) if k.strip()]
    unknown = [k for k in names if k not in GROUND_TRUTH_KINDS]
    if unknown:
        raise BadArgumentError(
            f"--ground-truth: unknown {', '.join(map(repr, unknown))}; known: {', '.join(GROUND_TRUTH_KINDS)}"
        )
    return tuple(k for k in GROUND_TRUTH_KINDS if k in names)


def ground_truth_path(video: str | Path, kind: str) -> Path:
    """Where the ground truth ``kind`` of ``video`` lives: beside it, ``NAME.<kind>.npz|json``."""
    video = Path(video)
    return video.with_name(video.name.removesuffix(video.suffix) + _SUFFIXES[kind])


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
            centre = (
                pose.x[pose_index] * width - scene.jitter[frame_index][0],
                pose.y[pose_index] * height - scene.jitter[frame_index][1],
            )
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


class NpyStream:
    """One array written into an open ``.npz`` (zip) a slice along its first axis at a time, so that
    a long video's masks or flow never sit in memory whole; ``np.load`` reads it as usual."""

    def __init__(self, archive: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype: np.dtype):
        self.dtype = np.dtype(dtype)
        self._file = archive.open(f"{name}.npy", "w", force_zip64=True)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_2_0(self._file, header)

    def write(self, part: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(part, dtype=self.dtype).tobytes())

    def close(self) -> None:
        self._file.close()


def boxes_of(instances: np.ndarray, count: int) -> list[list[int] | None]:
    """The box ``[x1, y1, x2, y2]`` (pixel edges) of each instance id 1..count in an ``H x W`` map,
    None for an id with no pixel."""
    boxes: list[list[int] | None] = [None] * count
    for instance_id in range(1, count + 1):
        rows, cols = np.nonzero(instances == instance_id)
        if len(rows):
            boxes[instance_id - 1] = [
                int(cols.min()),
                int(rows.min()),
                int(cols.max()) + 1,
                int(rows.max()) + 1,
            ]
    return boxes


def boxes_document(video: str, classes: Sequence[str], actors: int, boxes: Sequence[Sequence]) -> str:
    """The boxes file's JSON: ``boxes[t][i]`` is instance ``i + 1``'s box in frame ``t`` (or None)."""
    instances = [
        {
            "id": i + 1,
            "class": name,
            "role": "actor" if i < actors else DISTRACTOR,
            "boxes": [frame_boxes[i] for frame_boxes in boxes],
        }
        for i, name in enumerate(classes)
    ]
    return json.dumps({"video": video, "frames": len(boxes), "instances": instances}) + "\n"


def segments_document(video: str, segments: Sequence[Segment], class_names: Sequence[str]) -> str:
    """The segments file's JSON: each action's class, frames [start_frame, end_frame), times in
    seconds, and the instance id of its actor (segment i's actor is track i)."""
    rows = [
        {
            "instance": i + 1,
            "class": class_names[s.label],
            "label": s.label,
            "start_frame": s.start_frame,
            "end_frame": s.end_frame,
            "start": s.start,
            "end": s.end,
        }
        for i, s in enumerate(segments)
    ]
    return (
        json.dumps({"video": video, "fps": segments[0].fps if segments else None, "segments": rows}, indent=1)
        + "\n"
    )


def write_flow(path: Path, scene: Scene) -> None:
    """The scene's true flow and where it is valid, as NAME.flow.npz (atomically)."""
    camera = scene.camera
    shape = (scene.frames - 1, camera.height, camera.width)
    # Each npy entry of the zip is written whole, so ``valid`` waits, as bits, until the flow is done.
    valid_bits = []
    with (
        atomic_path(path, suffix=".npz") as temporary,
        zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        flows = NpyStream(archive, "flow", (*shape, 2), np.float32)
        for k in range(scene.frames - 1):
            flow, valid = true_flow(scene, k)
            flows.write(flow)
            valid_bits.append(np.packbits(valid))
        flows.close()
        valid = NpyStream(archive, "valid", shape, np.bool_)
        for bits in valid_bits:
            valid.write(np.unpackbits(bits, count=camera.height * camera.width).astype(bool))
        valid.close()


@dataclass(frozen=True)
class GroundTruth:
    """What was written beside one video; each field is None where it was not asked for.

    masks: ``T x H x W`` uint8 instance ids (0 = background); instances: id -> class name
    (``"distractor"`` for the shapes that are not actors); boxes: id -> ``T x 4`` float
    ``[x1, y1, x2, y2]`` per frame, NaN where the instance is unseen; flow: ``(T-1) x H x W x 2``
    float32 (dx, dy) with ``I_{t+1}(x + dx, y + dy) = I_t(x, y)`` and flow_valid
    ``(T-1) x H x W`` bool; segments: the untrimmed video's actions.
    """

    video: Path
    masks: np.ndarray | None = None
    instances: dict[int, str] | None = None
    boxes: dict[int, np.ndarray] | None = None
    flow: np.ndarray | None = None
    flow_valid: np.ndarray | None = None
    segments: tuple[Segment, ...] | None = None


def read_ground_truth(video: str | Path, kinds: str | Iterable[str] | None = None) -> GroundTruth:
    """The ground truth written beside ``video`` by ``vidlearn synth --ground-truth``.

    ``kinds`` (e.g. ``"masks,boxes"``) are required: one that was not written is an error. Without
    it, whatever was written is read, and nothing at all is an error.
    """
    video = Path(video)
    wanted = (
        parse_ground_truth(kinds)
        if kinds is not None
        else tuple(k for k in GROUND_TRUTH_KINDS if ground_truth_path(video, k).exists())
    )
    missing = (
        [k for k in wanted if not ground_truth_path(video, k).exists()]
        if wanted
        else ["masks", "boxes", "flow"]
    )
    if missing:
        flag = ",".join(missing)
        raise BadArgumentError(
            f"{video}: no {flag} written beside it; render with `vidlearn synth --ground-truth {flag}`"
            " (the same --out, --videos, --untrimmed and --seed resume; segments exist for untrimmed videos only)"
        )
    fields: dict = {}
    try:
        if "masks" in wanted:
            with np.load(ground_truth_path(video, "masks")) as archive:
                fields["masks"] = archive["masks"]
        if "boxes" in wanted:
            document = json.loads(ground_truth_path(video, "boxes").read_text(encoding="utf-8"))
            fields["instances"] = {i["id"]: i["class"] for i in document["instances"]}
            fields["boxes"] = {
                i["id"]: np.array(
                    [b if b is not None else [np.nan] * 4 for b in i["boxes"]], np.float64
                ).reshape(-1, 4)
                for i in document["instances"]
            }
        if "flow" in wanted:
            with np.load(ground_truth_path(video, "flow")) as archive:
                fields["flow"], fields["flow_valid"] = archive["flow"], archive["valid"]
        if "segments" in wanted:
            document = json.loads(ground_truth_path(video, "segments").read_text(encoding="utf-8"))
            fields["segments"] = tuple(
                Segment(r["label"], r["start_frame"], r["end_frame"], document["fps"])
                for r in document["segments"]
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise AnnotationError(video, f"unreadable ground truth ({type(error).__name__}: {error})") from None
    return GroundTruth(video, **fields)
