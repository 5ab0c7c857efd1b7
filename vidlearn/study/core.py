"""Studies: named, seeded experiments that train what they need, measure, and report.

A study is a list of runs and a list of claims. Each run is a function of the study's context (the
output folder, the seed, whether this is the quick version, and the results of the runs before it)
that returns a dict of measured numbers; each claim is a rule over those numbers
(``vidlearn.study.claims``). ``run_study`` executes the runs in order and writes
``OUT/report.json`` (``{"study", "seed", "quick", "seconds", "runs": {name: {...}}, "claims":
[{"id", "claim", "rule", "value", "shown"}]}``) and ``OUT/report.md``, whose first table is the
claims with their verdicts. Studies register themselves in ``vidlearn.study.STUDIES``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidlearn.errors import BadArgumentError
from vidlearn.files import write_text_atomic
from vidlearn.study.claims import Claim, verdict_word


@dataclass
class StudyContext:
    """What a run sees: where to write, the seed, the quick flag, earlier runs' results, and
    anything the study's setup prepared (``shared``: data folders, settings)."""

    out: Path
    seed: int
    quick: bool
    progress: bool = True
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyRun:
    """One run of a study: ``execute(context)`` returns its measured numbers (JSON-able)."""

    name: str
    execute: Callable[[StudyContext], dict[str, Any]]
    section: str = ""
    #: Runs whose outputs this one reads (a checkpoint to start from, models to measure): they run
    #: too when only some sections are asked for.
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Study:
    """``setup(context)`` runs first (e.g. synthesise the data); ``sections(context, report)``
    may return extra Markdown after the claims and the tables (pictures, notes)."""

    name: str
    title: str
    description: str
    runs: tuple[StudyRun, ...]
    claims: tuple[Claim, ...]
    setup: Callable[[StudyContext], None] | None = None
    columns: tuple[tuple[str, str], ...] = (("video_top1", "video acc"), ("clip_top1", "clip acc"))
    sections: Callable[[StudyContext, dict[str, Any]], list[str]] | None = None


def section_titles(study: Study) -> list[str]:
    return list(dict.fromkeys(run.section for run in study.runs))


def select_runs(study: Study, sections: list[str] | None) -> list[StudyRun]:
    """The runs of the named sections (by number from 1, or the start of their title), with the
    runs they need, in the study's order; all runs when ``sections`` is None."""
    if not sections:
        return list(study.runs)
    titles = section_titles(study)
    chosen: set[str] = set()
    for wanted in sections:
        matches = [
            t for i, t in enumerate(titles, 1) if wanted == str(i) or t.lower().startswith(wanted.lower())
        ]
        if not matches:
            listing = "; ".join(f"{i}: {t}" for i, t in enumerate(titles, 1))
            raise BadArgumentError(
                f"study {study.name} has no section {wanted!r}; its sections are {listing}"
            )
        chosen.update(matches)
    by_name = {run.name: run for run in study.runs}
    wanted_runs = {run.name for run in study.runs if run.section in chosen}
    pending = list(wanted_runs)
    while pending:
        for need in by_name[pending.pop()].needs:
            if need not in wanted_runs:
                wanted_runs.add(need)
                pending.append(need)
    return [run for run in study.runs if run.name in wanted_runs]


def run_study(
    study: Study,
    out: str | Path,
    seed: int = 0,
    quick: bool = False,
    progress: bool = True,
    sections: list[str] | None = None,
) -> dict[str, Any]:
    """Run the runs of ``study`` (of ``sections`` only, when given) into ``out`` and write its
    reports; returns ``report.json``'s content. Claims over runs left out are "not measured"."""
    runs = select_runs(study, sections)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    context = StudyContext(out=out, seed=seed, quick=quick, progress=progress)
    if study.setup is not None:
        study.setup(context)
    sections: dict[str, str] = {}
    for run in runs:
        if progress:
            print(f"\n== {study.name}: {run.name} ==")
        run_started = time.perf_counter()
        measured = dict(run.execute(context))
        measured.setdefault("seconds", time.perf_counter() - run_started)
        context.results[run.name] = measured
        sections[run.name] = run.section
    report = {
        "study": study.name,
        "seed": seed,
        "quick": quick,
        "seconds": time.perf_counter() - started,
        "runs": context.results,
        "claims": [],
    }
    report["claims"] = [claim.verdict(report) for claim in study.claims]
    write_text_atomic(out / "report.json", json.dumps(_plain(report), indent=2) + "\n")
    write_text_atomic(out / "report.md", markdown(study, report, sections, context))
    if progress:
        shown = sum(1 for c in report["claims"] if c["shown"])
        print(f"\n{study.name}: {shown} of {len(report['claims'])} claims shown; report: {out / 'report.md'}")
    return report


def markdown(study: Study, report: dict[str, Any], sections: dict[str, str], context: StudyContext) -> str:
    """The report: the claims table first, then each section's table of runs, then the study's own parts."""
    lines = [f"# {study.title}", "", study.description, ""]
    lines += [
        f"Seed {report['seed']}{' (quick version: every run tiny, numbers meaningless)' if report['quick'] else ''}; "
        f"{report['seconds'] / 60:.1f} minutes on {platform.machine()} with {os.cpu_count()} cores.",
        "",
        "## Claims",
        "",
        "| claim | the course says | rule | measured | verdict |",
        "|---|---|---|---|---|",
    ]
    for claim in report["claims"]:
        lines.append(
            f"| `{claim['id']}` | {claim['claim']} | `{claim['rule']}` | {_values(claim['value'])} | **{verdict_word(claim['shown'])}** |"
        )
    for section in dict.fromkeys(sections.values()):
        names = [name for name, s in sections.items() if s == section]
        tabled = [name for name in names if any(key in report["runs"][name] for key, _ in study.columns)]
        lines += ["", f"## {section or 'Runs'}", ""]
        if tabled:
            lines.append("| run | " + " | ".join(title for _, title in study.columns) + " | seconds |")
            lines.append("|---|" + "---:|" * (len(study.columns) + 1))
        for name in tabled:
            run = report["runs"][name]
            cells = [_value(run.get(key, math.nan)) for key, _ in study.columns]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {run.get('seconds', math.nan):.0f} |")
        for name in (n for n in names if n not in tabled):  # measurements: their numbers, one line
            numbers = {
                k: v
                for k, v in report["runs"][name].items()
                if isinstance(v, (int, float)) and k != "seconds"
            }
            lines += ["", f"{name}: " + ", ".join(f"{k} = {_value(v)}" for k, v in numbers.items()) + "."]
    if study.sections is not None:
        lines += ["", *study.sections(context, report)]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "" if value is None else str(value)
    if math.isnan(value):
        return "n/a"
    return f"{value:,}" if isinstance(value, int) else f"{value:.3f}"


def _values(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k} = {_value(v)}" for k, v in value.items())
    return _value(value)


def _plain(value: Any) -> Any:
    """JSON-able: NaN becomes null (JSON has no NaN), tuples become lists."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def find_study(name: str, studies: dict[str, Study]) -> Study:
    if name not in studies:
        raise BadArgumentError(
            f"no study {name!r}; studies: {', '.join(sorted(studies))} (vidlearn study --list)"
        )
    return studies[name]
