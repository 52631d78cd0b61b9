"""A user error the CLI reports in one line, with exit status 2."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """Bad flags, a missing source or an unreachable backend: one line, exit 2."""
