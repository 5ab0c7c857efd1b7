"""Is the flow right? Warping error on any video, end-point error where the true motion is known.

The course's definition ``I_{t+1}(x + dx, y + dy) = I_t(x, y)`` gives a check that needs no ground
truth: sampling frame t+1 at ``(x + dx, y + dy)`` should rebuild frame t. A useful flow rebuilds
it better than zero flow does (which just compares the two frames). Where the true motion is
known (synthetic videos), the end-point error ``|F - F_true|`` measures the flow directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vidlearn.errors import BadArgumentError
from vidlearn.motion.picture import check_flow


def warp_back(next_frame: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame t rebuilt from frame t+1 and the flow t -> t+1: ``out(x, y) = next(x + dx, y + dy)``.

    Returns ``(rebuilt float32 H x W (x C), valid H x W bool)``; ``valid`` is False where
    ``(x + dx, y + dy)`` falls outside the frame (nothing there to sample).
    """
    flow = check_flow(flow)
    height, width = flow.shape[:2]
    if next_frame.shape[:2] != (height, width):
        raise BadArgumentError(f"frame {next_frame.shape[:2]} and flow {flow.shape[:2]} differ in size")
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x, map_y = x + flow[..., 0], y + flow[..., 1]
    rebuilt = cv2.remap(
        next_frame.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    valid = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return rebuilt, valid


@dataclass(frozen=True)
class WarpError:
    """Mean absolute intensity error (8-bit levels) of rebuilding frame t from frame t+1."""

    with_flow: float
    zero_flow: float

    @property
    def improvement(self) -> float:
        """How many times smaller the error is with the flow than without it."""
        return self.zero_flow / self.with_flow if self.with_flow > 0 else float("inf")


class WarpTally:
    """Rebuilding errors summed over frame pairs, with the flow and with zero flow, on the pixels
    whose sample falls inside the frame: ``add`` pairs one by one (a long video never sits in
    memory), then ``result``."""

    def __init__(self) -> None:
        self.with_flow = self.zero_flow = 0.0
        self.count = 0

    def add(self, current: np.ndarray, next_frame: np.ndarray, flow: np.ndarray) -> None:
        current = current.astype(np.float32)
        rebuilt, valid = warp_back(next_frame, flow)
        error = np.abs(rebuilt - current)
        still = np.abs(next_frame.astype(np.float32) - current)
        if error.ndim == 3:
            error, still = error.mean(-1), still.mean(-1)
        self.with_flow += float(error[valid].sum())
        self.zero_flow += float(still[valid].sum())
        self.count += int(valid.sum())

    def result(self) -> WarpError:
        return WarpError(self.with_flow / max(self.count, 1), self.zero_flow / max(self.count, 1))


def warp_error(frames: np.ndarray, flows: np.ndarray) -> WarpError:
    """Photometric error over consecutive pairs: ``frames`` ``T x H x W (x 3)`` uint8 and their
    flows ``(T-1) x H x W x 2``, against zero flow on the same pixels (valid ones only)."""
    flows = check_flow(flows)
    if len(frames) != len(flows) + 1:
        raise BadArgumentError(f"{len(frames)} frames need {len(frames) - 1} flows, got {len(flows)}")
    tally = WarpTally()
    for k, flow in enumerate(flows):
        tally.add(frames[k], frames[k + 1], flow)
    if tally.count == 0:
        raise BadArgumentError("no pixel of any frame pair could be rebuilt")
    return tally.result()


def endpoint_error(flow: np.ndarray, true_flow: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean ``|F - F_true|`` in pixels over ``mask`` (every pixel when ``None``)."""
    flow, true_flow = check_flow(flow), check_flow(true_flow)
    if flow.shape != true_flow.shape:
        raise BadArgumentError(f"flow {flow.shape} and true flow {true_flow.shape} differ in shape")
    distance = np.sqrt(((flow.astype(np.float64) - true_flow) ** 2).sum(-1))
    if mask is not None:
        distance = distance[np.broadcast_to(mask, distance.shape)]
    if distance.size == 0:
        raise BadArgumentError("the mask selects no pixel")
    return float(distance.mean())
