"""A timeout for an awaitable that needs no Task: the S3 container's calls can run outside one.

``asyncio.timeout`` cancels the current Task, so it needs one.  obstore's
calls wait only on plain asyncio futures, which the server can wait on
without a Task (``task_free``); ``within`` keeps that true: it steps the
awaitable itself, remembers the future it waits on, and cancels that
future when the time is up, so the wait ends with ``TimeoutError``.  A
cancellation from outside (server shutdown) stays a ``CancelledError``.
Inside a Task it works the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any, TypeVar

__all__ = ["within"]

T = TypeVar("T")


class _Deadline:
    """``await within(awaitable, timeout)``: one ``call_later`` per wait, no Task, no extra coroutine."""

    __slots__ = ("awaitable", "timeout", "waiting", "expired")

    def __init__(self, awaitable: Awaitable[Any], timeout: float) -> None:
        self.awaitable = awaitable
        self.timeout = timeout
        self.waiting: Any = None
        self.expired = False

    def _expire(self) -> None:
        self.expired = True
        waiting = self.waiting
        if waiting is not None and asyncio.isfuture(waiting):
            waiting.cancel()

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self.awaitable.__await__()
        timer = asyncio.get_running_loop().call_later(self.timeout, self._expire)
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                try:
                    yielded = steps.send(sent) if thrown is None else steps.throw(thrown)
                except StopIteration as stop:
                    return stop.value
                except asyncio.CancelledError:
                    if self.expired:
                        raise TimeoutError from None
                    raise
                if self.expired and asyncio.isfuture(yielded):  # it expired between two waits
                    yielded.cancel()
                self.waiting = yielded
                try:
                    sent, thrown = (yield yielded), None
                except BaseException as exc:  # noqa: BLE001 - forwarded into the awaitable
                    sent, thrown = None, exc
                self.waiting = None
        finally:
            timer.cancel()


def within(awaitable: Awaitable[T], timeout: float | None) -> Awaitable[T]:
    """``awaitable``, ending with ``TimeoutError`` once ``timeout`` seconds pass (None: no limit)."""
    if timeout is None:
        return awaitable
    return _Deadline(awaitable, timeout)
