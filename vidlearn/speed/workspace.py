"""Scratch memory reused across layers and calls by the CPU speed paths.

On a CPU the kernel zero-fills every new page of a large allocation at a fifth of the speed of a
copy, so temporaries that are allocated afresh at every layer (Winograd's transformed tiles, the
attention gradient) cost more than the arithmetic they feed; here they live in buffers that stay.
"""

from __future__ import annotations

import math
import threading

import torch


class Workspace(threading.local):
    """Reusable scratch buffers for Winograd's transforms (and other fast paths' temporaries:
    ``mvit_attention.py``'s attention gradient), one set per thread. ``take(slot, shape, dtype)``
    returns a tensor of ``shape`` backed by buffer ``slot``, grown when too small and otherwise
    reused as is: its contents are garbage, and it is valid only until the same slot is taken again.
    Never returned to the caller or saved for a backward pass."""

    def __init__(self) -> None:
        self.buffers: dict[int | str, torch.Tensor] = {}

    def take(self, slot: int | str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        numel = math.prod(shape)
        buffer = self.buffers.get(slot)
        if buffer is None or buffer.dtype != dtype or buffer.numel() < numel:
            with torch.inference_mode(False):  # an ordinary tensor, writable in and out of inference mode
                buffer = torch.empty(numel, dtype=dtype)
            self.buffers[slot] = buffer
        return buffer[:numel].view(shape)

    def release(self) -> None:
        """Free the buffers (they are rebuilt at the next use)."""
        self.buffers.clear()


WORKSPACE = Workspace()
