"""Clips of optical flow (and of RGB with flow) aligned with the RGB clip sampling.

For a clip of frames ``i_0 < i_1 < ... < i_{T-1}`` the flow stack holds the T-1 fields
``F(i_k -> i_{k+1})``, so flow and RGB describe the same moments. The tensors:

- ``input="flow"``: ``2 x (T-1) x H x W`` float, channel 0 dx (rightwards), 1 dy (downwards),
  in pixels divided by ``flow_scale`` (20 px by default, the usual quantisation bound: stored flow
  is clipped there, so its values are within [-1, 1]). A 2D temporal stream stacks it as ``b c t h w -> b (t c) h w``: the
  course's ``2(T-1)`` channels, interleaved ``dx_0, dy_0, dx_1, dy_1, ...``.
- ``input="rgb+flow"``: ``5 x T x H x W``: channels 0-2 the normalised RGB clip, 3-4 the flow,
  whose last time step is zero (T-1 fields for T frames). One tensor keeps the training loop,
  evaluation and export unchanged; ``two_stream`` splits it again.

Flow is computed on the fly from the decoded clip frames, or read from a store written by
``vidlearn flow-extract`` (``vidlearn.motion.store``), whose step must equal the clip's frame step.
Crops are shared by RGB and flow; a horizontal flip mirrors the flow and negates dx. Padding
frames (short videos under the "pad" policy) get zero flow.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange

from vidlearn.data.dataset import ClipDataset, Normalization, read_clip
from vidlearn.data.index import IndexEntry, VideoIndex
from vidlearn.data.prepared import PreparedStore
from vidlearn.data.samplers import Clip, ClipSpec
from vidlearn.data.transforms import crop_origins, random_crop_origin, resize_short_side, to_float_cthw
from vidlearn.errors import BadArgumentError
from vidlearn.motion.flow import DEFAULT_METHOD, FlowEstimator, resize_flow
from vidlearn.motion.store import DEFAULT_BOUND, FlowStore

INPUTS = ("rgb", "flow", "rgb+flow")
INPUT_CHANNELS = {"rgb": 3, "flow": 2, "rgb+flow": 5}


def flow_to_tensor(flow: np.ndarray, flow_scale: float = DEFAULT_BOUND) -> torch.Tensor:
    """``(T-1) x H x W x 2`` float flow in pixels -> float32 ``2 x (T-1) x H x W`` model input."""
    return (
        rearrange(
            torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)), "t h w c -> c t h w"
        ).contiguous()
        / flow_scale
    )


def mirror_flow(flow: np.ndarray) -> np.ndarray:
    """The flow of the left-right mirrored frames: columns reversed and dx negated."""
    mirrored = flow[:, :, ::-1].copy()
    mirrored[..., 0] *= -1
    return mirrored


class FlowViews:
    """Turns one sampled clip into flow (``input="flow"``) or RGB + flow (``"rgb+flow"``) tensors.

    ``store``: read flow from this ``FlowStore`` instead of computing it with ``method``.
    Used by ``FlowClipDataset`` for training and evaluation and by prediction on single videos.
    """

    def __init__(
        self,
        spec: ClipSpec,
        input: str = "flow",
        method: str = DEFAULT_METHOD,
        store: FlowStore | None = None,
        flow_scale: float = DEFAULT_BOUND,
        normalization: Normalization = Normalization(),
    ):
        if input not in ("flow", "rgb+flow"):
            raise BadArgumentError(f"flow views are 'flow' or 'rgb+flow', got {input!r}")
        if spec.num_frames < 2:
            raise BadArgumentError(f"flow needs clips of at least 2 frames, got num_frames={spec.num_frames}")
        self.spec = spec
        self.input = input
        self.method = method
        self.store = store
        self.flow_scale = flow_scale
        self.normalization = normalization
        self._estimator: FlowEstimator | None = None  # built lazily: one per worker process

    def clip_flow(self, video_path: str, clip: Clip, first: int, frames: np.ndarray) -> np.ndarray:
        """Float flow ``(T-1) x H x W x 2`` (pixels at the frames' resolution) between consecutive clip frames."""
        steps = np.diff(clip.indices)
        moving = (steps != 0) & ~clip.pad_mask[1:] & ~clip.pad_mask[:-1]
        flow = np.zeros((len(frames) - 1, *frames.shape[1:3], 2), np.float32)
        if not moving.any():
            return flow
        if self.store is not None:
            step = self.store.settings.step
            if np.any(steps[moving] != step):
                raise BadArgumentError(
                    f"the flow store {self.store.folder} holds flow with a step of {step} frame(s) but the clips "
                    f"step by {sorted(set(steps[moving].tolist()))}: extract with --step matching the clip stride"
                )
            stored = self.store.read(video_path, clip.indices[:-1][moving] + first)
            flow[moving] = np.stack([resize_flow(f, frames.shape[1:3]) for f in stored])
            return flow
        if self._estimator is None:
            self._estimator = FlowEstimator(self.method)
        for k in np.flatnonzero(moving):
            flow[k] = self._estimator(frames[k], frames[k + 1])
        return flow

    def _frames_and_flow(
        self, video_path: str, video, clip: Clip, first: int
    ) -> tuple[torch.Tensor, np.ndarray]:
        frames = resize_short_side(read_clip(video, clip, first), self.spec.short_side)
        if min(frames.shape[1:3]) < self.spec.size:
            raise BadArgumentError(
                f"crop {self.spec.size} does not fit in frames of {tuple(frames.shape[1:3])}"
            )
        return frames, self.clip_flow(video_path, clip, first, frames.numpy())

    def _tensor(
        self, frames: torch.Tensor, flow: np.ndarray, top: int, left: int, flip: bool
    ) -> torch.Tensor:
        size = self.spec.size
        rgb_crop = frames[:, top : top + size, left : left + size]
        flow_crop = flow[:, top : top + size, left : left + size]
        if flip:
            rgb_crop, flow_crop = torch.flip(rgb_crop, dims=(2,)), mirror_flow(flow_crop)
        flow_tensor = flow_to_tensor(flow_crop, self.flow_scale)
        if self.input == "flow":
            return flow_tensor
        rgb = to_float_cthw(rgb_crop, self.normalization.mean, self.normalization.std)
        # T-1 flow fields beside T frames: the last time step carries no flow.
        return torch.cat([rgb, torch.nn.functional.pad(flow_tensor, (0, 0, 0, 0, 0, 1))])

    def train_tensor(
        self, video_path: str, video, clip: Clip, first: int, rng: np.random.Generator
    ) -> torch.Tensor:
        frames, flow = self._frames_and_flow(video_path, video, clip, first)
        # The same draws, in the same order, as the RGB-only train_views: identical RGB crops.
        top, left = random_crop_origin(*frames.shape[1:3], (self.spec.size, self.spec.size), rng)
        flip = self.spec.hflip and rng.random() < 0.5
        return self._tensor(frames, flow, top, left, flip)

    def test_tensors(self, video_path: str, video, clip: Clip, first: int = 0) -> list[torch.Tensor]:
        frames, flow = self._frames_and_flow(video_path, video, clip, first)
        origins = crop_origins(*frames.shape[1:3], (self.spec.size, self.spec.size), self.spec.num_crops)
        return [self._tensor(frames, flow, top, left, False) for top, left in origins]


class FlowClipDataset(ClipDataset):
    """``ClipDataset`` whose items are flow or RGB + flow clips (see ``FlowViews`` for the options)."""

    def __init__(
        self,
        index: VideoIndex,
        spec: ClipSpec,
        train: bool,
        seed: int = 0,
        normalization: Normalization = Normalization(),
        prepared: PreparedStore | None = None,
        **flow_options,
    ):
        super().__init__(index, spec, train, seed, normalization, prepared=prepared)
        self.views = FlowViews(spec, normalization=normalization, **flow_options)

    @property
    def reads_without_decoding(self) -> bool:
        return self.prepared is not None and self.views.store is not None  # else flow is computed per clip

    def train_tensor(
        self, entry: IndexEntry, video, clip: Clip, first: int, rng: np.random.Generator
    ) -> torch.Tensor:
        return self.views.train_tensor(entry.path, video, clip, first, rng)

    def test_tensors(self, entry: IndexEntry, video, clip: Clip, first: int) -> list[torch.Tensor]:
        return self.views.test_tensors(entry.path, video, clip, first)
