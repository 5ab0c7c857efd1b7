"""Model analysis: per-layer output sizes, receptive fields, parameters and FLOPs.

``summarize(model, (C, T, H, W))`` gives a ``ModelSummary`` (``to_json()``, ``format_table()``);
``summarize_model(name)`` does the same for a registered model. FLOPs count one multiply-add as
one FLOP. How things are counted and measured: ``docs/analysis.md``.
"""

from vidlearn.analysis.receptive_field import receptive_fields
from vidlearn.analysis.summary import (
    FLOP_RULE,
    LayerStats,
    ModelSummary,
    parse_input_shape,
    summarize,
    summarize_model,
)

__all__ = [
    "FLOP_RULE",
    "LayerStats",
    "ModelSummary",
    "parse_input_shape",
    "receptive_fields",
    "summarize",
    "summarize_model",
]
