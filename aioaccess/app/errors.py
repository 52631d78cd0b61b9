"""The one error the assembly raises for a config it cannot serve."""

from __future__ import annotations

__all__ = ["SetupError"]


class SetupError(Exception):
    """A setting out of range, a missing source, an unreachable backend, a port in use: one line.

    The CLI reports it as ``aioaccess COMMAND: error: ...`` with exit status 2.
    """
