"""What the model sees: RGB clips, optical flow clips, or both, built from the run's config."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import Any

from vidlearn.data.dataset import ClipDataset, Normalization
from vidlearn.data.index import VideoIndex
from vidlearn.data.prepared import MANIFEST as PREPARED_MANIFEST
from vidlearn.data.prepared import PreparedSettings, PreparedStore, default_prepared_folder
from vidlearn.data.samplers import ClipSpec
from vidlearn.motion.dataset import INPUT_CHANNELS, FlowClipDataset, FlowViews
from vidlearn.motion.flow import DEFAULT_METHOD
from vidlearn.motion.store import FlowStore


def _getter(config: Any):
    """Reads keys of a config object or of a checkpoint record's config dict alike."""
    return config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)


def input_settings(config: Any) -> dict[str, Any]:
    """The input recipe of a config or of a checkpoint's config dict (older records: RGB)."""
    get = _getter(config)
    return {
        "input": get("input", "rgb"),
        "flow_method": get("flow_method", DEFAULT_METHOD),
        "flow_store": get("flow_store"),
    }


def view_shape(config: Any) -> tuple[int, int, int, int]:
    """One view's shape ``(C, T, H, W)``: flow clips carry T-1 fields for T frames."""
    get = _getter(config)
    kind = input_settings(config)["input"]
    frames = get("num_frames") - 1 if kind == "flow" else get("num_frames")
    return (INPUT_CHANNELS[kind], frames, get("size"), get("size"))


def with_store_method(config: Any, dataset_root: str) -> Any:
    """The config with ``flow_method`` set to the method its flow store was made with, so that
    prediction (which computes flow on the fly) feeds the model the same kind of flow."""
    if not getattr(config, "flow_store", None):
        return config
    method = FlowStore(config.flow_store, dataset_root).settings.method
    return config if method == config.flow_method else dataclasses.replace(config, flow_method=method)


def make_dataset(
    index: VideoIndex,
    spec: ClipSpec,
    train: bool,
    config: Any,
    seed: int = 0,
    normalization: Normalization = Normalization(),
    normalize: bool = True,
) -> ClipDataset:
    """A ``ClipDataset`` of RGB clips, or a ``FlowClipDataset`` when the config asks for flow; frames
    come from a prepared-data store when the config's ``prepared`` picks one. ``normalize=False``:
    RGB clips stay uint8 until ``dataset.model_input`` (flow is float either way)."""
    settings = input_settings(config)
    prepared = prepared_store(_getter(config)("prepared", "auto"), index.source.root, spec.short_side)
    if settings["input"] == "rgb":
        return ClipDataset(
            index,
            spec,
            train=train,
            seed=seed,
            normalization=normalization,
            prepared=prepared,
            normalize=normalize,
        )
    store = FlowStore(settings["flow_store"], index.source.root) if settings["flow_store"] else None
    return FlowClipDataset(
        index,
        spec,
        train,
        seed,
        normalization,
        prepared=prepared,
        input=settings["input"],
        method=settings["flow_method"],
        store=store,
    )


def prepared_store(setting: str, dataset_root: str, short_side: int) -> PreparedStore | None:
    """The prepared-data store that a ``prepared`` setting picks, or None to decode the originals.

    ``"auto"``: the default store of (dataset, short side) if ``vidlearn prepare`` made one;
    ``"off"``: none; else the store's folder. A store of another short side is not used: its frames
    would have to be resized again, and then would differ from decoded ones.
    """
    if setting == "off":
        return None
    folder = (
        default_prepared_folder(dataset_root, PreparedSettings(short_side))
        if setting == "auto"
        else Path(setting)
    )
    if setting == "auto" and not (folder / PREPARED_MANIFEST).exists():
        return None
    store = PreparedStore(folder, dataset_root)
    if store.settings.short_side != short_side:
        _say_once(
            f"the prepared store {folder} has short side {store.settings.short_side}, the clips {short_side}: decoding the original videos"
        )
        return None
    _say_once(f"reading prepared frames from {folder}")
    return store


@functools.cache
def _say_once(message: str) -> None:
    # Training builds a train and a test dataset: one line for both; and one for all distributed ranks.
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"vidlearn: {message}", file=sys.stderr)


def prediction_views(config: Any, spec: ClipSpec, normalization: Normalization) -> FlowViews | None:
    """Flow views for predicting on single videos (flow computed on the fly), or None for RGB."""
    settings = input_settings(config)
    if settings["input"] == "rgb":
        return None
    return FlowViews(
        spec, input=settings["input"], method=settings["flow_method"], normalization=normalization
    )
