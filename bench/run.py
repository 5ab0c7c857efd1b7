"""`make bench`: every benchmark suite in one run; writes bench/results.json and docs/benchmarks.md.

    bench/.venv/bin/python bench/run.py                 # the full run (make bench), ~35 min on 2 cores
    .venv/bin/python bench/run.py --tiny --out DIR      # seconds: the CI check that it still runs
    bench/.venv/bin/python bench/run.py --only clips --videos ../shared/videos/*.avi   # a part: prints its table

Suites (each a module with ``run(ctx) -> list[Row]``): clips (sampling from the original files
against decord, torchcodec and PyAV), prepared (a prepared store against decord on the originals),
models (vidlearn's models against torchvision's, GEMM peak, memory), e2e (loader + model against
the model alone), loop (vidlearn's training loop against a plain PyTorch loop on the same data and
model). Peers that are not installed are left out (the tiny CI run has none but PyAV).

docs/benchmarks.md keeps its hand-written sections; the run replaces only the part between the
``<!-- make bench -->`` markers. Outside ``--tiny``, each suite runs in a process of its own, so
that no suite measures in the state another one left (allocator, thread pools, page cache of the
decoders: in one process, r3d_18 training measured 3x slower after the decoding suites than alone).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import Context, Row, machine_facts, write_results  # noqa: E402

REPO = HERE.parent
SUITES = ("clips", "prepared", "models", "e2e", "loop")
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov"}
SHARED_VIDEOS = REPO.parent / "shared" / "videos"
BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"
TITLES = {
    "clips": "1. Clip sampling from the original files",
    "prepared": "2. Prepared data against decord on the original files",
    "models": "3. Models against torchvision's same architectures",
    "e2e": "4. End-to-end training: loader + model against the model alone",
    "peak": "5. Distance to the machine's limit (fp32 GEMM peak)",
    "memory": "6. Peak memory of a training step at batch 8",
    "loop": "7. vidlearn's training loop against a plain PyTorch loop",
}


def synthesize_dataset(root: Path, videos: int, ctx: Context) -> Path:
    from vidlearn.data.synth import synthesize

    ctx.log(f"SynthActions: {videos} videos into {root}")
    synthesize(root, num_videos=videos, seed=0, num_untrimmed=0, progress=False)
    return root


def markdown(rows: list[Row], facts: dict, command: str, seconds: float) -> str:
    lines = [
        BEGIN,
        "## `make bench` results",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} in one run of {seconds / 60:.0f} min with:",
        "",
        "```bash",
        command,
        "```",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in facts.items()) + ".",
        "",
        "Every ratio is vidlearn / peer for rates (higher is better) and for costs (lower is better),",
        "measured alternately in the same process; the median of the per-repeat ratios, with min-max.",
        "The same rows are in `bench/results.json`.",
    ]
    for group, title in TITLES.items():
        group_rows = [r for r in rows if r.group == group]
        if not group_rows:
            continue
        lines += [
            "",
            f"### {title}",
            "",
            "| task | vidlearn | peer | ratio (min-max) | goal | met | notes |",
            "|---|---:|---:|---:|---|---|---|",
        ]
        for r in group_rows:
            met = {True: "yes", False: "**no**", None: ""}[r.met()]
            lines.append(
                f"| {r.name} | {r.ours:.4g} {r.unit} | {r.peer:.4g} ({r.peer_name}) | {r.ratio:.2f} ({r.ratio_min:.2f}-{r.ratio_max:.2f}) "
                f"| {r.goal} | {met} | {r.note} |"
            )
    lines.append(END)
    return "\n".join(lines)


def save(rows: list[Row], command: str, seconds: float, out: Path | None, unfinished: list[str]) -> None:
    """Write results.json and the benchmarks.md block (to ``out``, else bench/ and docs/)."""
    facts = machine_facts()
    table = markdown(rows, facts, command, seconds)
    if unfinished:
        table = table.replace(
            END, f"\n(run interrupted or still going: suites {', '.join(unfinished)} not measured yet)\n{END}"
        )
    results = (out or HERE) / "results.json"
    doc = (out / "benchmarks.md") if out else REPO / "docs" / "benchmarks.md"
    write_results(rows, facts, command, results)
    write_doc(doc, table)
    print(f"{len(rows)} rows after {seconds:.0f} s -> {results}, {doc}")


def write_doc(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        title, _, body = text.partition("\n")
        text = f"{title}\n\n{block}\n{body}"
    path.write_text(text)


def run_suite(suite: str, ctx: Context, args: argparse.Namespace) -> list[Row]:
    """One suite's rows: in this process (tiny runs, and the child of an isolated run), else in a
    fresh process running this script on the same inputs."""
    if args.tiny or args.rows_to:
        return importlib.import_module(f"suite_{suite}").run(ctx)
    rows_file = ctx.work_dir / f"rows-{suite}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--only",
        suite,
        "--repeats",
        str(ctx.repeats),
        "--rows-to",
        str(rows_file),
        "--videos",
        *map(str, ctx.videos or [ctx.work_dir / "no-videos"]),
    ]
    if ctx.synth_root is not None:
        command += ["--synth-root", str(ctx.synth_root)]
    subprocess.run(command, check=True)
    return [Row(**data) for data in json.loads(rows_file.read_text())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run vidlearn's benchmark suites against their peers.")
    parser.add_argument(
        "--tiny", action="store_true", help="seconds-long settings (CI): checks the suites still run"
    )
    parser.add_argument(
        "--only", default=",".join(SUITES), help=f"comma-separated suites of {', '.join(SUITES)}"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="alternating repeats per row (default 3; tiny 1)"
    )
    parser.add_argument(
        "--videos",
        type=Path,
        nargs="+",
        default=[SHARED_VIDEOS],
        help="real videos, or folders of them (default ../shared/videos)",
    )
    parser.add_argument(
        "--synth-videos", type=int, default=None, help="SynthActions videos to render (default 180; tiny 18)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for results.json and benchmarks.md (default: bench/ and docs/ for a full run; a partial or tiny run only prints its table)",
    )
    parser.add_argument(
        "--rows-to", type=Path, default=None, help=argparse.SUPPRESS
    )  # the child of an isolated run
    parser.add_argument(
        "--synth-root", type=Path, default=None, help=argparse.SUPPRESS
    )  # its parent's SynthActions
    args = parser.parse_args(argv)
    suites = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(suites) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    repeats = args.repeats or (1 if args.tiny else 3)
    videos = sorted(
        video
        for place in args.videos
        for video in (place.glob("*") if place.is_dir() else [place])
        if video.suffix.lower() in VIDEO_SUFFIXES and video.is_file()
    )
    if args.tiny:
        videos = videos[:2]
    command = "bench/.venv/bin/python bench/run.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vidlearn-bench-") as work:
        ctx = Context(tiny=args.tiny, repeats=repeats, videos=videos, synth_root=None, work_dir=Path(work))
        if not videos:
            ctx.log(f"no videos in {' '.join(map(str, args.videos))}: the per-file rows are left out")
        if args.synth_root:
            ctx.synth_root = args.synth_root
        elif {"clips", "prepared", "e2e", "loop"} & set(suites):
            ctx.synth_root = synthesize_dataset(
                Path(work) / "synth", args.synth_videos or (18 if args.tiny else 180), ctx
            )
        rows: list[Row] = []
        complete = not args.tiny and suites == list(SUITES) and args.videos == [SHARED_VIDEOS]
        for done, suite in enumerate(suites, 1):
            ctx.log(f"suite {suite}")
            rows += run_suite(suite, ctx, args)
            if args.rows_to:
                continue
            if args.out or complete:  # after every suite, so that an interrupted run keeps what it measured
                save(rows, command.strip(), time.perf_counter() - started, args.out, unfinished=suites[done:])
    seconds = time.perf_counter() - started
    if args.rows_to:
        args.rows_to.write_text(json.dumps([dataclasses.asdict(row) for row in rows]))
        return 0
    if not (args.out or complete):  # a partial run never overwrites the full run's results
        print(markdown(rows, machine_facts(), command.strip(), seconds))
    missed = [r for r in rows if r.met() is False]
    print(f"goals missed: {len(missed)}")
    for r in missed:
        print(f"  missed: [{r.group}] {r.name} vs {r.peer_name}: {r.ratio:.2f} (goal {r.goal})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
