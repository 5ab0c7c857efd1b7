"""Winograd F(4x4, 3x3) against oneDNN, layer by layer: where `vidlearn.speed.winograd` pays.

For the stride-1 ``kt x 3 x 3`` convolutions of r3d_18, mc3_18 and r2plus1d_18 at 16 x 112 x 112 (and
their channel counts), alternating in one process, median of the repeats, the caller's threads:

- inference: ``F.conv3d`` (oneDNN, channels-last) against ``winograd.conv3d`` (weight transformed once);
- training: one ``FastConv3d`` forward + backward (input and weight gradients) with the Winograd path
  on and off (off = oneDNN forward and input gradient, ``conv3d_weight_grad``'s plan for the weight).

The ``pays`` columns are ``winograd.winograd_pays`` for the layer: the rule should say yes where the
ratio is above 1 and no where it is below.

    .venv/bin/python bench/winograd_layers.py --repeats 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from unittest import mock

import torch
import torch.nn.functional as F

from vidlearn.speed import optimize_for_training, winograd

# (in, out, kt, frames, side): the Winograd-shaped layers of the three ResNets at 16 x 112 x 112.
LAYERS = [
    (64, 64, 3, 16, 56),  # r3d_18 / mc3_18 layer 1
    (128, 128, 3, 8, 28),  # r3d_18 layer 2
    (256, 256, 3, 4, 14),  # r3d_18 layer 3
    (512, 512, 3, 2, 7),  # r3d_18 layer 4
    (64, 144, 1, 16, 56),  # r2plus1d_18 layer 1 (spatial part)
    (64, 64, 1, 16, 56),  # mc3-style 1 x 3 x 3, 64 channels
    (128, 128, 1, 8, 28),  # mc3_18 layer 2 (1 x 3 x 3) at 8 frames
    (128, 288, 1, 8, 28),  # r2plus1d_18 layer 2 (spatial part)
    (256, 256, 1, 4, 14),  # mc3_18 layer 3
    (512, 512, 1, 2, 7),  # mc3_18 layer 4
]


def median_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def inference_ratio(c, co, kt, frames, side, batch, repeats) -> float:
    x = torch.randn(batch, c, frames, side, side).contiguous(memory_format=torch.channels_last_3d)
    w = (torch.randn(co, c, kt, 3, 3) / math.sqrt(c * 9 * kt)).contiguous(
        memory_format=torch.channels_last_3d
    )
    bias = torch.randn(co)
    u = winograd.transform_weight(w)
    with torch.inference_mode():
        onednn = median_seconds(lambda: F.conv3d(x, w, bias, 1, (kt // 2, 1, 1)), repeats)
        ours = median_seconds(lambda: winograd.conv3d(x, u, bias), repeats)
    return onednn / ours


def training_ratio(c, co, kt, frames, side, batch, repeats) -> float:
    conv = optimize_for_training(torch.nn.Conv3d(c, co, (kt, 3, 3), padding=(kt // 2, 1, 1)))
    x = (
        torch.randn(batch, c, frames, side, side)
        .contiguous(memory_format=torch.channels_last_3d)
        .requires_grad_()
    )
    grad = torch.randn(batch, co, frames, side, side).contiguous(memory_format=torch.channels_last_3d)

    def step():
        conv.zero_grad(set_to_none=True)
        x.grad = None
        conv(x).backward(grad)

    with mock.patch.object(winograd, "winograd_pays", lambda *a, **k: True):
        ours = median_seconds(step, repeats)
    with mock.patch.object(winograd, "winograd_pays", lambda *a, **k: False):
        onednn = median_seconds(step, repeats)
    return onednn / ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="inference batch (training: half)")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, inference batch {args.batch}, training batch {args.batch // 2}"
    )
    print(
        "| layer (in -> out, kernel, T x H x W) | inference: oneDNN / Winograd | pays | training step: off / on | pays |"
    )
    print("|---|---:|---|---:|---|")
    for c, co, kt, frames, side in LAYERS:
        infer = inference_ratio(c, co, kt, frames, side, args.batch, args.repeats)
        train = training_ratio(c, co, kt, frames, side, max(1, args.batch // 2), args.repeats)
        pays = winograd.winograd_pays(c, co, kt, side, side)
        pays_training = winograd.winograd_pays(c, co, kt, side, side, training=True)
        print(
            f"| {c} -> {co}, {kt} x 3 x 3, {frames} x {side} x {side} | {infer:.2f} | {'yes' if pays else 'no'} "
            f"| {train:.2f} | {'yes' if pays_training else 'no'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
