"""``vidlearn study``: run a named study and write its report (``vidlearn demo``: the classic one)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    s = subparsers.add_parser(
        "study",
        help="run a study: train what it needs, measure, decide the course's claims, write runs/NAME/report.md",
        description="Run the named study (see --list). It writes OUT/report.md (the claims with their verdicts first) and OUT/report.json.",
    )
    s.add_argument("name", nargs="?", help="the study (e.g. classic)")
    s.add_argument("--list", action="store_true", help="list the studies, their sections and claims")
    s.add_argument("--seed", type=int, default=0, help="seed of the data and of every run (default 0)")
    s.add_argument(
        "--quick", action="store_true", help="the minutes-long smoke version (tiny runs; numbers meaningless)"
    )
    s.add_argument("--out", type=Path, metavar="DIR", help="output folder (default runs/NAME)")
    s.add_argument(
        "--sections",
        help="only these sections, by number or title start, comma-separated (e.g. 1,3 or 'two streams')",
    )
    s.set_defaults(func=run_study_command)

    d = subparsers.add_parser(
        "demo",
        help="the main job: the classic study into runs/demo (same as `vidlearn study classic --out runs/demo`)",
    )
    d.add_argument("--out", type=Path, default=Path("runs/demo"), metavar="DIR")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quick", action="store_true", help="the minutes-long smoke version")
    d.add_argument("--sections", help="only these sections (see `vidlearn study --list`)")
    d.set_defaults(func=run_study_command, name="classic", list=False)


def run_study_command(args: argparse.Namespace) -> int:
    from vidlearn.errors import BadArgumentError
    from vidlearn.study import STUDIES, find_study, run_study
    from vidlearn.study.core import section_titles

    if args.list:
        for study in STUDIES.values():
            print(f"{study.name}: {study.title}")
            for number, title in enumerate(section_titles(study), 1):
                print(f"  section {number}: {title}")
            for claim in study.claims:
                print(f"  claim {claim.id}: {claim.rule.describe()}")
        return 0
    if not args.name:
        raise BadArgumentError("name a study (vidlearn study --list shows them)")
    study = find_study(args.name, STUDIES)
    sections = [part.strip() for part in args.sections.split(",") if part.strip()] if args.sections else None
    run_study(
        study, args.out or Path("runs") / study.name, seed=args.seed, quick=args.quick, sections=sections
    )
    return 0
