"""Row groups 3, 5 and 6 of `make bench`: vidlearn's models against torchvision's same architectures.

models  For r3d_18, mc3_18, r2plus1d_18 and mvit_v2_s: inference clips/s and training-step clips/s
        of vidlearn's model through its fast path (``vidlearn.speed``: ``optimize_for_inference``,
        ``optimize_for_training``) against torchvision's model as a user runs it (plain eager,
        contiguous layout), both with torchvision's weights (same state-dict keys), the same input,
        the same torch threads, alternating in one process. The note gives the largest output
        difference (eval mode for inference; train mode, loss and gradients for training). The
        conv nets get one more training row with ``optimize_for_training(compile=True)`` (opt-in in
        the library; compile time stated, not counted).
peak    fp32 GEMM peak (``torch.mm``, best of a few sizes; FLOPs = 2 n^3, multiply and add counted
        separately) measured in the same run, and each model's achieved FLOP/s as a fraction of it:
        2 x (multiply-adds per clip, from ``vidlearn.analysis``) x clips/s; training counts 3 x the
        forward (forward, input gradient, weight gradient).
memory  Peak resident memory of one training step at batch 8, each side in a fresh subprocess,
        alternating: the step's increase, the peak resident size (VmHWM) after the step minus the resident size just
        before it (model, optimiser and input already allocated), in MiB.

Without torchvision (the CI environment) the peer is vidlearn's plain eager model, so the machinery
still runs. ``ctx.tiny``: 3 x 4 x 32 x 32 clips, batch 2, MViT's tiny size, seconds in all.

    bench/.venv/bin/python bench/suite_models.py                # this suite alone, prints the rows
    bench/.venv/bin/python bench/suite_models.py --tiny --repeats 1
    bench/.venv/bin/python bench/suite_models.py --levers r3d_18  # each lever alone (docs/model-speed.md)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from harness import Context, Row, alternate, compare, row_from, timed_rate  # noqa: E402

from vidlearn.analysis.layers import trace_layers  # noqa: E402
from vidlearn.models import create_model  # noqa: E402
from vidlearn.speed import channels_last, fuse_conv_bn, optimize_for_inference, optimize_for_training  # noqa: E402

MODELS = ("r3d_18", "mc3_18", "r2plus1d_18", "mvit_v2_s")
CONV_NETS = ("r3d_18", "mc3_18", "r2plus1d_18")
GOAL_SPEED = ">= 1.3"
GOAL_PEAK = ">= 0.5"
GOAL_MEMORY = "<= 1.0"
NUM_CLASSES = 400
MEMORY_BATCH = 8
INFERENCE_LEVERS = "BatchNorm folded into the convolutions, channels-last, Winograd F(4x4,3x3) for stride-1 kt x 3 x 3 layers where it pays, one oneDNN call per other convolution (bias, ReLU and residual addition fused, weights reordered once); no torch.compile"
TRAINING_LEVERS = "channels-last, Winograd F(4x4,3x3) forward and gradients for stride-1 kt x 3 x 3 layers on grids of 14 x 14 and more, weight gradients by shape elsewhere (matrix products, 2D kernels, chunked im2col); no torch.compile"
MVIT_INFERENCE_LEVERS = "token pooling channels-last from the token layout (no rearrangement copies), relative-position logits written into the attention mask, residual pooling in place; no torch.compile"
MVIT_TRAINING_LEVERS = "token pooling channels-last, depthwise pooling gradients by a forward convolution and shifted sums, attention as one autograd function (logits accumulated into the relative-position bias, softmax and its gradient in place); no torch.compile"


@dataclass(frozen=True)
class Setting:
    """One model's sizes: clip ``C x T x H x W``, batch for inference, training and memory, build options."""

    name: str
    clip: tuple[int, int, int, int]
    infer_batch: int
    train_batch: int
    memory_batch: int
    options: tuple[tuple[str, object], ...] = ()
    repeats_cap: int | None = None  # heavy rows: at most this many alternating repeats


