"""The compact server's adapter over the service layer: method name -> handler call, for one Thrift service.

:class:`Processor` is what a :class:`~aioaccess.server.Server` listener
serves: a :class:`~aioaccess.service.Service` answered over framed compact
messages (:class:`~aioaccess.service.CompactCalls`), the
:class:`~aioaccess.service.FastFetch` its connections answer from, and an
optional call observer (metrics) wrapped around both without changing their
route.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..service import (
    INTERNAL_ERROR,
    PROTOCOL_ERROR,
    UNKNOWN_METHOD,
    CallObserver,
    CompactCalls,
    FastFetch,
    Service,
    observed,
)
from ..wire.messages import DEFAULT_MAX_REPLY_SIZE

__all__ = ["CallObserver", "Processor", "UNKNOWN_METHOD", "INTERNAL_ERROR", "PROTOCOL_ERROR"]


class Processor:
    """Answers framed compact messages for one service with one handler.

    ``observer(method, outcome, seconds, reply_bytes)`` is told of every call
    answered (metrics); a fetch of several Communications over
    ``max_reply_size`` bytes is refused with a ServicesException.
    """

    #: How the calls are answered: :class:`~aioaccess.service.CompactCalls` (the relay: ``RelayedCalls``).
    calls_class: type[CompactCalls] = CompactCalls

    def __init__(self, service: Any, handler: Any, *, observer: CallObserver | None = None,
                 max_reply_size: int = DEFAULT_MAX_REPLY_SIZE) -> None:
        self.service = service
        self.handler = handler
        self.observer = observer
        self.max_reply_size = max_reply_size
        self.core = Service(service, handler, max_reply_size=max_reply_size)
        self.methods = self.core.methods
        #: Whether calls may start outside a Task and finish inline when they never wait (``inline_safe``).
        self.inline = self.core.inline
        #: Whether such calls wait only on plain futures, so that they may finish without a Task too.
        self.task_free = self.core.task_free
        #: How this service's calls are answered (also the callback fetch's error replies).
        self.calls = calls = self.calls_class(self.core)
        #: ``await process(msg)``: the framed reply to one message (None for oneway calls); a large fetch
        #: reply comes as a list of buffers to write in order.  ProtocolError: close the connection.
        self.process = calls.answer if observer is None else observed(calls, observer)

    def fast_fetch(self, loop: asyncio.AbstractEventLoop | None = None) -> FastFetch | None:
        """The :class:`~aioaccess.service.FastFetch` connections on ``loop`` (default: the running one) answer
        from, read from the handler's container once per loop; None when there is none.  The server asks
        for it when it starts, so that accepting a connection never reaches into a container."""
        return self.core.fast_fetch(loop, self.observer)

    def fetch_table(self) -> dict[str, bytes] | None:
        """id -> compact bytes a connection answers a fetch from (the :meth:`fast_fetch` table), or None."""
        fast = self.fast_fetch()
        return fast.table if fast is not None else None

    def fetch_table_guard(self) -> Any:
        """What to call before each use of :meth:`fetch_table` (the handler's ``raw_table_guard``), or None."""
        fast = self.fast_fetch()
        return fast.guard if fast is not None else None
