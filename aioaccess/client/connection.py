"""One framed-compact client connection, and a blocking pool of them."""

from __future__ import annotations

import asyncio
import itertools
import ssl as _ssl
from collections import deque
from types import TracebackType

from ..exceptions import AioaccessError, ProtocolError
from ..wire.framing import DEFAULT_MAX_FRAME_SIZE

__all__ = ["DEFAULT_TIMEOUT", "Connection", "ConnectionPool", "PoolTimeout"]

#: Seconds a connect or a call may take by default.
DEFAULT_TIMEOUT = 60.0


class Connection:
    """A persistent TFramedTransport connection; one call at a time; over TLS with ``ssl``
    (:func:`aioaccess.tls.client_context`)."""

    def __init__(self, host: str, port: int, *, timeout: float | None = DEFAULT_TIMEOUT,
                 max_frame_size: int = DEFAULT_MAX_FRAME_SIZE, ssl: _ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = int(port)
        self.ssl = ssl
        self.timeout = timeout
        self.max_frame_size = max_frame_size
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self._seqids = itertools.count(1)
        self._closes = 0  # aclose() calls so far: a call never reopens what aclose() shut mid-call
        self._fresh = True

    @property
    def is_connected(self) -> bool:
        """Open, and the server has not closed its end (an idle timeout or a restart)."""
        return (self._writer is not None and not self._writer.is_closing()
                and self._reader is not None and not self._reader.at_eof())

    def next_seqid(self) -> int:
        return next(self._seqids) & 0x7FFFFFFF

    async def connect(self) -> None:
        """Open the TCP connection (within ``timeout``)."""
        if self.is_connected:
            return
        try:
            async with asyncio.timeout(self.timeout):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
                self._fresh = True  # no reply on this connection yet
        except (OSError, TimeoutError) as exc:  # ssl.SSLError (a refused certificate) is an OSError
            raise ConnectionError(f"cannot connect to {self.host}:{self.port}: {exc or 'timed out'}") from exc

    async def call(self, message: bytes, *, oneway: bool = False) -> bytes:
        """Send one framed message and return the reply frame's payload.

        A reused connection the server closed while it sat idle (its idle
        timeout, a restart) is replaced and the call sent once more; that is
        safe because nothing of it was answered, and fetch, store (by id) and
        the service calls are idempotent.
        """
        async with self._lock:
            closes = self._closes
            reused = self.is_connected
            if not reused:
                self._abort()
                await self.connect()
            try:
                return await self._exchange(message, oneway)
            except _ClosedBeforeReply as exc:
                if not reused or self._closes != closes:
                    raise ConnectionError(f"{self.host}:{self.port} closed the connection{exc.hint}") from exc.__cause__
            await self.connect()
            try:
                return await self._exchange(message, oneway)
            except _ClosedBeforeReply as exc:
                raise ConnectionError(f"{self.host}:{self.port} closed the connection{exc.hint}") from exc.__cause__

    async def _exchange(self, message: bytes, oneway: bool) -> bytes:
        # Locals: ``aclose()`` from another task must not pull the streams from under us.
        reader, writer = self._reader, self._writer
        assert reader is not None and writer is not None
        fresh = self._fresh
        head = b""
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(message)
                await writer.drain()
                if oneway:
                    return b""
                head = await reader.readexactly(4)
                size = int.from_bytes(head, "big")
                if size == 0 or size > self.max_frame_size:
                    raise ProtocolError(f"reply frame of {size} bytes is outside 1..{self.max_frame_size}")
                reply = await reader.readexactly(size)
                self._fresh = False
                return reply
        except BaseException as exc:
            # The stream is in an unknown state: never reuse it.
            self._abort()
            if isinstance(exc, asyncio.IncompleteReadError):
                if not head and not exc.partial:
                    raise _ClosedBeforeReply(self._closed_hint() if fresh else "") from exc
                raise ConnectionError(f"{self.host}:{self.port} closed the connection") from exc
            if isinstance(exc, ConnectionResetError | BrokenPipeError) and not head:
                raise _ClosedBeforeReply(self._closed_hint() if fresh else "") from exc
            if isinstance(exc, TimeoutError):
                raise TimeoutError(f"no reply from {self.host}:{self.port} within {self.timeout} s") from exc
            raise

    def _closed_hint(self) -> str:
        """Why a server may close a connection before its first reply."""
        if self.ssl is not None:
            return (" before answering: a TLS server that requires a client certificate closes the connection of a "
                    "client that presents none, or one it does not trust (client certificate: --tls-cert/--tls-key, "
                    "or aioaccess.tls.client_context(cert=...))")
        return (" before answering: if it serves TLS, connect over TLS (--tls/--tls-ca, or "
                "ssl=aioaccess.tls.client_context(...))")

    def _abort(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None

    async def aclose(self) -> None:
        """Close the connection."""
        self._closes += 1
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    async def __aenter__(self) -> Connection:
        await self.connect()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class _ClosedBeforeReply(Exception):
    """The server closed the connection before any byte of the reply; ``hint`` may say why."""

    def __init__(self, hint: str = "") -> None:
        super().__init__(hint)
        self.hint = hint


class PoolTimeout(AioaccessError, TimeoutError):
    """No pooled connection became free in time."""


class ConnectionPool:
    """At most ``max_connections`` persistent connections shared by many tasks.

    A caller waits (up to ``timeout``) when all are busy, like redis-py's
    ``BlockingConnectionPool``.  A connection that failed is dropped, so the
    pool reconnects by itself when the server comes back.
    """

    def __init__(self, host: str, port: int, *, max_connections: int = 64,
                 timeout: float | None = DEFAULT_TIMEOUT, ssl: _ssl.SSLContext | None = None) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self.host = host
        self.port = int(port)
        self.ssl = ssl
        self.timeout = timeout
        self.max_connections = max_connections
        self._idle: deque[Connection] = deque()
        self._in_use: set[Connection] = set()
        self._cond = asyncio.Condition()
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._idle) + len(self._in_use)

    async def acquire(self) -> Connection:
        async with self._cond:
            try:
                async with asyncio.timeout(self.timeout):
                    await self._cond.wait_for(lambda: self._closed or self._idle or self.size < self.max_connections)
            except TimeoutError as exc:
                raise PoolTimeout(f"all {self.max_connections} connections to {self.host}:{self.port} busy "
                                  f"for {self.timeout} s") from exc
            if self._closed:
                raise ConnectionError("connection pool is closed")
            conn = (self._idle.pop() if self._idle
                    else Connection(self.host, self.port, timeout=self.timeout, ssl=self.ssl))
            self._in_use.add(conn)
        return conn

    async def release(self, conn: Connection) -> None:
        async with self._cond:
            self._in_use.discard(conn)
            if conn.is_connected and not self._closed:
                self._idle.append(conn)
            self._cond.notify()
        if not conn.is_connected or self._closed:
            await conn.aclose()

    async def call(self, message: bytes, *, oneway: bool = False) -> bytes:
        """Send one message on a pooled connection."""
        conn = await self.acquire()
        try:
            return await conn.call(message, oneway=oneway)
        finally:
            await self.release(conn)

    def next_seqid(self) -> int:
        return 1

    async def aclose(self) -> None:
        """Close idle connections now; busy ones when released."""
        async with self._cond:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
            self._cond.notify_all()
        for conn in idle:
            await conn.aclose()

    async def __aenter__(self) -> ConnectionPool:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()