# Batches chosen by measurement on this 2-core machine (docs/model-speed.md): clips/s grows little past
# batch 4 for the ResNets (inference 8 costs nothing more per clip and evens out the noise); MViT at
# 16 x 224 x 224 takes seconds per clip, so batch 2 and 1 keep its rows within minutes.
FULL = {
    "r3d_18": Setting("r3d_18", (3, 16, 112, 112), 8, 4, MEMORY_BATCH),
    "mc3_18": Setting("mc3_18", (3, 16, 112, 112), 8, 4, MEMORY_BATCH),
    "r2plus1d_18": Setting("r2plus1d_18", (3, 16, 112, 112), 8, 4, MEMORY_BATCH),
    "mvit_v2_s": Setting("mvit_v2_s", (3, 16, 224, 224), 2, 1, 2, repeats_cap=3),
}
TINY = {
    "r3d_18": Setting("r3d_18", (3, 4, 32, 32), 2, 2, 2),
    "mc3_18": Setting("mc3_18", (3, 4, 32, 32), 2, 2, 2),
    "r2plus1d_18": Setting("r2plus1d_18", (3, 4, 32, 32), 2, 2, 2),
    "mvit_v2_s": Setting(
        "mvit_v2_s", (3, 4, 32, 32), 2, 2, 2, (("size", "tiny"), ("num_frames", 4), ("frame_size", 32))
    ),
}
TINY_MEMORY_MODELS = ("r3d_18",)


# --- the two sides ---------------------------------------------------------------------------------


def torchvision_video():
    """``torchvision.models.video``, or None where torchvision is not installed (or broken)."""
    try:
        import torchvision.models.video as video
    except Exception:  # noqa: BLE001 - any import failure means no peer
        return None
    return video


def peer_label() -> str:
    video = torchvision_video()
    if video is None:
        return "vidlearn eager (torchvision not installed)"
    import torchvision

    return f"torchvision {torchvision.__version__} (eager, contiguous)"


def side_label(setting: Setting, tiny: bool) -> str:
    if tiny and setting.name == "mvit_v2_s" and torchvision_video() is not None:
        return "vidlearn eager (torchvision has no tiny MViT)"
    return peer_label()


def build_pair(setting: Setting, tiny: bool, seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """(vidlearn's plain model, the peer) with the same weights: torchvision's model and its state
    dict loaded into ours, or, without torchvision (or for MViT's tiny size, which torchvision lacks),
    vidlearn's plain model twice."""
    torch.manual_seed(seed)
    options = dict(setting.options)
    ours = create_model(setting.name, num_classes=NUM_CLASSES, **options)
    video = torchvision_video()
    if video is None or (tiny and setting.name == "mvit_v2_s"):
        peer = copy.deepcopy(ours)
    else:
        peer = getattr(video, setting.name)(num_classes=NUM_CLASSES)
        ours.load_state_dict(peer.state_dict())
    return ours, peer


@contextlib.contextmanager
def deterministic(*models: nn.Module):
    """Dropout and stochastic depth (torchvision's MViT) switched off, for comparing train-mode outputs."""
    saved = []
    for model in models:
        for module in model.modules():
            if isinstance(module, nn.Dropout) or type(module).__name__ == "StochasticDepth":
                saved.append((module, module.p))
                module.p = 0.0
    try:
        yield
    finally:
        for module, p in saved:
            module.p = p


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.detach().double() - b.detach().double()).abs().max().item()


def train_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, clips: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """One training step: forward, cross-entropy, backward, SGD step; returns the logits."""
    logits = model(clips)
    loss = nn.functional.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return logits


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)


# --- speed rows ---------------------------------------------------------------------------------------


def inference_rows(
    setting: Setting, ours_plain: nn.Module, peer: nn.Module, ctx: Context, label: str
) -> tuple[Row, float]:
    batch = setting.infer_batch
    clips = torch.randn(batch, *setting.clip, generator=torch.Generator().manual_seed(1))
    peer.eval()
    started = time.perf_counter()
    fast = optimize_for_inference(ours_plain)
    prepare_s = time.perf_counter() - started
    with torch.inference_mode():
        diff = max_abs_diff(fast(clips), peer(clips))
        scale = peer(clips).abs().max().item()

    repeats = _repeats(setting, ctx)
    levers = MVIT_INFERENCE_LEVERS if setting.name == "mvit_v2_s" else INFERENCE_LEVERS
    row = compare(
        f"{setting.name} inference",
        inference_rate(fast, clips),
        inference_rate(peer, clips),
        unit="clips/s",
        goal=GOAL_SPEED,
        peer_name=label,
        repeats=repeats,
        group="models",
        note=(
            f"batch {batch} x {_shape(setting.clip)}; max |output diff| {diff:.2g} (outputs up to {scale:.3g}); "
            f"{levers}; preparing the fast copy {prepare_s:.1f} s"
        ),
    )
    return row, diff


