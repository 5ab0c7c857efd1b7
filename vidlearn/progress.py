"""Progress bars for anything that takes more than a second (a leaf module: any package may use it).

Bars go to stderr so that ``--json`` output on stdout stays clean, and they are plain when the
output is not a terminal (CI logs get a few lines, not thousands of redraws).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextmanager
def progress_bar(total: int | None, description: str, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """``with progress_bar(n, "decoding") as advance: ... advance()``; ``advance(k, text)`` moves k steps and updates the text."""
    if not enabled:
        yield lambda steps=1, text=None: None
        return
    stderr = Console(stderr=True)
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, console=stderr, transient=False, disable=not stderr.is_terminal) as progress:
        task = progress.add_task(description, total=total, info="")

        def advance(steps: int = 1, text: str | None = None) -> None:
            progress.update(task, advance=steps, **({"info": text} if text is not None else {}))

        yield advance
