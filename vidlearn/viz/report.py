"""Pictures for study reports: learning curves (training loss and evaluated video accuracy per epoch)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vidlearn.files import atomic_path


def _save_figure(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        FigureCanvasAgg(figure).print_png(temporary)


def plot_learning_curves(rows: Sequence[Any], path: str | Path, split: str = "val") -> Path:
    """Training loss and video accuracy on ``split`` ("val" or "test": the ``<split>_video_top1``
    entries of each row's history) per epoch, one line per model."""
    key = f"{split}_video_top1"
    figure = Figure(figsize=(11, 4))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for row in rows:
        epochs = [h["epoch"] for h in row.history]
        loss_axes.plot(epochs, [h["train_loss"] for h in row.history], marker="o", label=row.model)
        tested = [h for h in row.history if key in h]
        accuracy_axes.plot(
            [h["epoch"] for h in tested], [h[key] for h in tested], marker="o", label=row.model
        )
    loss_axes.set(title="training loss", xlabel="epoch", ylabel="cross-entropy")
    name = "validation" if split == "val" else split
    accuracy_axes.set(title=f"{name} video accuracy (top-1)", xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    accuracy_axes.legend(fontsize=8)
    figure.tight_layout()
    _save_figure(figure, Path(path))
    return Path(path)


def section_slug(section: str) -> str:
    """A file-name-safe form of a report section's title."""
    return "".join(c if c.isalnum() else "_" for c in section.lower()).strip("_")[:40]
