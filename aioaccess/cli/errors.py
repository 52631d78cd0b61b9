"""A user error the CLI reports in one line, with exit status 2."""

from __future__ import annotations

from ..app.errors import SetupError as UsageError

__all__ = ["UsageError"]
