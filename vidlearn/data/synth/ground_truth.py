"""SynthActions ground truth: what is known exactly because the scene was drawn, not filmed."""

from __future__ import annotations

import cv2
import numpy as np

from vidlearn.data.synth.rendering import sprite_to_frame
from vidlearn.data.synth.scenes import Scene
from vidlearn.errors import BadArgumentError

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
