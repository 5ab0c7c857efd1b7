"""Shared test fixtures: where the real sample videos are, and tiny generated videos."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VIDLEARN_SHARED", REPO.parent / "shared"))
SHARED_VIDEOS = SHARED / "videos"


def shared_videos() -> list[Path]:
    """Every real sample video in ../shared/videos (empty if the folder is absent)."""
    if not SHARED_VIDEOS.is_dir():
        return []
    return sorted(
        p for p in SHARED_VIDEOS.iterdir() if p.suffix.lower() in {".mp4", ".mov", ".mkv", ".webm", ".avi"}
    )


def hmdb_subset_videos() -> list[Path]:
    root = SHARED / "datasets" / "hmdb51_subset"
    return sorted(root.glob("*/*.avi")) if root.is_dir() else []


@pytest.fixture
def need_shared():
    if not shared_videos():
        pytest.skip(f"real sample videos not found in {SHARED_VIDEOS}")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never write to the user's cache."""
    monkeypatch.setenv("VIDLEARN_CACHE", str(tmp_path_factory.getbasetemp() / "vidlearn-cache"))


def moving_square_frames(num_frames: int = 12, height: int = 48, width: int = 64) -> np.ndarray:
    """A bright square moving right on a dark background: every frame distinct, easy to identify."""
    frames = np.full((num_frames, height, width, 3), 16, dtype=np.uint8)
    for t in range(num_frames):
        x = 2 + 3 * t
        frames[t, 16:32, x : x + 12] = (230, 60, 40)
    return frames


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small SynthActions dataset, rendered once per test session and shared by xdist workers."""
    from filelock import FileLock

    from vidlearn.data.synth import SYNTH_VERSION, synthesize

    shared = tmp_path_factory.getbasetemp().parent
    root = shared / f"synthactions-small-v{SYNTH_VERSION}"
    with FileLock(str(shared / "synthactions-small.lock")):
        if not (root / "synth.json").exists():
            synthesize(root, num_videos=18 * 20, seed=3, workers=2, num_untrimmed=1, progress=False)
    return root


def pytest_configure(config):
    """Under xdist each worker has one core's share: more intra-op threads only contend."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@contextmanager
def recording(model: nn.Module, names):
    """Yield a dict that collects the outputs of the named submodules during forwards."""
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [
        modules[name].register_forward_hook(lambda _m, _i, out, name=name: outputs.__setitem__(name, out))
        for name in names
    ]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def assert_exports(model: nn.Module, clip: torch.Tensor, folder: Path) -> None:
    """``model`` (in eval mode) survives ``torch.export`` and ONNX: the exported program and the
    ONNX file run by onnxruntime give the model's own outputs on ``clip``."""
    onnxruntime = pytest.importorskip("onnxruntime")
    with torch.no_grad():
        expected = model(clip)
        program = torch.export.export(model, (clip,))
        torch.testing.assert_close(program.module()(clip), expected)
        path = folder / "model.onnx"
        # From the exported program: the ONNX exporter would otherwise trace the model again.
        torch.onnx.export(program, (clip,), str(path), dynamo=True, input_names=["clips"], verbose=False)
    session = onnxruntime.InferenceSession(str(path))
    logits = session.run(None, {"clips": clip.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(logits), expected, rtol=1e-4, atol=1e-4)
