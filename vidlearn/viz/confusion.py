"""Confusion-matrix picture (PNG), readable up to a few dozen classes.

Rows are true classes and columns predicted classes, as ``vidlearn.engine.metrics`` builds them.
Drawn on a bare ``Figure`` with the Agg canvas rather than through ``pyplot``: no global figure
state, no dependence on the user's configured backend, safe to call from any thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vidlearn.errors import BadArgumentError
from vidlearn.files import atomic_path

# Above this many classes the cells get too small for numbers to be legible.
MAX_CLASSES_WITH_CELL_VALUES = 20


def row_normalized(confusion: np.ndarray) -> np.ndarray:
    """``K x K`` fractions: each row divided by its sum, so row ``t`` shows where true class ``t``
    went. A row with no samples stays all 0."""
    counts = np.asarray(confusion, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    out = np.zeros_like(counts)
    np.divide(counts, totals, out=out, where=totals != 0)
    return out


def _cell_text(value: float, normalize: bool) -> str:
    return f"{value:.2f}" if normalize else str(int(value))


def _draw(confusion: np.ndarray, class_names: Sequence[str], title: str | None, normalize: bool) -> Figure:
    values = row_normalized(confusion) if normalize else confusion.astype(np.float64)
    num_classes = values.shape[0]
    # About half an inch per class plus room for the rotated labels and the colour bar.
    side = max(4.0, 0.45 * num_classes + 2.5)
    figure = Figure(figsize=(side + 1.0, side), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(values.max(), 1.0))
    colour_label = "fraction of true class" if normalize else "count"
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label=colour_label)

    ticks = np.arange(num_classes)
    axes.set_xticks(ticks, labels=list(class_names), rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(ticks, labels=list(class_names))
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if title:
        axes.set_title(title)

    if num_classes <= MAX_CLASSES_WITH_CELL_VALUES:
        # Dark text on light cells, light text on dark ones.
        threshold = image.norm.vmax / 2.0
        font_size = 9 if num_classes <= 10 else 7
        for row in range(num_classes):
            for column in range(num_classes):
                value = values[row, column]
                axes.text(
                    column,
                    row,
                    _cell_text(value, normalize),
                    ha="center",
                    va="center",
                    fontsize=font_size,
                    color="white" if value > threshold else "black",
                )
    return figure


def plot_confusion(
    confusion: object,
    class_names: Sequence[str],
    path: str | Path,
    title: str | None = None,
    normalize: bool = True,
) -> Path:
    """Write a confusion matrix as a PNG and return its path.

    Args:
        confusion: ``K x K`` counts (numpy array, list or torch tensor); rows true class,
            columns predicted class.
        class_names: ``K`` tick labels.
        path: where the PNG goes; its folder must exist. Written to a temporary file in the same
            folder and then renamed over ``path``, so a reader never sees a half-written picture.
        title: optional title above the matrix.
        normalize: show each row as fractions of that true class (recall on the diagonal)
            instead of raw counts.

    With ``K <= 20`` every cell also shows its value (two decimals, or the count).
    """
    if hasattr(confusion, "detach"):
        confusion = confusion.detach().cpu().numpy()
    counts = np.asarray(confusion)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise BadArgumentError(f"confusion must be a non-empty K x K array, got shape {counts.shape}")
    if len(class_names) != counts.shape[0]:
        raise BadArgumentError(
            f"{len(class_names)} class names given for a {counts.shape[0]} x {counts.shape[0]} confusion matrix"
        )
    path = Path(path)
    if not path.parent.is_dir():
        raise BadArgumentError(f"{path}: folder {path.parent} does not exist")

    figure = _draw(counts, class_names, title, normalize)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return path
