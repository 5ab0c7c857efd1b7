"""Metrics to CSV (always) and TensorBoard (when the tensorboard package is installed)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends one row per epoch to ``out/metrics.csv`` and scalars to ``out/tb``."""

    def __init__(self, out: Path, enabled: bool = True):
        self.path = Path(out) / "metrics.csv"
        self.enabled = enabled
        self._writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional; the CSV is the record
                SummaryWriter = None
            if SummaryWriter is not None:
                self._writer = SummaryWriter(log_dir=str(Path(out) / "tb"))

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        scalars = {k: v for k, v in row.items() if isinstance(v, (int, float))}
        columns = self._header()
        rows = self._rows()
        # A resumed run repeats the epoch it was killed in: its new row replaces the old one.
        kept = [r for r in rows if float(r.get("epoch") or 0) < float(scalars.get("epoch", 0))]
        missing = [k for k in scalars if k not in columns]
        if missing or not columns or len(kept) != len(rows):
            columns = columns + missing
            self._rewrite(columns, kept)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=columns).writerow(scalars)
        if self._writer is not None:
            for key, value in scalars.items():
                if key not in ("epoch", "step"):
                    self._writer.add_scalar(key, value, global_step=int(row.get("epoch", 0)))
            self._writer.flush()

    def _header(self) -> list[str]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            return next(csv.reader(f), [])

    def _rows(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, columns: list[str], rows: list[dict[str, str]]) -> None:
        with self.path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
