"""The event loop runner of every command (it lives in :mod:`aioaccess.app.lifespan`)."""

from __future__ import annotations

from ..app.lifespan import LoopChoice, run

__all__ = ["LoopChoice", "run"]
