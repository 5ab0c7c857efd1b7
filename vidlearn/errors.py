"""One exception family. Every message names the file (and line) and the reason.

The CLI turns a ``VidlearnError`` into one line on stderr and a non-zero exit code;
any other exception reaching the user is a bug.
"""

from __future__ import annotations

from pathlib import Path


class VidlearnError(Exception):
    """Base class of every error vidlearn raises on purpose."""


class VideoReadError(VidlearnError):
    """A video cannot be opened, probed or decoded."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class AnnotationError(VidlearnError):
    """An annotation or split file is malformed."""

    def __init__(self, path: str | Path, reason: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.reason = reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


class BadArgumentError(VidlearnError, ValueError):
    """A user-supplied argument is out of range or inconsistent."""


class UnsupportedLayerError(VidlearnError):
    """A speed path (``vidlearn.speed``) is asked to convert a layer it has no equal form for."""
