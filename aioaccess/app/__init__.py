"""The assembly: what to serve (:class:`AppConfig`), and :class:`App`, which serves it under one lifespan.

The CLI builds an :class:`AppConfig` from flags or a ``serve`` file and calls :func:`run_app`;
an embedder builds one in Python and runs ``App(config)`` on its own loop.  Names are
imported on first use, so ``import aioaccess.app`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assembly import App
    from .config import AppConfig, BackendOptions, RelayOptions, ServiceSpec
    from .errors import SetupError
    from .run import run_app

__all__ = ["App", "AppConfig", "BackendOptions", "RelayOptions", "ServiceSpec", "SetupError", "run_app"]

_HOMES = {"App": "assembly", "AppConfig": "config", "BackendOptions": "config", "RelayOptions": "config",
          "ServiceSpec": "config", "SetupError": "errors", "run_app": "run"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
