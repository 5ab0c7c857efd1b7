"""Tables on the terminal (rich), for the CLI's human-readable output."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from rich import box
from rich.console import Console
from rich.table import Table


@lru_cache(maxsize=1)
def console() -> Console:
    """stdout console; wide when piped (rich would wrap every table at 80 columns)."""
    probe = Console()
    return probe if probe.is_terminal else Console(width=200)


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None) -> Table:
    out = Table(title=title, title_justify="left", title_style="dim", box=box.SIMPLE_HEAD)
    for name in columns:
        out.add_column(name, no_wrap=True)
    for row in rows:
        out.add_row(*(str(cell) for cell in row))
    return out
