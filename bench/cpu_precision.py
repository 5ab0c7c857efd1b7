"""Is bf16 autocast worth it on this CPU? Training-step clips/s in fp32 vs bf16 autocast, alternating
in one run, median of the repeats. The engine uses autocast on a CPU only if this says it is faster.

    .venv/bin/python bench/cpu_precision.py --models slow_fusion r2plus1d_18 --repeats 5
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from vidlearn.models import create_model


def step_seconds(model: torch.nn.Module, clips: torch.Tensor, labels: torch.Tensor, bf16: bool) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = torch.nn.functional.cross_entropy(model(clips).float(), labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["slow_fusion", "r2plus1d_18"])
    parser.add_argument("--input", default="3x8x64x64", help="C x T x H x W")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.input.split("x"))
    flags = Path("/proc/cpuinfo").read_text() if platform.system() == "Linux" else ""
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, avx512_bf16={'avx512_bf16' in flags}, amx_bf16={'amx_bf16' in flags}, torch {torch.__version__}"
    )
    print(
        f"input {args.batch} x {'x'.join(map(str, shape))}, median of {args.repeats} alternating repeats (after one warm-up each)\n"
    )
    print("| model | fp32 clips/s | bf16 autocast clips/s | bf16 / fp32 |")
    print("|---|---:|---:|---:|")
    for name in args.models:
        torch.manual_seed(0)
        model = create_model(name, num_classes=10)
        clips, labels = torch.randn(args.batch, *shape), torch.randint(0, 10, (args.batch,))
        times = {False: [], True: []}
        for bf16 in (False, True):
            step_seconds(model, clips, labels, bf16)  # warm-up
        for repeat in range(args.repeats):
            for bf16 in (False, True) if repeat % 2 == 0 else (True, False):
                times[bf16].append(step_seconds(model, clips, labels, bf16))
        fp32, bf16 = (args.batch / statistics.median(times[k]) for k in (False, True))
        print(f"| {name} | {fp32:.2f} | {bf16:.2f} | {bf16 / fp32:.3f}x |")


if __name__ == "__main__":
    main()
