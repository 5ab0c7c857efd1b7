"""What every `make bench` suite shares: alternating same-run measurements and result rows.

A row compares vidlearn with one peer on one task. Both are measured in the same process, in
alternating order (ours, peer; then peer, ours; ...), ``repeats`` times; the row keeps the median
of each side, and the ratio ours / peer as the median of the per-repeat ratios with their min-max.
On these shared, noisy machines only such ratios mean anything; absolute rates are shown for scale.

A measurement is a function that does the work once and returns a rate (items per second) or,
for costs such as memory, an amount; the goal says which way the ratio should go (">= 1.3" for a
rate, "<= 1.0" for a cost).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

Measure = Callable[[], float]


@dataclass
class Row:
    """One result: ``ratio`` = ours / peer (median of per-repeat ratios), goal as text (">= 1.3")."""

    name: str
    ours: float
    peer: float
    unit: str
    ratio: float
    goal: str
    peer_name: str = ""
    ratio_min: float = float("nan")
    ratio_max: float = float("nan")
    repeats: int = 1
    note: str = ""
    group: str = ""

    def met(self) -> bool | None:
        """Whether the goal holds (None when there is no goal)."""
        if not self.goal:
            return None
        op, value = self.goal.split()
        return self.ratio >= float(value) if op == ">=" else self.ratio <= float(value)

    def to_json(self) -> dict:
        data = asdict(self)
        data["met"] = self.met()
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in data.items()}


def timed_rate(work: Callable[[], int]) -> Measure:
    """A measurement that runs ``work`` (which returns how many items it did) and gives items/s."""

    def measure() -> float:
        start = time.perf_counter()
        items = work()
        return items / (time.perf_counter() - start)

    return measure


def alternate(
    ours: Measure, peer: Measure, repeats: int, warmup: bool = True
) -> tuple[list[float], list[float]]:
    """Run ``ours`` and ``peer`` ``repeats`` times each, alternating which goes first."""
    if warmup:  # page cache, lazy imports, allocator and thread pools
        ours()
        peer()
    ours_values, peer_values = [], []
    for repeat in range(repeats):
        if repeat % 2 == 0:
            ours_values.append(ours())
            peer_values.append(peer())
        else:
            peer_values.append(peer())
            ours_values.append(ours())
    return ours_values, peer_values


def compare(
    name: str,
    ours: Measure,
    peer: Measure,
    *,
    unit: str,
    goal: str,
    peer_name: str,
    repeats: int,
    note: str = "",
    group: str = "",
    warmup: bool = True,
) -> Row:
    """Measure both sides alternately and make the row."""
    ours_values, peer_values = alternate(ours, peer, repeats, warmup=warmup)
    return row_from(
        name, ours_values, peer_values, unit=unit, goal=goal, peer_name=peer_name, note=note, group=group
    )


def row_from(
    name: str,
    ours_values: list[float],
    peer_values: list[float],
    *,
    unit: str,
    goal: str,
    peer_name: str,
    note: str = "",
    group: str = "",
) -> Row:
    """A row from paired measurements (already taken alternately)."""
    ratios = [o / p for o, p in zip(ours_values, peer_values)]  # for a cost, below 1 is better: goal "<= x"
    return Row(
        name=name,
        ours=statistics.median(ours_values),
        peer=statistics.median(peer_values),
        unit=unit,
        ratio=statistics.median(ratios),
        goal=goal,
        peer_name=peer_name,
        ratio_min=min(ratios),
        ratio_max=max(ratios),
        repeats=len(ratios),
        note=note,
        group=group,
    )


@dataclass
class Context:
    """What a suite needs: size of the run, where the inputs are, a log for progress."""

    tiny: bool
    repeats: int
    videos: list[Path]
    synth_root: Path | None
    work_dir: Path
    threads: int = field(default_factory=lambda: torch.get_num_threads())

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine_facts() -> dict:
    """CPU model, cores, flags that matter for fp32 speed, library versions."""
    facts = {
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    for module in ("av", "decord", "torchcodec", "torchvision", "cv2", "numpy"):
        try:
            facts[module] = __import__(module).__version__
        except Exception:  # noqa: BLE001 - a missing or broken peer is a fact too
            facts[module] = "not available"
    return facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def write_results(rows: list[Row], facts: dict, command: str, path: Path) -> None:
    """``bench/results.json``: the rows as the issue asks, with the machine and the command."""
    payload = {"command": command, "machine": facts, "rows": [row.to_json() for row in rows]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
