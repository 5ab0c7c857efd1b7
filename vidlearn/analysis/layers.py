"""Run a model once and record, call by call, the layers a summary table shows.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``, which sees every aten operation
(convolutions, matrix products, attention) wherever the model calls it, as a module or as a
function. Forward hooks on every module read its running total before and after each call, so a
call's FLOPs are known both with and without those of the modules it calls.

Which calls become rows (the rule the documentation states):

- a leaf module (one without children) that owns parameters or changes the shape of its input:
  convolutions, linear layers, batch norms, pools, flatten; not ReLU, dropout or identity;
- any module that runs FLOPs of its own, outside its children: e.g. an attention block whose
  matrix products are ``torch.matmul`` or ``scaled_dot_product_attention`` calls in ``forward``;
- any module that owns parameters directly, e.g. a class token or a positional embedding.

A module called several times gives one row per call; its parameters are counted at its first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

# FlopCounterMode counts a multiply-add as 2 FLOPs; vidlearn (like the papers' tables) counts it as 1.
FLOPS_PER_MULTIPLY_ADD = 2


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# On CPU tensors attention runs a CPU-only fused kernel that FlopCounterMode's registry lacks;
# its cost is the same two matrix products as the registered attention kernels'.
_EXTRA_FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}


@dataclass(frozen=True)
class LayerCall:
    """One row: the ``call``-th call (from 0) of the module called ``name`` in the model.

    ``output`` is the full shape of its first output tensor, batch included; ``flops`` are
    multiply-adds for the whole batch, excluding those of other rows.
    """

    name: str
    call: int
    type: str
    output: tuple[int, ...]
    params: int
    flops: int


@dataclass
class ModelTrace:
    """The rows of one forward pass and the pass's total multiply-adds (whole batch)."""

    layers: list[LayerCall]
    total_flops: int


@dataclass
class _Frame:
    """A module call in progress: the counter's total when it began, and its children's FLOPs so far."""

    flops_at_start: int
    input_shape: tuple[int, ...] | None
    child_flops: int = 0


@dataclass
class _Recorder:
    counter: FlopCounterMode
    names: dict[nn.Module, str]
    stack: list[_Frame] = field(default_factory=list)
    calls: dict[nn.Module, int] = field(default_factory=dict)
    layers: list[LayerCall] = field(default_factory=list)

    def before(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        first = first_tensor(args)
        self.stack.append(
            _Frame(self.counter.get_total_flops(), None if first is None else tuple(first.shape))
        )

    def after(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        frame = self.stack.pop()
        inclusive = self.counter.get_total_flops() - frame.flops_at_start
        own_flops = inclusive - frame.child_flops
        if self.stack:
            self.stack[-1].child_flops += inclusive
        call = self.calls.get(module, 0)
        self.calls[module] = call + 1
        out = first_tensor(output)
        out_shape = () if out is None else tuple(out.shape)
        own_params = sum(p.numel() for p in module.parameters(recurse=False))
        is_leaf = next(module.children(), None) is None
        if own_flops > 0 or own_params > 0 or (is_leaf and out_shape != frame.input_shape):
            self.layers.append(
                LayerCall(
                    name=self.names[module],
                    call=call,
                    type=type(module).__name__,
                    output=out_shape,
                    params=own_params if call == 0 else 0,
                    flops=own_flops // FLOPS_PER_MULTIPLY_ADD,
                )
            )


def trace_layers(model: nn.Module, clips: torch.Tensor) -> ModelTrace:
    """Run ``model(clips)`` without gradients and record its rows (see the module docstring)."""
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
    recorder = _Recorder(counter, module_names(model))
    handles = []
    for module in recorder.names:
        handles.append(module.register_forward_pre_hook(recorder.before))
        handles.append(module.register_forward_hook(recorder.after))
    try:
        with torch.no_grad(), counter:
            model(clips)
    finally:
        for handle in handles:
            handle.remove()
    return ModelTrace(recorder.layers, counter.get_total_flops() // FLOPS_PER_MULTIPLY_ADD)


def module_names(model: nn.Module) -> dict[nn.Module, str]:
    """Every module of ``model`` with its qualified name; the model itself is ``"(model)"``."""
    return {module: name or "(model)" for name, module in model.named_modules()}


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor in a (nested) tuple, list or dict, or ``value`` itself if it is one."""
    if isinstance(value, torch.Tensor):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
    for item in items:
        found = first_tensor(item)
        if found is not None:
            return found
    return None


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model``, each shared parameter once."""
    return sum(math.prod(p.shape) for p in model.parameters())
