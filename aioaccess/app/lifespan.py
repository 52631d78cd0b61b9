"""Run an app on one event loop: uvloop when present, signals only set flags."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any, Literal

__all__ = ["LoopChoice", "freeze_startup_objects", "install_signal_handlers", "run"]

logger = logging.getLogger("aioaccess.cli")

LoopChoice = Literal["auto", "asyncio", "uvloop"]


def run(main: Coroutine[Any, Any, int], loop: LoopChoice = "auto") -> int:
    """Run ``main`` to completion on a new loop and return its exit status."""
    if loop in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def install_signal_handlers(on_exit: Callable[[], None]) -> Callable[[], None]:
    """SIGINT/SIGTERM call ``on_exit`` (which only sets a flag); returns an uninstaller.

    Left installed until the loop closes, a second signal during shutdown is only logged.
    """
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, _log_and_call, sig, on_exit)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signal support
            pass

    def uninstall() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return uninstall


def _log_and_call(sig: signal.Signals, on_exit: Callable[[], None]) -> None:
    logger.info("Received %s; shutting down (in-flight calls finish first)", sig.name)
    on_exit()


def freeze_startup_objects() -> None:
    """Keep what startup built (schema, codec tables, backends) out of the collector's full passes.

    It lives as long as the process; calls waiting on a backend (Redis) would otherwise trigger those often.
    """
    gc.collect()  # garbage first: what is frozen is never collected
    gc.freeze()
