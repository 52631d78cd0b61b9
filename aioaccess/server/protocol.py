"""One framed connection: read frames, answer them in order.

A read that is exactly one ``fetch`` of ids all in the processor's :class:`~aioaccess.service.FastFetch`
table is answered at once (``fetch_reply_now``, in C when compiled), metrics or not.  Any other frame goes
to ``processor.process``, the service's one compact route, run as the handler declares
(:mod:`aioaccess._types`): inline while it does not wait (``InlineSafeHandler``); then resumed from its
future's callback without a Task (``TaskFreeHandler``, the Redis pipe: :meth:`FramedProtocol._wait_on`) or
in a Task, as is every call to any other handler, so ``asyncio.timeout`` and client libraries work.
The connection's limits are :class:`~.limits.ConnectionLimits`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import types
from collections import deque
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any

from ..exceptions import ProtocolError
from ..wire.fetch_call import fetch_reply_now
from ..wire.fetch_reply import WRITEV_FROM
from ..wire.framing import FrameDecoder
from .callback_fetch import CallbackFetch
from .limits import ConnectionLimits

if TYPE_CHECKING:
    from .dispatch import Processor
    from .server import ServerState

__all__ = ["FramedProtocol"]

logger = logging.getLogger("aioaccess.server")


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], yielded: Any) -> Generator[Any, Any, Any]:
    """Hand a coroutine that already yielded once over to a Task."""
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # noqa: BLE001 - forwarded into the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


class FramedProtocol(ConnectionLimits, asyncio.Protocol):
    """Serves one client connection for one :class:`Processor`."""

    def __init__(self, processor: Processor, state: ServerState) -> None:
        self.processor = processor
        self.state = state
        self.config = state.config
        self.loop = asyncio.get_running_loop()
        self.decoder = FrameDecoder(self.config.max_frame_size)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[bytes] = deque()
        self.pending_bytes = 0
        self.held = 0  # bytes of a partial frame charged to state.buffered_bytes
        self.unsent_at_check = 0  # write-buffer size at the last idle check (progress detection)
        self.backlog_paused = False  # reading paused: too much queued behind a slow call
        self.busy = False  # a request is being answered
        self.closing = False  # shutting down: answer what was read, then say goodbye
        self.said_goodbye = False  # half-closed for shutdown: what arrives now is discarded
        self.refused = False
        self.eof = False  # the peer has half-closed: close once pending calls are answered
        self.last_frame_at = 0.0
        self.idle_handle: asyncio.TimerHandle | None = None
        self.write_paused = False
        self.task: asyncio.Task[None] | None = None
        #: The fetch answered inside data_received: built when the server started (at most once per loop).
        self.fast = processor.fast_fetch(self.loop)
        self.callback_fetch = CallbackFetch.of(processor)  # a backend that answers by callback (the Redis pipe)

    # -- connection lifecycle -------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = transport  # type: ignore[assignment]
        self.last_frame_at = self.loop.time()
        if len(self.state.connections) >= self.config.max_connections and not self._make_room():
            self.refused = True
            self.state.refused += 1
            self.state.refusing.add(self)
            logger.warning("Refusing connection: %d open (max_connections)", len(self.state.connections))
            self.idle_handle = self.loop.call_later(5.0, transport.close)
            return
        self.state.connections.add(self)
        self.state.total_connections += 1
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.connections.discard(self)
        self.state.refusing.discard(self)
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        self.pending.clear()
        self.pending_bytes = 0
        self.transport = None
        self.state.buffered_bytes -= self.held  # this connection's partial frame is gone
        self.held = 0

    def eof_received(self) -> bool:
        """The peer stopped sending: answer the calls already received, then close."""
        self.eof = True
        # True keeps the transport open for the replies still owed.
        return self.busy or bool(self.pending)

    def shutdown(self) -> None:
        """Answer every call already read (in flight or queued), then say goodbye (:meth:`_goodbye`)."""
        self.closing = True
        if not self.busy and not self.pending:
            self._goodbye()

    def _goodbye(self) -> None:
        """Half-close: the peer reads EOF right after its last reply, and a call it sends meanwhile meets
        that EOF instead of a reset.  The transport closes when the peer closes its side (or at the end of
        ``Server.shutdown``)."""
        transport = self.transport
        if transport is None or self.said_goodbye:
            return
        self.said_goodbye = True
        try:
            half_close = transport.can_write_eof() and not self.eof and not transport.is_closing()
        except NotImplementedError:
            half_close = False
        if not half_close:
            transport.close()
            return
        transport.write_eof()
        if not self.write_paused:
            transport.resume_reading()  # to see the peer's EOF

    # -- flow control ---------------------------------------------------
    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.transport.is_closing() and not self.backlog_paused:
            self.transport.resume_reading()
        if not self.busy and self.pending:
            self._run()  # answer what waited for the peer to read

    # -- idle timeout ---------------------------------------------------
    # -- requests ---------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        fast = self.fast
        if fast is not None and not (self.busy or self.pending or self.held or self.closing or self.refused
                                     or self.write_paused) and self.transport is not None:
            if fast.guard is not None:
                fast.guard()  # e.g. applies queued inotify events first
            if fast.observer is None:
                reply = fetch_reply_now(data, fast.table, fast.max_reply_size, WRITEV_FROM)
            else:
                started = time.perf_counter()
                reply = fetch_reply_now(data, fast.table, fast.max_reply_size, WRITEV_FROM)
                if reply is not None:
                    fast.observer("fetch", "ok", time.perf_counter() - started, len(reply))
            if reply is not None:  # the usual call: answered without a frame object or a coroutine
                self.state.total_requests += 1
                self.last_frame_at = self.loop.time()
                self.transport.write(reply)
                return
        if self.callback_fetch is not None and not (self.busy or self.pending or self.held or self.closing
                                                    or self.refused or self.write_paused or self.transport is None) \
                and self.callback_fetch.start(self, data):
            return
        if self.said_goodbye:
            return  # sent after our EOF: the peer sees that EOF, not a reply
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as exc:
            self._protocol_error(exc)
            return
        if (self.held or self.decoder.buffered) and not self._charge_partial():
            return
        if not frames:
            return
        self.last_frame_at = self.loop.time()
        if self.refused:
            self._refuse(frames[0])
            return
        self.pending.extend(frames)
        self.pending_bytes += sum(map(len, frames))
        if not self.busy:
            self._run()
        else:
            self._update_reading()

    def _internal_error(self) -> None:
        # A bug, not the peer's fault; closing beats leaving the connection busy forever.
        logger.exception("Closing connection: answering a call failed")
        if self.transport is not None:
            self.transport.close()

    def _run(self) -> None:
        """Answer pending frames in order until one must wait on I/O or the peer stops reading."""
        # While the peer is not reading (write_paused), leave frames pending: answering them
        # would buffer every reply in memory (46 KB of pipelined fetches -> 2 GB of replies).
        while self.pending and self.transport is not None and not self.write_paused:
            msg = self.pending.popleft()
            self.pending_bytes -= len(msg)
            coro = self.processor.process(msg)
            if not self.processor.inline:
                self._start_task(coro)
                return
            try:
                yielded = coro.send(None)
            except StopIteration as stop:
                self._reply(stop.value)
                continue
            except ProtocolError as exc:
                self._protocol_error(exc)
                return
            except Exception:
                self._internal_error()
                return
            if self.processor.task_free and asyncio.isfuture(yielded):
                self._wait_on(coro, yielded)
            else:
                self._start_task(_resume(coro, yielded))
            return
        if self.closing and not self.pending:
            self._goodbye()
        elif self.eof and not self.pending and self.transport is not None:
            self.transport.close()
        if self.pending or self.backlog_paused:  # else there is nothing to pause or resume
            self._update_reading()

    def _wait_on(self, coro: Coroutine[Any, Any, Any], fut: asyncio.Future[Any]) -> None:
        """Resume ``coro`` when ``fut`` is done, without a Task (handlers whose calls wait only on futures)."""
        self.busy = True
        fut._asyncio_future_blocking = False
        self.state.tasks.add(fut)  # type: ignore[arg-type] # graceful shutdown waits for it as for a Task
        fut.add_done_callback(functools.partial(self._step, coro))
        if self.pending or self.backlog_paused:
            self._update_reading()

    def _step(self, coro: Coroutine[Any, Any, Any], fut: asyncio.Future[Any]) -> None:
        self.state.tasks.discard(fut)  # type: ignore[arg-type]
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            self.busy = False
            self._reply(stop.value)
            self.last_frame_at = self.loop.time()
            self._run()
            return
        except ProtocolError as exc:
            self.busy = False
            self._protocol_error(exc)
            return
        except asyncio.CancelledError:  # shutdown cancelled the wait after the grace period
            self.busy = False
            if self.transport is not None:
                self.transport.close()
            return
        except Exception:
            self.busy = False
            self._internal_error()
            return
        if asyncio.isfuture(yielded):
            self._wait_on(coro, yielded)
        else:
            self._start_task(_resume(coro, yielded))

    def _start_task(self, awaitable: Any) -> None:
        """Finish the current request in a Task; later frames wait for it."""
        self.busy = True
        self.task = self.loop.create_task(self._finish(awaitable))
        self.state.tasks.add(self.task)
        self.task.add_done_callback(self.state.tasks.discard)
        self._update_reading()

    async def _finish(self, awaitable: Any) -> None:
        try:
            reply = await awaitable
        except ProtocolError as exc:
            self.busy = False
            self._protocol_error(exc)
            return
        except Exception:
            self.busy = False
            self._internal_error()
            return
        self.busy = False
        self._reply(reply)
        self.last_frame_at = self.loop.time()
        self._run()

    def _reply(self, reply: bytes | list[bytes] | None) -> None:
        self.state.total_requests += 1
        if reply is not None and self.transport is not None:
            if type(reply) is list:
                self.transport.writelines(reply)  # a large fetch reply: stored bytes, not joined (writev)
            else:
                self.transport.write(reply)  # type: ignore[arg-type]
