"""Studies: seeded experiments whose reports decide the course's claims by rules over measured
numbers (``vidlearn study NAME``; ``docs/studies.md``)."""

from vidlearn.study.claims import AllOf, AtLeast, AtMost, Between, Claim, Exceeds, Measure, Rule
from vidlearn.study.classic import STUDY as CLASSIC
from vidlearn.study.core import Study, StudyContext, StudyRun, find_study, run_study

STUDIES = {study.name: study for study in (CLASSIC,)}

__all__ = [
    "STUDIES",
    "AllOf",
    "AtLeast",
    "AtMost",
    "Between",
    "Claim",
    "Exceeds",
    "Measure",
    "Rule",
    "Study",
    "StudyContext",
    "StudyRun",
    "find_study",
    "run_study",
]
