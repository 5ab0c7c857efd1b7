"""Checkpoints: one safetensors file holding the weights (and, for resuming, the optimiser state and
RNG), with the JSON record of everything needed to reproduce and to use the model in its metadata.

Why one file: replacing a single file with ``os.replace`` is atomic, so a run killed while saving
leaves the previous checkpoint intact. A human-readable copy of the record is written beside it as
``<name>.json``. Loading reads tensors and JSON only: no pickle, so no code runs on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vidlearn.errors import VidlearnError
from vidlearn.files import atomic_path, write_text_atomic

RECORD_KEY = "vidlearn_record"
FORMAT_VERSION = 1


class CheckpointError(VidlearnError):
    """A checkpoint is missing, unreadable or not a vidlearn checkpoint."""


@dataclass
class Checkpoint:
    """What a checkpoint file holds.

    ``record``: JSON-able dict (model name and arguments, class names, clip spec, normalisation,
    training config and data, metrics with their protocol, params, FLOPs, library version, and for
    resuming: epoch, step, optimiser hyper-parameters).
    ``model``: the model's state dict. ``optimizer``/``rng``: present in resumable checkpoints.
    """

    record: dict[str, Any]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None
    rng: dict[str, torch.Tensor] = field(default_factory=dict)


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> Path:
    """Write atomically (temporary file in the same folder, then rename) and a ``.json`` copy of the record."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in checkpoint.model.items()}
    record = dict(checkpoint.record, format_version=FORMAT_VERSION)
    if checkpoint.optimizer is not None:
        optimizer_tensors, optimizer_json = _split_optimizer_state(checkpoint.optimizer)
        tensors.update({f"optimizer.{k}": v for k, v in optimizer_tensors.items()})
        record["optimizer_state"] = optimizer_json
    tensors.update({f"rng.{k}": v.detach().cpu().contiguous() for k, v in checkpoint.rng.items()})
    with atomic_path(path) as temporary:
        save_file(_unshare(tensors), temporary, metadata={RECORD_KEY: json.dumps(record)})
    record_text = json.dumps({k: v for k, v in record.items() if k != "optimizer_state"}, indent=2)
    write_text_atomic(path.with_suffix(".json"), record_text + "\n")
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint`` (tensors and JSON only; nothing is executed)."""
    path = Path(path)
    if path.is_dir():
        candidates = [path / "best.safetensors", path / "last.safetensors"]
        path = next((c for c in candidates if c.exists()), candidates[0])
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        with safe_open(str(path), framework="pt", device=str(map_location)) as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    if RECORD_KEY not in metadata:
        raise CheckpointError(
            f"{path}: a safetensors file without a vidlearn record (not written by vidlearn)"
        )
    record = json.loads(metadata[RECORD_KEY])
    optimizer_json = record.pop("optimizer_state", None)
    groups = {"model": {}, "optimizer": {}, "rng": {}}
    for key, value in tensors.items():
        group, _, name = key.partition(".")
        groups[group][name] = value
    optimizer = (
        _join_optimizer_state(groups["optimizer"], optimizer_json) if optimizer_json is not None else None
    )
    return Checkpoint(record=record, model=groups["model"], optimizer=optimizer, rng=groups["rng"])


def read_record(path: str | Path) -> dict[str, Any]:
    """Only the JSON record of a checkpoint (cheap: no tensors are read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads((f.metadata() or {})[RECORD_KEY])
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a vidlearn checkpoint ({exc})") from None


def _split_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch optimiser state -> (flat tensors, JSON for the rest)."""
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict[str, Any]] = {}
    for param_id, values in state_dict["state"].items():
        plain = {}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{param_id}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain[name] = value
        per_param[str(param_id)] = plain
    return tensors, {"param_groups": state_dict["param_groups"], "state": per_param}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in plain["state"].items()}
    for key, value in tensors.items():
        param_id, _, name = key.partition(".")
        state.setdefault(int(param_id), {})[name] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def _unshare(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied weights): give each its own storage."""
    seen: set[int] = set()
    out = {}
    for key, value in tensors.items():
        pointer = value.untyped_storage().data_ptr() if value.numel() else id(value)
        out[key] = value.clone() if pointer in seen else value
        seen.add(pointer)
    return out
