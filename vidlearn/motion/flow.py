"""Dense optical flow between frames: Farneback, TV-L1 and DIS through OpenCV.

The course's definition: the flow ``F(x, y) = (dx, dy)`` between frames ``I_t`` and ``I_{t+1}`` says
where each pixel of ``I_t`` goes, ``I_{t+1}(x + dx, y + dy) = I_t(x, y)``. Every function here
returns flow as float32 ``H x W x 2`` in pixels per frame pair: channel 0 is dx (rightwards),
channel 1 is dy (downwards); a video's flow is ``(T-1) x H x W x 2``.

The default method, DIS, comes from measurements on this project's machine (``bench/flow_methods.py``,
``docs/benchmarks.md``): 1.6-2.0x faster than Farneback at 112x112 to 340x256, with the same
accuracy (end-point error on SynthActions' known motion 1.21 vs 1.17 px; warping error on real
videos within a few percent). TV-L1, the two-stream papers' choice, is about 5x more accurate on
SynthActions (0.22 px) but 110-140x slower than Farneback: use it for offline extraction (``vidlearn flow-extract
--method tvl1``) when accuracy matters more than time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields

import cv2
import numpy as np

from vidlearn.errors import BadArgumentError


@dataclass(frozen=True)
class FarnebackParams:
    """``cv2.calcOpticalFlowFarneback``'s parameters (OpenCV's documented example values)."""

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2


@dataclass(frozen=True)
class TVL1Params:
    """``cv2.optflow.DualTVL1OpticalFlow``'s parameters (OpenCV's defaults, as denseflow uses)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5


@dataclass(frozen=True)
class DISParams:
    """``cv2.DISOpticalFlow``: a preset ("ultrafast", "fast", "medium") and optional overrides."""

    preset: str = "medium"
    finest_scale: int | None = None
    patch_size: int | None = None
    patch_stride: int | None = None
    variational_refinement_iterations: int | None = None


PARAMS = {"farneback": FarnebackParams, "tvl1": TVL1Params, "dis": DISParams}
METHODS = tuple(PARAMS)
DEFAULT_METHOD = "dis"
_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def flow_params(method: str, **overrides: object):
    """The parameter dataclass of ``method`` with ``overrides`` applied; clear errors for typos."""
    if method not in PARAMS:
        raise BadArgumentError(f"unknown flow method {method!r}; valid methods: {', '.join(METHODS)}")
    cls = PARAMS[method]
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise BadArgumentError(
            f"flow method {method!r} has no parameter {', '.join(unknown)}; its parameters: {', '.join(sorted(valid))}"
        )
    params = cls(**overrides)
    if method == "dis" and params.preset not in _DIS_PRESETS:
        raise BadArgumentError(f"DIS preset must be one of {', '.join(_DIS_PRESETS)}, got {params.preset!r}")
    return params


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise BadArgumentError(f"expected a uint8 H x W x 3 RGB frame, got {frame.dtype} {frame.shape}")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _farneback(params: FarnebackParams) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def estimate(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, **asdict(params), flags=0)

    return estimate


def _tvl1(params: TVL1Params) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    solver = cv2.optflow.DualTVL1OpticalFlow_create(
        tau=params.tau,
        lambda_=params.lambda_,
        theta=params.theta,
        nscales=params.nscales,
        warps=params.warps,
        epsilon=params.epsilon,
        innnerIterations=params.inner_iterations,  # sic: OpenCV's spelling
        outerIterations=params.outer_iterations,
        scaleStep=params.scale_step,
        gamma=params.gamma,
        medianFiltering=params.median_filtering,
    )
    return lambda prev, nxt: solver.calc(prev, nxt, None)


def _dis(params: DISParams) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    solver = cv2.DISOpticalFlow_create(_DIS_PRESETS[params.preset])
    overrides = {
        "setFinestScale": params.finest_scale,
        "setPatchSize": params.patch_size,
        "setPatchStride": params.patch_stride,
        "setVariationalRefinementIterations": params.variational_refinement_iterations,
    }
    for setter, value in overrides.items():
        if value is not None:
            getattr(solver, setter)(int(value))
    return lambda prev, nxt: solver.calc(prev, nxt, None)


_SOLVERS = {"farneback": _farneback, "tvl1": _tvl1, "dis": _dis}


@dataclass
class FlowEstimator:
    """Computes flow between pairs of frames with one method; reuses OpenCV's solver object.

    ``estimator(prev, next)`` takes two uint8 ``H x W x 3`` RGB (or ``H x W`` gray) frames and
    returns float32 ``H x W x 2`` (dx, dy) in pixels. ``size``: compute at this short side (the
    flow is then resized back and its vectors rescaled), e.g. TV-L1 at 112 for speed.
    """

    method: str = DEFAULT_METHOD
    params: object = None
    size: int | None = None
    _solve: Callable = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.params is None:
            self.params = flow_params(self.method)
        elif not isinstance(self.params, PARAMS.get(self.method, ())):
            raise BadArgumentError(f"parameters {self.params!r} do not belong to flow method {self.method!r}")
        if self.size is not None and self.size < 8:
            raise BadArgumentError(f"flow size must be at least 8 pixels, got {self.size}")
        self._solve = _SOLVERS[self.method](self.params)

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        prev_gray, next_gray = _gray(prev), _gray(nxt)
        if prev_gray.shape != next_gray.shape:
            raise BadArgumentError(f"frames differ in size: {prev_gray.shape} and {next_gray.shape}")
        height, width = prev_gray.shape
        if self.size is None or min(height, width) == self.size:
            return self._solve(prev_gray, next_gray)
        scale = self.size / min(height, width)
        small = (max(1, round(width * scale)), max(1, round(height * scale)))
        flow = self._solve(
            *(cv2.resize(f, small, interpolation=cv2.INTER_AREA) for f in (prev_gray, next_gray))
        )
        return resize_flow(flow, (height, width))

    def pairs(self, frames: np.ndarray, step: int = 1) -> np.ndarray:
        """Flow from frame k to frame k + ``step`` for every k: ``(T - step) x H x W x 2``."""
        if step < 1:
            raise BadArgumentError(f"flow step must be at least 1, got {step}")
        if len(frames) <= step:
            raise BadArgumentError(f"flow needs at least {step + 1} frames, got {len(frames)}")
        gray = [_gray(f) for f in frames]
        return np.stack([self(gray[k], gray[k + step]) for k in range(len(gray) - step)])

    def stream(self, chunks: Iterator[np.ndarray], step: int = 1) -> Iterator[np.ndarray]:
        """Flow fields of a long video given as consecutive blocks of frames, in order; only
        ``step`` frames are kept between blocks, so memory stays bounded."""
        pending: list[np.ndarray] = []
        for block in chunks:
            for frame in block:
                pending.append(_gray(frame))
                if len(pending) > step:
                    yield self(pending[0], pending[step])
                    pending.pop(0)


def resize_flow(flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an ``H x W x 2`` flow field to ``shape = (height, width)``, scaling the vectors too.

    A displacement of d pixels at width W is d * W' / W pixels at width W'.
    """
    height, width = flow.shape[:2]
    if (height, width) == tuple(shape):
        return flow
    resized = cv2.resize(flow, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    resized[..., 0] *= shape[1] / width
    resized[..., 1] *= shape[0] / height
    return resized
