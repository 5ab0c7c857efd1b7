"""The main job, in its quick CI version: synthesise, train the five models, write the report."""

from __future__ import annotations

import re

import pytest

from vidlearn.engine.demo import DEMO_MODELS, SECTIONS, DemoSettings, reversed_pair_scores, run_demo


def test_reversed_pair_scores_by_hand():
    import numpy as np

    # Classes: L, R (a time-reversed pair), X. Rows are true classes.
    # L: 3 right, 1 predicted R;  R: 2 right, 2 predicted L;  X is not a pair class.
    confusion = np.array([[3, 1, 0], [2, 2, 0], [0, 0, 5]])
    accuracy, swapped = reversed_pair_scores(confusion, ["L", "R", "X"], [("L", "R")])
    assert accuracy == pytest.approx(5 / 8) and swapped == pytest.approx(3 / 8)


def test_quick_demo_writes_the_report(tmp_path):
    settings = DemoSettings().quick()
    report = run_demo(tmp_path / "demo", settings, progress=False)
    text = report.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert [row.split("|")[1].strip() for row in rows] == list(DEMO_MODELS)
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert int(cells[2].replace(",", "")) > 0  # params
        assert all(0.0 <= float(c) <= 1.0 for c in cells[4:8])  # accuracies are fractions
    curves = sorted((tmp_path / "demo").glob("learning_curves_*.png"))
    assert len(curves) == len(SECTIONS) and all(c.read_bytes()[:4] == b"\x89PNG" for c in curves)
    assert (tmp_path / "demo" / "videomae" / "pretraining_loss.png").exists()
    for name in DEMO_MODELS:
        assert (tmp_path / "demo" / name / "confusion.png").exists()
        assert (tmp_path / "demo" / name / "best.safetensors").exists()
    assert re.search(r"Whole demo: [\d.]+ minutes", text)
    # The reading of the table quotes the table's own numbers.
    single_frame_row = next(row for row in rows if row.split("|")[1].strip() == "single_frame")
    video_accuracy = single_frame_row.split("|")[6].strip()
    assert f"single_frame reached video accuracy {video_accuracy};" in text
