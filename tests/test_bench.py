"""The benchmark scripts run (tiny settings), so they never rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_VIDEOS

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_cpu_precision_runs():
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "cpu_precision.py"),
            "--models",
            "course_3d",
            "--input",
            "3x4x16x16",
            "--batch",
            "2",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert "| course_3d |" in done.stdout


def test_resize_on_decode_runs(need_shared):
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "resize_on_decode.py"),
            "--videos",
            str(SHARED_VIDEOS),
            "--frames",
            "3",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| ") and not line.startswith("| file ")
    ]
    assert len(rows) >= 3 and all(line.rstrip().endswith("True |") for line in rows), rows


def test_flow_methods_runs():
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "flow_methods.py"),
            "--videos",
            str(SHARED_VIDEOS),
            "--seconds",
            "0.01",
            "--repeats",
            "1",
            "--clips-per-class",
            "1",
            "--frames",
            "2",
            "--sizes",
            "64x48",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    assert "| tvl1 | 64x48 |" in done.stdout and "end-point error" in done.stdout


def test_make_bench_runs_in_tiny_mode(tmp_path):
    """`bench/run.py --tiny`: every suite runs (peers that are not installed are left out) and writes
    the rows the issue asks for, in results.json and between the markers of benchmarks.md."""
    import json

    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--tiny",
            "--out",
            str(tmp_path),
            "--videos",
            str(SHARED_VIDEOS),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["rows"]
    assert {"clips", "prepared", "e2e", "models", "peak", "memory", "loop"} <= {row["group"] for row in rows}
    for row in rows:
        assert {"name", "ours", "peer", "unit", "ratio", "goal"} <= set(row)
        assert row["ours"] > 0 and row["peer"] > 0
        assert row["repeats"] == 1 and row["ratio"] == pytest.approx(
            row["ours"] / row["peer"], rel=1e-3, abs=1e-4
        )
    doc = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- make bench: begin -->" in doc and "<!-- make bench: end -->" in doc
    assert "bench/run.py --tiny" in doc and results["machine"]["cores"]
    loop = [row for row in rows if row["group"] == "loop"]  # TrainingLoop against a plain PyTorch loop
    assert loop and all(row["goal"] == ">= 0.98" and "plain PyTorch loop" in row["peer_name"] for row in loop)
