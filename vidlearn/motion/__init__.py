"""Motion: dense optical flow, its colour-wheel picture, checks of its accuracy, a compact store
for a dataset's flow, and flow clips aligned with the RGB clip sampling.

Flow arrays are float32 ``... x H x W x 2`` in pixels per frame pair, channel 0 dx (rightwards),
channel 1 dy (downwards), with ``I_{t+1}(x + dx, y + dy) = I_t(x, y)``.
"""

from vidlearn.motion.checks import WarpError, endpoint_error, warp_back, warp_error
from vidlearn.motion.flow import DEFAULT_METHOD, METHODS, FlowEstimator, flow_params, resize_flow
from vidlearn.motion.picture import color_wheel, flow_to_rgb, with_legend

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "FlowEstimator",
    "WarpError",
    "color_wheel",
    "endpoint_error",
    "flow_params",
    "flow_to_rgb",
    "resize_flow",
    "warp_back",
    "warp_error",
    "with_legend",
]
