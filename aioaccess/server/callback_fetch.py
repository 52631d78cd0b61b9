"""Fetch calls answered by callback: the server's one hook for backends that read by callback (the Redis pipe).

A handler whose ``fetch_then`` is not None (:class:`FetchThen`) gets each plain
``fetch`` call that arrives alone on an idle connection as ``fetch_then(ids,
done)``; ``done`` builds the reply (or the error reply) and writes it when the
backend answers, from the backend's own ``data_received``: no coroutine, Task
or future per call.  The future ``fetch_then`` returns is done once none of
its calls is in flight; graceful shutdown waits on it as on a Task.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .._types import FetchDone, FetchThen
from ..exceptions import ProtocolError
from ..service.observe import compact_outcome
from ..wire.fetch_call import fetch_reply_now, parse_fetch_call, usual_fetch_call
from ..wire.fetch_reply import WRITEV_FROM

if TYPE_CHECKING:
    from .dispatch import Processor
    from .protocol import FramedProtocol

__all__ = ["CallbackFetch"]


class CallbackFetch:
    """Answers one connection's plain fetch calls through the handler's ``fetch_then`` (one call at a time)."""

    __slots__ = ("processor", "fetch_then", "proto", "data", "ids", "seqid", "started", "done")

    def __init__(self, processor: Processor, fetch_then: FetchThen) -> None:
        self.processor = processor
        self.fetch_then = fetch_then
        self.proto: FramedProtocol | None = None
        self.data = b""  # the call in flight, as it arrived
        self.ids: list[str] = []
        self.seqid = 0
        self.started = 0.0
        self.done: FetchDone = self._done  # made once: nothing is allocated per call for the callback

    @classmethod
    def of(cls, processor: Processor) -> CallbackFetch | None:
        """The route for a connection of ``processor``; None when its service has no ``fetch_then``."""
        then = processor.core.fetch_then
        return None if then is None else cls(processor, then)

    def start(self, proto: FramedProtocol, data: bytes) -> bool:
        """Start answering ``data`` if it is exactly one framed plain ``fetch`` call (True), else False.

        ``proto`` must be idle (nothing in flight or queued); it is busy until the reply is written.
        """
        if len(data) < 8 or int.from_bytes(data[:4], "big") != len(data) - 4 \
                or len(data) - 4 > proto.config.max_frame_size:
            return False
        call = usual_fetch_call(data, 4)
        if call is None:
            try:
                call = parse_fetch_call(data[4:])
            except ProtocolError:
                return False  # the general path says what is wrong
            if call is None:
                return False
        self.proto = proto
        self.data = data
        self.seqid, self.ids = call
        if self.processor.observer is not None:
            self.started = time.perf_counter()
        proto.busy = True  # (a busy connection is never idle: last_frame_at is set when it is answered)
        try:
            pending = self.fetch_then(self.ids, self.done)
        except Exception as exc:  # a bug in the backend: answered as any failed call
            self._done(exc)
            return True
        tasks: set[Any] = proto.state.tasks
        if pending is not None and not pending.done() and pending not in tasks:
            tasks.add(pending)  # graceful shutdown waits for it as for a Task
            pending.add_done_callback(tasks.discard)
        return True

    def _done(self, result: list[bytes] | BaseException) -> None:
        proto, processor, ids = self.proto, self.processor, self.ids
        if proto is None or not proto.busy:
            return  # answered already
        reply = None
        if type(result) is list and len(result) == len(ids) and processor.observer is None:
            # every id found: the reply built in C, as for a cached fetch (None: a large reply, built below)
            table = {ids[0]: result[0]} if len(ids) == 1 else dict(zip(ids, result, strict=True))
            reply = fetch_reply_now(self.data, table, processor.max_reply_size, WRITEV_FROM)
        if reply is None:
            reply = self._reply(result)
        proto.busy = False
        proto._reply(reply)
        proto.last_frame_at = proto.loop.time()
        if proto.pending or proto.closing or proto.eof or proto.backlog_paused:
            proto._run()  # frames that arrived meanwhile; the goodbye when shutting down

    def _reply(self, result: list[bytes] | BaseException) -> bytes | list[bytes]:
        """The reply (or error reply) to the call in flight, and its report to the processor's observer."""
        processor = self.processor
        reply = processor.calls.fetch_reply(self.seqid, result)
        if processor.observer is not None:  # told as the service's observed() tells it
            _, outcome, size = compact_outcome(reply)
            processor.observer("fetch", outcome, time.perf_counter() - self.started, size)
        return reply
