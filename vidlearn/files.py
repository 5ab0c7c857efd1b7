"""Writing files so that they appear whole or not at all (a leaf module: any package may use it)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Read once at import: the only way to read the umask is to set it, which would race with threads.
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[str]:
    """A temporary file name beside ``path`` to write to; renamed onto ``path`` when the block ends
    normally, deleted when it raises. A reader (or a run killed midway) never sees half a file.

    The temporary name starts with a dot, so dataset scans that skip hidden files ignore leftovers.
    The file gets the permissions of any new file (``0666`` less the umask), not ``mkstemp``'s
    private ``0600``: stores and checkpoints are often shared between users.
    """
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(descriptor)
    try:
        yield temporary
        if Path(temporary).exists():  # the block may have replaced it, or written elsewhere
            os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as temporary:
        Path(temporary).write_text(text, encoding="utf-8")
