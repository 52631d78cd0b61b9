"""Run servers on one event loop: uvloop when present, signals only set flags."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

from ..server import Server

__all__ = ["LoopChoice", "install_signal_handlers", "run", "serve_until_signalled"]

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
    """SIGINT/SIGTERM call ``on_exit`` (which only sets a flag); returns an uninstaller."""
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


async def serve_until_signalled(server: Server, cleanup: Callable[[], Awaitable[None]] | None = None) -> int:
    """Serve until SIGINT/SIGTERM, shut down gracefully, run ``cleanup``; exit status 0.

    The handlers stay installed until the loop closes, so a second signal
    during shutdown (or while the caller closes its backends) is only logged.
    """
    install_signal_handlers(server.close)
    # What startup built (schema, codec tables, backends) lives as long as the process: keep it out of the
    # collector's full passes, which calls waiting on a backend (Redis) would otherwise trigger often.
    gc.collect()  # garbage first: what is frozen is never collected
    gc.freeze()
    try:
        await server.serve()
    finally:
        if cleanup is not None:
            await cleanup()
    return 0
