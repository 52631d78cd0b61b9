"""One Thrift service over one handler, whatever the transport."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from .._types import (
    CallbackFetchHandler,
    CheckedRawStore,
    FetchThen,
    InlineSafeHandler,
    RawFetchHandler,
    RawStoreHandler,
    TaskFreeHandler,
)
from ..wire.messages import DEFAULT_MAX_REPLY_SIZE
from .fast_fetch import CallObserver, FastFetch, snapshot
from .methods import Method, method_table

__all__ = ["Service"]


class Service:
    """The method table of ``service`` over ``handler`` and the handler's capabilities, read once.

    Capabilities come from the typed Protocols of :mod:`aioaccess._types`:
    ``raw_fetch`` (:class:`~aioaccess._types.RawFetchHandler`: fetch answered
    with stored bytes), ``raw_store`` (:class:`~aioaccess._types.RawStoreHandler`),
    ``inline`` (:class:`~aioaccess._types.InlineSafeHandler`: calls may start
    outside a Task), ``task_free`` (:class:`~aioaccess._types.TaskFreeHandler`:
    they wait only on plain futures, and need no Task at all) and ``fetch_then``
    (:class:`~aioaccess._types.CallbackFetchHandler`: fetch by callback).  A fetch of
    several Communications adding up to more than ``max_reply_size`` bytes is
    refused (ReplyTooLarge, a ServicesException on the wire).
    """

    def __init__(self, service: Any, handler: Any, *, max_reply_size: int = DEFAULT_MAX_REPLY_SIZE) -> None:
        self.service = service
        self.handler = handler
        self.max_reply_size = max_reply_size
        self.methods: dict[str, Method] = method_table(service, handler)
        self.raw_fetch = "fetch" in self.methods and isinstance(handler, RawFetchHandler)
        self.raw_store = "store" in self.methods and isinstance(handler, RawStoreHandler)
        #: The handler's store_raw checks that its bytes are exactly one Communication.
        self.checks_raw = self.raw_store and isinstance(handler, CheckedRawStore) and bool(handler.checks_raw)
        self.inline = isinstance(handler, InlineSafeHandler) and bool(handler.inline_safe)
        self.task_free = self.inline and isinstance(handler, TaskFreeHandler) and bool(handler.task_free)
        #: fetch by callback (:class:`~aioaccess._types.CallbackFetchHandler`), or None.
        self.fetch_then: FetchThen | None = (
            handler.fetch_then if self.raw_fetch and isinstance(handler, CallbackFetchHandler) else None)
        self._fast: FastFetch | None = None
        self._fast_loop: object = None  # the loop _fast was read on (a sentinel before the first read)

    def fast_fetch(self, loop: asyncio.AbstractEventLoop | None = None,
                   observer: CallObserver | None = None) -> FastFetch | None:
        """The :class:`FastFetch` for ``loop`` (default: the running one), read from the handler's container
        the first time it is asked for on that loop; None when fetch has no table to answer from."""
        if not self.raw_fetch:
            return None
        if loop is None:
            loop = asyncio.get_running_loop()
        if self._fast_loop is not loop:
            self._fast = snapshot(self.handler, self.max_reply_size, observer)
            self._fast_loop = loop
        return self._fast

    async def call(self, method: Method, args: Any) -> Any:
        """Call the handler with the fields of the arguments struct ``args``; await what it returns if needed."""
        value = method.call(*[getattr(args, n) for n in method.arg_names])
        if inspect.isawaitable(value):
            value = await value
        return value

    def result(self, method: Method, value: Any) -> Any:
        """The result struct of a call that returned ``value``."""
        result = method.result_cls()
        if method.has_success:
            result.success = value
        return result
