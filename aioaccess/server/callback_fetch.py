"""Fetch calls answered by callback: the server's one hook for backends that read by callback (the Redis pipe).

A handler whose ``fetch_then`` is not None (:class:`FetchThen`) gets each plain
``fetch`` call that arrives alone on an idle connection as ``fetch_then(ids,
done)``; ``done`` builds the reply (or the error reply) and writes it when the
backend answers, from the backend's own ``data_received``: no coroutine, Task
or future per call.  The future ``fetch_then`` returns is done once none of
its calls is in flight; graceful shutdown waits on it as on a Task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..exceptions import ProtocolError
from ..wire.messages import CALL, MessageHeader, build_fetch_reply_parts, parse_fetch_call

if TYPE_CHECKING:
    from .dispatch import Processor
    from .protocol import FramedProtocol

__all__ = ["CallbackFetch", "FetchDone", "FetchThen"]

#: Gets the stored bytes of each id found, in request order, or the exception that failed the call.
FetchDone = Callable[[list[bytes] | BaseException], None]


class FetchThen(Protocol):
    """``handler.fetch_then``: start ``fetch_raw(ids)``; ``done`` gets its outcome, exactly once."""

    def __call__(self, ids: Sequence[str], done: FetchDone) -> asyncio.Future[Any] | None: ...


class CallbackFetch:
    """Answers one connection's plain fetch calls through the handler's ``fetch_then`` (one call at a time)."""

    __slots__ = ("processor", "fetch_then", "method", "proto", "seqid", "started", "done")

    def __init__(self, processor: Processor, fetch_then: FetchThen) -> None:
        self.processor = processor
        self.fetch_then = fetch_then
        self.method = processor.methods["fetch"]
        self.proto: FramedProtocol | None = None
        self.seqid = 0
        self.started = 0.0
        self.done: FetchDone = self._done  # made once: nothing is allocated per call for the callback

    @classmethod
    def of(cls, processor: Processor) -> CallbackFetch | None:
        """The route for a connection of ``processor``; None when its handler has no ``fetch_then`` (or fetch
        is not answered from bytes)."""
        fetch = processor.methods.get("fetch")
        then = getattr(processor.handler, "fetch_then", None) if fetch is not None and fetch.fast else None
        return None if then is None else cls(processor, then)

    def start(self, proto: FramedProtocol, data: bytes) -> bool:
        """Start answering ``data`` if it is exactly one framed plain ``fetch`` call (True), else False.

        ``proto`` must be idle (nothing in flight or queued); it is busy until the reply is written.
        """
        if len(data) < 8 or int.from_bytes(data[:4], "big") != len(data) - 4 \
                or len(data) - 4 > proto.config.max_frame_size:
            return False
        try:
            call = parse_fetch_call(data[4:])
        except ProtocolError:
            return False  # the general path says what is wrong
        if call is None:
            return False
        self.proto = proto
        self.seqid = call[0]
        if self.processor.observer is not None:
            self.started = time.perf_counter()
        proto.busy = True
        proto.last_frame_at = proto.loop.time()
        try:
            pending = self.fetch_then(call[1], self.done)
        except Exception as exc:  # a bug in the backend: answered as any failed call
            self._done(exc)
            return True
        tasks: set[Any] = proto.state.tasks
        if pending is not None and not pending.done() and pending not in tasks:
            tasks.add(pending)  # graceful shutdown waits for it as for a Task
            pending.add_done_callback(tasks.discard)
        return True

    def _done(self, result: list[bytes] | BaseException) -> None:
        proto, processor, seqid = self.proto, self.processor, self.seqid
        if proto is None or not proto.busy:
            return  # answered already
        outcome = "ok"
        try:
            if isinstance(result, BaseException):
                raise result
            reply = build_fetch_reply_parts(seqid, result, processor.max_reply_size)
        except Exception as exc:
            outcome, reply = processor._failed(self.method, MessageHeader("fetch", CALL, seqid, 0), exc)
        if processor.observer is not None:
            size = len(reply) if type(reply) is bytes else sum(map(len, reply))
            processor.observer("fetch", outcome, time.perf_counter() - self.started, size)
        proto.busy = False
        proto._reply(reply)
        proto.last_frame_at = proto.loop.time()
        proto._run()  # frames that arrived meanwhile; the goodbye when shutting down
