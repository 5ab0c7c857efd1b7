"""The benchmark scripts run (tiny settings), so they never rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import SHARED_VIDEOS

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_cpu_precision_runs():
    done = subprocess.run([sys.executable, str(BENCH / "cpu_precision.py"), "--models", "course_3d", "--input", "3x4x16x16", "--batch", "2", "--repeats", "1"], capture_output=True, text=True, check=True, timeout=300)
    assert "| course_3d |" in done.stdout


def test_resize_on_decode_runs(need_shared):
    done = subprocess.run([sys.executable, str(BENCH / "resize_on_decode.py"), "--videos", str(SHARED_VIDEOS), "--frames", "3", "--repeats", "1"], capture_output=True, text=True, check=True, timeout=300)
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and "mp4" in line or "webm" in line]
    assert rows and all(line.rstrip().endswith("True |") for line in rows)


def test_flow_methods_runs():
    done = subprocess.run(
        [sys.executable, str(BENCH / "flow_methods.py"), "--videos", str(SHARED_VIDEOS), "--seconds", "0.01", "--repeats", "1", "--clips-per-class", "1", "--frames", "2", "--sizes", "64x48"],
        capture_output=True, text=True, check=True, timeout=600,
    )
    assert "| tvl1 | 64x48 |" in done.stdout and "end-point error" in done.stdout
