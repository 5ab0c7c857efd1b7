"""Device choice and mixed precision."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from vidlearn.errors import BadArgumentError
from vidlearn.speed import optimize_for_inference


def pick_device(name: str, dist=None) -> torch.device:
    """ "auto": the process's GPU when there is one (its local rank's under torchrun), else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank if dist is not None else 0)
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadArgumentError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadArgumentError(f"device {name!r} asked for, but no CUDA GPU is available")
    return device


def autocast_context(amp: str, device: torch.device):
    """Mixed precision only where it helps: on a GPU (bf16 if supported, else fp16) under "auto".

    On a CPU "auto" means full fp32: bf16 autocast is many times slower than fp32 on CPUs
    without native bf16 instructions (AVX2-only machines like our CI).
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return contextlib.nullcontext()
    if amp == "auto":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def inference_model(model: nn.Module, device: torch.device) -> nn.Module:
    """The model to score clips with: on a CPU an eval-mode copy through
    ``vidlearn.speed.optimize_for_inference`` (BatchNorm folded, channels-last, fused oneDNN
    convolutions; equal to the plain model up to rounding), elsewhere the model in eval mode."""
    if device.type == "cpu":
        return optimize_for_inference(model)
    return model.eval()