def training_rows(
    setting: Setting, ours_plain: nn.Module, peer: nn.Module, ctx: Context, label: str
) -> tuple[Row, float]:
    batch = setting.train_batch
    generator = torch.Generator().manual_seed(2)
    clips = torch.randn(batch, *setting.clip, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    ours = optimize_for_training(copy.deepcopy(ours_plain)).train()
    peer_model = copy.deepcopy(peer).train()
    # One step from the same weights: train-mode outputs, loss and gradients of the two sides.
    with deterministic(ours, peer_model):
        out_ours, out_peer = ours(clips), peer_model(clips)
        loss_ours = nn.functional.cross_entropy(out_ours, labels)
        loss_peer = nn.functional.cross_entropy(out_peer, labels)
        loss_ours.backward()
        loss_peer.backward()
    out_diff = max_abs_diff(out_ours, out_peer)
    grads = dict(ours.named_parameters())
    named = [(name, p) for name, p in peer_model.named_parameters() if p.grad is not None]
    grad_diff = max(max_abs_diff(grads[name].grad, p.grad) for name, p in named)
    grad_scale = max(p.grad.abs().max().item() for _, p in named)
    loss_diff = abs(loss_ours.item() - loss_peer.item())
    ours.zero_grad(set_to_none=True)
    peer_model.zero_grad(set_to_none=True)
    ours_opt, peer_opt = make_optimizer(ours), make_optimizer(peer_model)

    repeats = _repeats(setting, ctx)
    levers = MVIT_TRAINING_LEVERS if setting.name == "mvit_v2_s" else TRAINING_LEVERS
    randomness = (
        "; dropout and stochastic depth off for the comparison" if setting.name == "mvit_v2_s" else ""
    )
    row = compare(
        f"{setting.name} training step",
        training_rate(ours, ours_opt, clips, labels),
        training_rate(peer_model, peer_opt, clips, labels),
        unit="clips/s",
        goal=GOAL_SPEED,
        peer_name=label,
        repeats=repeats,
        group="models",
        note=(
            f"batch {batch} x {_shape(setting.clip)}, SGD; train mode: max |output diff| {out_diff:.2g}, "
            f"|loss diff| {loss_diff:.2g}, max |gradient diff| {grad_diff:.2g} (gradients up to {grad_scale:.2g}){randomness}; {levers}"
        ),
    )
    return row, out_diff


def inference_rate(model: nn.Module, clips: torch.Tensor):
    """A measurement: one forward pass on ``clips`` without autograd; clips/s."""

    def work() -> int:
        with torch.inference_mode():
            model(clips)
        return len(clips)

    return timed_rate(work)


def training_rate(model: nn.Module, optimizer, clips: torch.Tensor, labels: torch.Tensor):
    """A measurement: one training step on ``clips``; clips/s."""

    def work() -> int:
        train_step(model, optimizer, clips, labels)
        return len(clips)

    return timed_rate(work)


def compiled_training_row(
    setting: Setting, ours_plain: nn.Module, peer: nn.Module, ctx: Context, label: str
) -> Row:
    """The training row again with ``optimize_for_training(model, compile=True)``; the compilation
    (the first step) is timed and stated, not counted in the rate."""
    batch = setting.train_batch
    generator = torch.Generator().manual_seed(2)
    clips = torch.randn(batch, *setting.clip, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    ours = optimize_for_training(copy.deepcopy(ours_plain), compile=True).train()
    peer_model = copy.deepcopy(peer).train()
    started = time.perf_counter()
    out_ours = ours(clips)
    nn.functional.cross_entropy(out_ours, labels).backward()
    compile_s = time.perf_counter() - started
    out_diff = max_abs_diff(out_ours, peer_model(clips))
    ours.zero_grad(set_to_none=True)
    ours_opt, peer_opt = make_optimizer(ours), make_optimizer(peer_model)

    return compare(
        f"{setting.name} training step, torch.compile",
        training_rate(ours, ours_opt, clips, labels),
        training_rate(peer_model, peer_opt, clips, labels),
        unit="clips/s",
        goal=GOAL_SPEED,
        peer_name=label,
        repeats=_repeats(setting, ctx),
        group="models",
        note=(
            f"batch {batch} x {_shape(setting.clip)}, SGD; train mode: max |output diff| {out_diff:.2g}; the fast path "
            f"under torch.compile (inductor fuses BatchNorm, ReLU and their gradients); compiling and the first step "
            f"took {compile_s:.0f} s, not counted; opt-in (long runs only)"
        ),
    )


def _repeats(setting: Setting, ctx: Context) -> int:
    return ctx.repeats if setting.repeats_cap is None else max(1, min(ctx.repeats, setting.repeats_cap))


def _shape(clip: tuple[int, ...]) -> str:
    return " x ".join(map(str, clip))


# --- GEMM peak ------------------------------------------------------------------------------------------


def gemm_peak(sizes: tuple[int, ...], seconds: float = 1.0, trials: int = 3) -> tuple[float, int]:
    """Best fp32 ``torch.mm`` rate in GFLOP/s over ``sizes`` (square n x n), FLOPs = 2 n^3 per product
    (a multiply-add counted as two), each size timed for about ``seconds`` per trial; returns (GFLOP/s, n)."""
    best, best_n = 0.0, sizes[0]
    for n in sizes:
        generator = torch.Generator().manual_seed(n)
        a, b = torch.randn(n, n, generator=generator), torch.randn(n, n, generator=generator)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)
        for _ in range(trials):
            count, started = 0, time.perf_counter()
            while True:
                torch.mm(a, b, out=out)
                count += 1
                elapsed = time.perf_counter() - started
                if elapsed >= seconds / trials:
                    break
            rate = 2 * n**3 * count / elapsed / 1e9
            if rate > best:
                best, best_n = rate, n
    return best, best_n


def model_flops(setting: Setting, model: nn.Module) -> int:
    """Multiply-adds of one clip's forward pass (vidlearn.analysis; one multiply-add = one FLOP there)."""
    model = copy.deepcopy(model).eval()
    return trace_layers(model, torch.zeros(1, *setting.clip)).total_flops


def peak_rows(
    results: list[tuple[Setting, Row, Row, int]], peak: float, peak_n: int, ctx: Context
) -> list[Row]:
    rows = [
        Row(
            name="fp32 GEMM peak (torch.mm)",
            ours=peak,
            peer=peak,
            unit="GFLOP/s",
            ratio=1.0,
            goal="",
            peer_name="same measurement",
            ratio_min=1.0,
            ratio_max=1.0,
            repeats=1,
            group="peak",
            note=(
                f"best of square sizes, best n = {peak_n}; FLOPs = 2 n^3 (multiply and add counted separately); "
                f"{ctx.threads} threads; measured in this run before the model rows"
            ),
        )
    ]
    for setting, infer_row, train_row, macs in results:
        for mode, row, passes in (("inference", infer_row, 1), ("training", train_row, 3)):
            flop_per_clip = 2 * passes * macs
            ours = row.ours * flop_per_clip / 1e9
            peer_fraction = row.peer * flop_per_clip / 1e9 / peak
            goal = GOAL_PEAK if setting.name in CONV_NETS else ""
            rows.append(
                Row(
                    name=f"{setting.name} {mode}: fraction of GEMM peak",
                    ours=ours,
                    peer=peak,
                    unit="GFLOP/s",
                    ratio=ours / peak,
                    goal=goal,
                    peer_name="fp32 GEMM peak",
                    ratio_min=row.ours * row.ratio_min / row.ratio * flop_per_clip / 1e9 / peak
                    if row.ratio
                    else float("nan"),
                    ratio_max=row.ours * row.ratio_max / row.ratio * flop_per_clip / 1e9 / peak
                    if row.ratio
                    else float("nan"),
                    repeats=row.repeats,
                    group="peak",
                    note=(
                        f"{macs / 1e9:.3g} G multiply-adds per clip x 2 FLOPs"
                        + (" x 3 passes (forward, input and weight gradients)" if passes == 3 else "")
                        + f" x {row.ours:.3g} clips/s (median); {row.peer_name}: {peer_fraction:.2f} of the peak; "
                        "min-max follow the clips/s repeats"
                    ),
                )
            )
    return rows


# --- memory ------------------------------------------------------------------------------------------


def memory_probe(
    name: str, side: str, batch: int, clip: tuple[int, ...], options: dict, threads: int, tiny: bool
) -> dict:
    """In this (fresh) process: one training step of ``side`` ("ours" or "peer") at ``batch``; the
    resident-memory increase of the step and the absolute peak, in MiB."""
    torch.set_num_threads(threads)
    setting = Setting(name, tuple(clip), batch, batch, batch, tuple(options.items()))
    ours, peer = build_pair(setting, tiny)
    model = optimize_for_training(ours) if side == "ours" else peer
    model.train()
    optimizer = make_optimizer(model)
    generator = torch.Generator().manual_seed(3)
    clips = torch.randn(batch, *clip, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    before = _resident_mib()
    peak_before = _peak_resident_mib()
    train_step(model, optimizer, clips, labels)
    peak = _peak_resident_mib()
    return {"step_mib": peak - before, "peak_mib": peak, "before_mib": before, "peak_before_mib": peak_before}


def _resident_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_resident_mib() -> float:
    """This process's peak resident size. Linux: VmHWM, the peak of this program's own memory.
    Not ``ru_maxrss``: it keeps the parent's resident size at fork across exec, so a probe started
    by a large process reports the parent's size (every probe read 6005 MiB in such a run)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _run_probe(setting: Setting, side: str, ctx: Context) -> dict:
    spec = {
        "name": setting.name,
        "side": side,
        "batch": setting.memory_batch,
        "clip": list(setting.clip),
        "options": dict(setting.options),
        "threads": ctx.threads,
        "tiny": ctx.tiny,
    }
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--memory-probe", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe {setting.name}/{side} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_row(setting: Setting, ctx: Context, label: str) -> Row:
    repeats = max(1, min(ctx.repeats, 2))
    ours_values, peer_values, ours_peaks, peer_peaks = [], [], [], []
    for repeat in range(repeats):
        order = ("ours", "peer") if repeat % 2 == 0 else ("peer", "ours")
        for side in order:
            result = _run_probe(setting, side, ctx)
            (ours_values if side == "ours" else peer_values).append(result["step_mib"])
            (ours_peaks if side == "ours" else peer_peaks).append(result["peak_mib"])
    batch_note = (
        ""
        if ctx.tiny or setting.memory_batch == MEMORY_BATCH
        else f" (batch {MEMORY_BATCH} would need about {MEMORY_BATCH // setting.memory_batch} x this increase, more than a shared 24 GiB machine gives)"
    )
    return row_from(
        f"{setting.name} training step at batch {setting.memory_batch}: peak resident memory",
        ours_values,
        peer_values,
        unit="MiB",
        goal=GOAL_MEMORY,
        peer_name=label,
        group="memory",
        note=(
            f"{_shape(setting.clip)}{batch_note}; the step's increase: peak resident size (VmHWM) after one training step (SGD) minus "
            f"the resident size just before it, each side in a fresh process, alternating; absolute peaks "
            f"{statistics.median(ours_peaks):.0f} MiB ours, {statistics.median(peer_peaks):.0f} MiB peer"
        ),
    )


# --- the suite --------------------------------------------------------------------------------------------


def run(ctx: Context) -> list[Row]:
    """Rows of groups "models", "peak" and "memory" (see the module docstring). ``ctx.tiny`` runs on
    one thread: its layers are too small to share, and only the machinery is being checked."""
    threads = torch.get_num_threads()
    if ctx.tiny:
        ctx.threads = 1
    torch.set_num_threads(ctx.threads)
    try:
        return _run(ctx)
    finally:
        torch.set_num_threads(threads)


def _run(ctx: Context, models: tuple[str, ...] = MODELS, compile_training: bool = True) -> list[Row]:
    settings = TINY if ctx.tiny else FULL
    label = peer_label()
    ctx.log(f"models: peer {label}, {ctx.threads} threads, {ctx.repeats} repeats")
    peak, peak_n = gemm_peak((256, 512) if ctx.tiny else (1024, 2048, 3072), seconds=0.2 if ctx.tiny else 3.0)
    ctx.log(f"models: fp32 GEMM peak {peak:.1f} GFLOP/s (n = {peak_n})")
    speed_rows, results = [], []
    for name in models:
        setting = settings[name]
        ours, peer = build_pair(setting, ctx.tiny)
        ctx.log(f"models: {name} inference, batch {setting.infer_batch} x {_shape(setting.clip)}")
        infer_row, _ = inference_rows(setting, ours, peer, ctx, side_label(setting, ctx.tiny))
        ctx.log(f"models: {name} training, batch {setting.train_batch}")
        train_row, _ = training_rows(setting, ours, peer, ctx, side_label(setting, ctx.tiny))
        speed_rows += [infer_row, train_row]
        if compile_training and not ctx.tiny and name in CONV_NETS:
            ctx.log(f"models: {name} training under torch.compile (compiling first)")
            speed_rows.append(compiled_training_row(setting, ours, peer, ctx, side_label(setting, ctx.tiny)))
            ctx.log(
                f"models:   {speed_rows[-1].name}: ratio {speed_rows[-1].ratio:.2f} ({speed_rows[-1].ratio_min:.2f}-{speed_rows[-1].ratio_max:.2f})"
            )
        results.append((setting, infer_row, train_row, model_flops(setting, ours)))
        for row in (infer_row, train_row):
            ctx.log(
                f"models:   {row.name}: {row.ours:.3g} vs {row.peer:.3g} clips/s, ratio {row.ratio:.2f} ({row.ratio_min:.2f}-{row.ratio_max:.2f})"
            )
        del ours, peer
    memory_rows = []
    for name in TINY_MEMORY_MODELS if ctx.tiny else models:
        if name not in models:
            continue
        ctx.log(f"models: {name} memory, batch {settings[name].memory_batch} (fresh processes)")
        memory_rows.append(memory_row(settings[name], ctx, label))
    return speed_rows + peak_rows(results, peak, peak_n, ctx) + memory_rows


# --- levers one at a time (docs/model-speed.md) ----------------------------------------------------------------


def lever_rows(
    name: str, ctx: Context, batch: int | None = None, mode: str = "both", compile_too: bool = False
) -> list[Row]:
    """Each inference and training lever alone on ``name``, against vidlearn's plain eager model and
    torchvision's (ratios printed; rows against plain)."""
    setting = (TINY if ctx.tiny else FULL)[name]
    ours, peer = build_pair(setting, ctx.tiny)
    rows = []
    if mode in ("both", "inference"):
        b = batch or setting.infer_batch
        clips = torch.randn(b, *setting.clip)
        variants = {
            "torchvision eager": peer.eval(),
            "channels-last": channels_last(copy.deepcopy(ours).eval()),
            "BatchNorm folded": fuse_conv_bn(ours),
            "BatchNorm folded + channels-last": channels_last(fuse_conv_bn(ours)),
            "fast path (all)": optimize_for_inference(ours),
        }
        if compile_too:
            compiled = optimize_for_inference(ours, compile=True)
            started = time.perf_counter()
            with torch.inference_mode():
                compiled(clips)
            ctx.log(
                f"levers: torch.compile of the fast path took {time.perf_counter() - started:.0f} s (first call)"
            )
            variants["fast path + torch.compile"] = compiled
        plain = copy.deepcopy(ours).eval()

        for variant, model in variants.items():
            o, p = alternate(inference_rate(model, clips), inference_rate(plain, clips), ctx.repeats)
            rows.append(
                row_from(
                    f"{name} inference: {variant}",
                    o,
                    p,
                    unit="clips/s",
                    goal="",
                    peer_name="vidlearn plain eager",
                    note=f"batch {b}",
                    group="levers",
                )
            )
            ctx.log(
                f"levers: {rows[-1].name}: {rows[-1].ratio:.2f} x plain ({rows[-1].ratio_min:.2f}-{rows[-1].ratio_max:.2f})"
            )
    if mode in ("both", "training"):
        b = batch or setting.train_batch
        generator = torch.Generator().manual_seed(2)
        clips = torch.randn(b, *setting.clip, generator=generator)
        labels = torch.randint(0, NUM_CLASSES, (b,), generator=generator)
        variants = {
            "torchvision eager": copy.deepcopy(peer),
            "channels-last": channels_last(copy.deepcopy(ours)),
            "channels-last + weight-gradient plans (fast path)": optimize_for_training(copy.deepcopy(ours)),
        }
        plain = copy.deepcopy(ours)

        def run_train(model):
            model.train()
            optimizer = make_optimizer(model)

            def work() -> int:
                train_step(model, optimizer, clips, labels)
                return b

            return timed_rate(work)

        plain_measure = run_train(plain)
        for variant, model in variants.items():
            o, p = alternate(run_train(model), plain_measure, ctx.repeats)
            rows.append(
                row_from(
                    f"{name} training: {variant}",
                    o,
                    p,
                    unit="clips/s",
                    goal="",
                    peer_name="vidlearn plain eager",
                    note=f"batch {b}",
                    group="levers",
                )
            )
            ctx.log(
                f"levers: {rows[-1].name}: {rows[-1].ratio:.2f} x plain ({rows[-1].ratio_min:.2f}-{rows[-1].ratio_max:.2f})"
            )
    return rows


def _print_rows(rows: list[Row]) -> None:
    print("| group | task | vidlearn | peer | ratio (min-max) | goal | met | notes |")
    print("|---|---|---:|---:|---:|---|---|---|")
    for r in rows:
        met = {True: "yes", False: "**no**", None: ""}[r.met()]
        print(
            f"| {r.group} | {r.name} | {r.ours:.4g} {r.unit} | {r.peer:.4g} ({r.peer_name}) | {r.ratio:.2f} "
            f"({r.ratio_min:.2f}-{r.ratio_max:.2f}) | {r.goal} | {met} | {r.note} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="vidlearn's models against torchvision's: speed, GEMM-peak fraction, memory."
    )
    parser.add_argument("--tiny", action="store_true", help="seconds-long settings (CI)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="alternating repeats per row (default 5; tiny 1)"
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's, all cores)"
    )
    parser.add_argument(
        "--levers", metavar="MODEL", choices=MODELS, help="measure each lever alone on MODEL instead"
    )
    parser.add_argument("--lever-mode", choices=("both", "inference", "training"), default="both")
    parser.add_argument("--batch", type=int, default=None, help="batch for --levers")
    parser.add_argument(
        "--compile", action="store_true", help="with --levers: also torch.compile the inference path"
    )
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile training rows")
    parser.add_argument("--memory-only", action="store_true", help="only the memory rows")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--memory-probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        spec = json.loads(args.memory_probe)
        print(
            json.dumps(
                memory_probe(
                    spec["name"],
                    spec["side"],
                    spec["batch"],
                    spec["clip"],
                    spec["options"],
                    spec["threads"],
                    spec["tiny"],
                )
            )
        )
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (1 if args.tiny else 5)
    with tempfile.TemporaryDirectory(prefix="vidlearn-bench-models-") as work:
        ctx = Context(tiny=args.tiny, repeats=repeats, videos=[], synth_root=None, work_dir=Path(work))
        started = time.perf_counter()
        if args.levers:
            rows = lever_rows(args.levers, ctx, args.batch, args.lever_mode, args.compile)
        elif args.memory_only:
            settings = TINY if ctx.tiny else FULL
            rows = [memory_row(settings[name], ctx, peer_label()) for name in args.models]
        else:
            if ctx.tiny:
                ctx.threads = 1
                torch.set_num_threads(1)
            rows = _run(ctx, tuple(args.models), compile_training=not args.no_compile)
        ctx.log(f"{len(rows)} rows in {time.perf_counter() - started:.0f} s")
    _print_rows(rows)
    if args.json:
        args.json.write_text(json.dumps([r.to_json() for r in rows], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
