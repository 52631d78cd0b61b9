"""A bounded set of pipelined framed-compact connections to one upstream server.

Thrift servers answer the calls of one connection in order, so a connection
can carry many calls at once: each call writes its frame and waits for the
next reply not yet claimed.  A relay in front of one upstream therefore needs
only a few connections however many callers it has, and a call costs one
write and one future, not a connection checkout.

Same interface as :class:`aioaccess.client.ConnectionPool` (``call``,
``next_seqid``, ``aclose``, ``size``), so ``FetchCommunicationClient`` runs
over it.  A connection that fails, closes or lets a call time out is dropped
with every call on it failing; the next call opens a fresh one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from ssl import SSLContext
from types import TracebackType

from ..exceptions import ProtocolError
from ..wire.framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder

__all__ = ["LostConnection", "PipelinedPool"]

logger = logging.getLogger("aioaccess.handlers.relay")


class LostConnection(ConnectionError):
    """The upstream closed a connection (e.g. it restarted); a new one may well work."""


class _Upstream(asyncio.Protocol):
    """One connection; replies resolve the waiting futures in order."""

    def __init__(self, pool: PipelinedPool) -> None:
        self.pool = pool
        self.decoder = FrameDecoder(pool.max_frame_size)
        self.waiting: deque[asyncio.Future[bytes]] = deque()
        self.sent_at: deque[float] = deque()  # when each waiting call was sent
        self.outbox: list[bytes] = []  # calls of this loop iteration, written together
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport

    def send(self, message: bytes) -> asyncio.Future[bytes]:
        if self.transport is None or self.closed:
            raise LostConnection(f"connection to {self.pool.address} is closed")
        loop = self.pool.loop
        fut: asyncio.Future[bytes] = loop.create_future()
        self.waiting.append(fut)
        self.sent_at.append(loop.time())
        if not self.outbox:
            loop.call_soon(self.flush)
        self.outbox.append(message)
        return fut

    def flush(self) -> None:
        """Write every call queued in this loop iteration with one system call."""
        outbox, self.outbox = self.outbox, []
        if self.transport is not None and not self.closed and outbox:
            self.transport.write(outbox[0] if len(outbox) == 1 else b"".join(outbox))

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except ProtocolError as exc:
            self.fail(ProtocolError(f"bad reply frame from {self.pool.address}: {exc}"))
            return
        waiting = self.waiting
        for payload in frames:
            if not waiting:
                self.fail(ProtocolError(f"{self.pool.address} sent a reply nobody asked for"))
                return
            fut = waiting.popleft()
            self.sent_at.popleft()
            if not fut.done():  # a cancelled caller's reply is dropped, the order kept
                fut.set_result(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(LostConnection(f"{self.pool.address} closed the connection"), exc)

    def fail(self, error: Exception, cause: BaseException | None = None) -> None:
        """Drop this connection: every call on it fails with ``error``."""
        if not self.closed:
            self.closed = True
            self.pool._forget(self)
            if self.transport is not None:
                self.transport.abort()
        error.__cause__ = cause
        self.sent_at.clear()
        self.outbox.clear()
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(error)


class PipelinedPool:
    """At most ``max_connections`` connections to ``host:port``, each carrying many calls.

    ``call`` sends on the least busy connection, opening another while below
    the limit once every open one has ``pipeline_depth`` calls in flight; calls
    made in one loop iteration go out in one write.  A connection whose oldest
    call has had no reply for ``timeout`` seconds is dropped (its calls fail
    with ``TimeoutError``); ``ConnectionError`` if none can be made.  Safe to
    use before the caller has a task.
    """

    def __init__(self, host: str, port: int, *, max_connections: int = 8, timeout: float | None = 10.0,
                 pipeline_depth: int = 8, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
                 ssl: SSLContext | None = None) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self.host = host
        self.ssl = ssl
        self.port = int(port)
        self.address = f"{host}:{self.port}"
        self.max_connections = max_connections
        self.timeout = timeout
        self.max_frame_size = max_frame_size
        self.pipeline_depth = pipeline_depth
        self._check_every = min(1.0, timeout / 4) if timeout is not None else 1.0
        self._watchdog: asyncio.TimerHandle | None = None
        self.conns: list[_Upstream] = []
        self._connecting = 0
        self._opened: list[asyncio.Future[None]] = []  # callers waiting for a connection being opened
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def size(self) -> int:
        """Connections open or being opened."""
        return len(self.conns) + self._connecting

    def next_seqid(self) -> int:
        return 1

    async def call(self, message: bytes, *, oneway: bool = False) -> bytes:
        """Send one framed message and return the reply frame's payload."""
        if oneway:
            raise ValueError("oneway calls cannot be pipelined")
        conn = self._pick()
        while conn is None:
            if self.size < self.max_connections:
                conn = await self._connect()
            else:  # every free slot is a connection being opened: wait for one
                waiter = self.loop.create_future()
                self._opened.append(waiter)
                await waiter
                conn = self._pick()
        return await conn.send(message)

    def _pick(self) -> _Upstream | None:
        """The least busy connection, or None when all are busy and another may be opened."""
        if self._closed:
            raise ConnectionError("connection pool is closed")
        best = None
        depth = 0
        for conn in self.conns:
            n = len(conn.waiting)
            if best is None or n < depth:
                best, depth = conn, n
                if not n:
                    break
        if best is not None and (depth < self.pipeline_depth or self.size >= self.max_connections):
            return best
        return None

    async def _connect(self) -> _Upstream:
        self._connecting += 1  # before any await: counts against the limit at once
        try:
            if asyncio.current_task() is None:
                await asyncio.sleep(0)  # wait_for needs a task on newer Pythons; yielding once gives one
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: _Upstream(self), self.host, self.port, ssl=self.ssl), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to {self.address}: {exc or 'timed out'}") from exc
        finally:
            self._connecting -= 1
            opened, self._opened = self._opened, []
            for waiter in opened:
                if not waiter.done():
                    waiter.set_result(None)
        if self._closed:
            assert conn.transport is not None
            conn.transport.abort()
            raise ConnectionError("connection pool is closed")
        self.conns.append(conn)
        if self._watchdog is None and self.timeout is not None:
            self._watchdog = self.loop.call_later(self._check_every, self._check_timeouts)
        return conn

    def _check_timeouts(self) -> None:
        """Drop connections whose oldest call has waited longer than ``timeout``."""
        self._watchdog = None
        if self._closed or self.timeout is None:
            return
        now = self.loop.time()
        for conn in list(self.conns):
            if conn.sent_at and now - conn.sent_at[0] > self.timeout:
                logger.warning("No reply from %s within %s s; dropping the connection", self.address, self.timeout)
                conn.fail(TimeoutError(f"no reply from {self.address} within {self.timeout:g} s"))
        if self.conns:
            self._watchdog = self.loop.call_later(self._check_every, self._check_timeouts)

    def _forget(self, conn: _Upstream) -> None:
        try:
            self.conns.remove(conn)
        except ValueError:
            pass

    async def aclose(self) -> None:
        """Close every connection; calls in flight fail."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for conn in list(self.conns):
            conn.fail(ConnectionError("connection pool is closed"))

    async def __aenter__(self) -> PipelinedPool:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
