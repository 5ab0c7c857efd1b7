"""Studies: rules decide claims (checked by hand), the classic study's measures, its quick CI run."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from vidlearn.errors import BadArgumentError
from vidlearn.study import STUDIES, AllOf, AtLeast, AtMost, Between, Claim, Exceeds, Measure, run_study
from vidlearn.study.classic import CLAIMS
from vidlearn.study.classic_measures import epochs_to_reach, group_accuracy, twin_swaps
from vidlearn.study.core import select_runs

VIDLEARN = [sys.executable, "-m", "vidlearn.cli.main"]
RESULTS = {
    "runs": {"a": {"acc": 0.80, "nested": {"Ring": 0.5}}, "b": {"acc": 0.50}, "c": {"acc": float("nan")}}
}


def test_rules_decide_by_hand():
    a, b, c = Measure("a", "acc"), Measure("b", "acc"), Measure("c", "acc")
    assert AtLeast(a, 0.80).decide(RESULTS) == ({"a.acc": 0.80}, True)
    assert AtLeast(a, 0.81).decide(RESULTS)[1] is False
    assert AtMost(b, 0.50).decide(RESULTS)[1] is True
    assert (
        Between(b, 0.35, 0.65).decide(RESULTS)[1] is True
        and Between(a, 0.35, 0.65).decide(RESULTS)[1] is False
    )
    # 0.80 >= 0.50 + 0.30 holds although 0.5 + 0.3 is 0.8000000000000002 in floating point.
    assert Exceeds(a, b, 0.30).decide(RESULTS)[1] is True and Exceeds(a, b, 0.31).decide(RESULTS)[1] is False
    assert AllOf((AtLeast(a, 0.5), AtMost(b, 0.4))).decide(RESULTS)[1] is False
    assert AtLeast(Measure("a", "nested.Ring"), 0.5).decide(RESULTS)[1] is True
    # What a run did not measure (NaN, a missing run or metric) is "not measured", never a verdict.
    assert AtLeast(c, 0.0).decide(RESULTS)[1] is None
    assert Exceeds(Measure("missing", "acc"), b).decide(RESULTS)[1] is None
    assert AtLeast(Measure("a", "nope"), 0.0).decide(RESULTS)[1] is None


def test_rules_print_what_they_decide():
    a, b = Measure("slow_fusion", "reversed_top1"), Measure("late_fusion_pool", "reversed_top1")
    assert (
        Exceeds(a, b, 0.3).describe() == "slow_fusion.reversed_top1 >= late_fusion_pool.reversed_top1 + 0.30"
    )
    assert Between(a, 0.35, 0.65).describe() == "0.35 <= slow_fusion.reversed_top1 <= 0.65"
    assert AtMost(a, 1e-5).describe() == "slow_fusion.reversed_top1 <= 1e-05"
    claim = Claim("x-y", "A sentence.", AllOf((AtLeast(a, 0.9), AtMost(b, 0.1))))
    entry = claim.verdict(
        {"runs": {"slow_fusion": {"reversed_top1": 0.95}, "late_fusion_pool": {"reversed_top1": 0.05}}}
    )
    assert entry == {
        "id": "x-y",
        "claim": "A sentence.",
        "rule": "slow_fusion.reversed_top1 >= 0.90 and late_fusion_pool.reversed_top1 <= 0.10",
        "value": {"slow_fusion.reversed_top1": 0.95, "late_fusion_pool.reversed_top1": 0.05},
        "shown": True,
    }
    with pytest.raises(BadArgumentError):
        Claim("two words", "A sentence.", AtLeast(a, 0.9))


def test_twin_swaps_and_group_accuracy_by_hand():
    # Classes L, R (a time-reversed pair) and X. Rows are true classes.
    # L: 3 right, 1 given R, 1 given X; R: 2 right, 2 given L; X: 5 right.
    confusion = np.array([[3, 1, 1], [2, 2, 0], [0, 0, 5]])
    names = ["L", "R", "X"]
    rate, videos = twin_swaps(confusion, names, [("L", "R")])
    assert videos == 8 and rate == pytest.approx(3 / 8)  # the video given X is not in its own pair
    assert group_accuracy(confusion, names, ["L", "R"]) == pytest.approx(5 / 9)
    assert group_accuracy(confusion, names, ["X", "Missing"]) == 1.0
    assert math.isnan(group_accuracy(confusion, names, ["Missing"]))
    assert math.isnan(twin_swaps(confusion, names, [("L", "Missing")])[0])


def test_epochs_to_reach():
    assert epochs_to_reach([0.2, 0.5, 0.7, 0.7], 0.7) == 3
    assert epochs_to_reach([0.2, None, 0.9], 0.7) == 3
    assert epochs_to_reach([0.2, 0.3], 0.7) == 3  # never: one more than the epochs run


def test_sections_bring_the_runs_they_need():
    classic = STUDIES["classic"]
    names = [run.name for run in select_runs(classic, ["4"])]
    assert names[0] == "single_frame" and "inflation" in names and "slow_fusion" not in names
    assert [run.name for run in select_runs(classic, ["two streams"])] == [
        "spatial_stream",
        "flow_stream",
        "two_stream",
    ]
    with pytest.raises(BadArgumentError, match="no section '9'"):
        select_runs(classic, ["9"])


def test_quick_classic_study_writes_its_report(tmp_path):
    report = run_study(STUDIES["classic"], tmp_path / "classic", seed=0, quick=True, progress=False)
    on_disk = json.loads((tmp_path / "classic" / "report.json").read_text())
    assert set(on_disk) == {"study", "seed", "quick", "seconds", "runs", "claims"}
    assert (on_disk["study"], on_disk["seed"], on_disk["quick"]) == ("classic", 0, True)
    assert [c["id"] for c in on_disk["claims"]] == [c.id for c in CLAIMS]
    assert all(set(c) == {"id", "claim", "rule", "value", "shown"} for c in on_disk["claims"])
    single = on_disk["runs"]["single_frame"]
    for key in ("video_top1", "clip_top1", "per_class_video_accuracy", "twin_swap_rate", "twin_pair_videos"):
        assert key in single, key
    assert len(single["per_class_video_accuracy"]) == 13
    # Measurements that hold whatever the training: a 3D convolution's features shift with the
    # clip, and the inflated network equals the 2D one on a constant video.
    assert (
        report["runs"]["shift"]["conv3d_shift_error"] <= 1e-5 < report["runs"]["shift"]["early_fusion_change"]
    )
    assert report["runs"]["inflation"]["constant_video_difference"] <= 1e-5
    text = (tmp_path / "classic" / "report.md").read_text()
    first_table = text[text.index("## Claims") :].split("\n\n")[1]
    assert len(first_table.splitlines()) == 2 + len(CLAIMS)
    assert all(f"`{claim.id}`" in first_table for claim in CLAIMS)
    assert (tmp_path / "classic" / "learning_curves_where_to_fuse_time.png").read_bytes()[:4] == b"\x89PNG"


def test_study_command_line():
    listing = subprocess.run(
        [*VIDLEARN, "study", "--list"], capture_output=True, text=True, check=True
    ).stdout
    assert "classic" in listing and "claim 3d-sees-time: slow_fusion.video_top1 >= 0.90" in listing
    done = subprocess.run([*VIDLEARN, "study", "nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "no study 'nope'" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(
        [*VIDLEARN, "study", "classic", "--sections", "9", "--out", "/nonexistent/x"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no section '9'" in done.stderr
