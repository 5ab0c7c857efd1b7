"""Claims as data, verdicts by rules.

A claim is one sentence of the course, the numbers of a run that decide it, and a rule over those
numbers. The rule is a small tree of comparisons (``AtLeast``, ``AtMost``, ``Between``,
``Exceeds``, ``AllOf``) that both prints itself ("slow_fusion.video_top1 >= 0.90") and decides
the verdict, so the sentence a reader sees and the code that decides can never disagree. A number
that a run did not measure (the run failed or was left out, NaN) makes the claim "not measured",
never "shown".

Measures name a number of a study's results: ``Measure("slow_fusion", "video_top1")`` reads
``results["runs"]["slow_fusion"]["video_top1"]``; a dotted metric reads nested dicts
(``"per_class_video_accuracy.Ring"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vidlearn.errors import BadArgumentError


@dataclass(frozen=True)
class Measure:
    """One measured number: ``metric`` of run ``run`` (dots walk into nested dicts)."""

    run: str
    metric: str

    def name(self) -> str:
        return f"{self.run}.{self.metric}"

    def read(self, results: dict[str, Any]) -> float:
        value: Any = results.get("runs", {}).get(self.run)
        for part in self.metric.split("."):
            if not isinstance(value, dict) or part not in value:
                return math.nan
            value = value[part]
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _fmt(bound: float) -> str:
    return f"{bound:.2f}" if abs(bound) >= 0.01 or bound == 0 else f"{bound:g}"


class Rule:
    """A comparison over measures: ``describe()`` prints it, ``decide(results)`` gives the measured
    values by name and whether the rule holds (None when a value is missing)."""

    def describe(self) -> str:
        raise NotImplementedError

    def measures(self) -> list[Measure]:
        raise NotImplementedError

    def holds(self, values: dict[str, float]) -> bool:
        raise NotImplementedError

    def decide(self, results: dict[str, Any]) -> tuple[dict[str, float], bool | None]:
        values = {m.name(): m.read(results) for m in self.measures()}
        if any(math.isnan(v) for v in values.values()):
            return values, None
        return values, bool(self.holds(values))


@dataclass(frozen=True)
class AtLeast(Rule):
    measure: Measure
    bound: float

    def describe(self) -> str:
        return f"{self.measure.name()} >= {_fmt(self.bound)}"

    def measures(self) -> list[Measure]:
        return [self.measure]

    def holds(self, values: dict[str, float]) -> bool:
        return values[self.measure.name()] >= self.bound


@dataclass(frozen=True)
class AtMost(Rule):
    measure: Measure
    bound: float

    def describe(self) -> str:
        return f"{self.measure.name()} <= {_fmt(self.bound)}"

    def measures(self) -> list[Measure]:
        return [self.measure]

    def holds(self, values: dict[str, float]) -> bool:
        return values[self.measure.name()] <= self.bound


@dataclass(frozen=True)
class Between(Rule):
    measure: Measure
    low: float
    high: float

    def describe(self) -> str:
        return f"{_fmt(self.low)} <= {self.measure.name()} <= {_fmt(self.high)}"

    def measures(self) -> list[Measure]:
        return [self.measure]

    def holds(self, values: dict[str, float]) -> bool:
        return self.low <= values[self.measure.name()] <= self.high


@dataclass(frozen=True)
class Exceeds(Rule):
    """``larger >= smaller + margin``: a difference claimed only beyond ``margin``."""

    larger: Measure
    smaller: Measure
    margin: float = 0.0

    def describe(self) -> str:
        plus = f" + {_fmt(self.margin)}" if self.margin else ""
        return f"{self.larger.name()} >= {self.smaller.name()}{plus}"

    def measures(self) -> list[Measure]:
        return [self.larger, self.smaller]

    def holds(self, values: dict[str, float]) -> bool:
        # A tiny tolerance: "a >= a + 0" must hold although the two were summed in other orders.
        return values[self.larger.name()] >= values[self.smaller.name()] + self.margin - 1e-12


@dataclass(frozen=True)
class AllOf(Rule):
    rules: tuple[Rule, ...]

    def describe(self) -> str:
        return " and ".join(rule.describe() for rule in self.rules)

    def measures(self) -> list[Measure]:
        seen: dict[str, Measure] = {}
        for rule in self.rules:
            for measure in rule.measures():
                seen.setdefault(measure.name(), measure)
        return list(seen.values())

    def holds(self, values: dict[str, float]) -> bool:
        return all(rule.holds(values) for rule in self.rules)


@dataclass(frozen=True)
class Claim:
    """``id``: short and stable (``3d-sees-time``); ``claim``: the course's statement in one sentence."""

    id: str
    claim: str
    rule: Rule

    def __post_init__(self) -> None:
        if not self.id or " " in self.id:
            raise BadArgumentError(f"a claim id is one word with dashes, got {self.id!r}")

    def verdict(self, results: dict[str, Any]) -> dict[str, Any]:
        """The JSON entry of ``report.json``'s ``claims``: id, claim, rule, value(s), shown."""
        values, shown = self.rule.decide(results)
        value: Any = next(iter(values.values())) if len(values) == 1 else values
        return {
            "id": self.id,
            "claim": self.claim,
            "rule": self.rule.describe(),
            "value": value,
            "shown": shown,
        }


def verdict_word(shown: bool | None) -> str:
    return {True: "shown", False: "not shown", None: "not measured"}[shown]
