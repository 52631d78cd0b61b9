"""The progress bar of the commands that move many Communications (rich, on stderr when it is a terminal)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(no_progress: bool, *, count: bool = False) -> Any:
    """A ``rich`` Progress: bytes moved (or items with ``count``), off with ``no_progress`` or off a terminal."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn() if count else DownloadColumn(), TimeElapsedColumn(), transient=False,
                    disable=no_progress or not sys.stderr.isatty())
