"""A few persistent Redis connections on the running loop: commands pipelined, replies parsed by hiredis.

:class:`RedisPipe` is the fast path of the Redis backends.  Concurrent reads of
one hash are coalesced into one ``HMGET`` per loop iteration and concurrent
stores into one ``MULTI``/``HSET``/``ZADD``/``EXEC``; every caller gets a plain
future (no Task), or (:meth:`RedisPipe.hmget_then`) a callback called straight
from the connection's ``data_received``, answered when Redis has answered.  A batch without an answer
within ``timeout`` seconds, a lost connection or a refused connect fail their
callers with ``BackendUnavailable``; the next command connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from ..exceptions import BackendUnavailable
from .redis_connection import Callback, RedisConnection, RedisReplyError, ReplyError, encode_command
from .redis_replies import (
    Read,
    ReadCallback,
    ReadErrorHook,
    calls_done,
    read_done,
    reads_done,
    settle,
    settle_values,
    write_done,
)

__all__ = ["Read", "ReadCallback", "RedisPipe", "RedisReplyError", "ReplyError", "encode_command", "settle",
           "settle_values"]

logger = logging.getLogger("aioaccess.backends.redis_pipe")

#: Ids per coalesced HMGET (a longer read is split into several commands of one batch).
MAX_IDS_PER_COMMAND = 1024
class _NoConnection:
    """Marks "no connection yet": send through RedisPipe.send, which connects."""

    inflight = ()


_NO_CONNECTION: Any = _NoConnection()


class RedisPipe:
    """Pipelined commands over up to ``connections`` connections to the Redis server of ``url``.

    ``url`` is ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`` or ``unix://PATH[?db=N]``.
    Create and use it on one event loop; ``await aclose()`` when done.
    """

    def __init__(self, url: str, *, timeout: float | None = 10.0, connect_timeout: float | None = None,
                 connections: int = 2, depth: int = 1, wait_replicas: int = 0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "unix"):
            raise ValueError(f"RedisPipe speaks redis:// and unix://, not {parts.scheme}://")
        self.url = url
        self.path = parts.path if parts.scheme == "unix" else None
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        db = parts.path.strip("/") if parts.scheme == "redis" else ""
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        self.db = int(query.get("db") or db or 0)
        self.where = self.path or f"{self.host}:{self.port}"
        self.timeout = timeout
        self.connect_timeout = min(t for t in (connect_timeout, timeout, 5.0) if t is not None)
        self.max_connections = max(1, connections)
        #: Batches in flight per connection; more requests queue and go out as one batch.
        self.depth = max(1, depth)
        #: Replicas that must have a store (``WAIT``) before it is acknowledged; 0: the master's answer suffices.
        self.wait_replicas = wait_replicas
        #: Called with the error of a failed HMGET before its callers get it (RedisClusterPipe follows MOVED).
        self.on_read_error: ReadErrorHook | None = None
        self.loop = asyncio.get_running_loop()
        self._ready: list[RedisConnection] = []
        self._connecting: asyncio.Task[None] | None = None
        self._waiting: list[tuple[bytes, int, Callback]] = []
        self._next = 0
        self._reads: dict[bytes, list[Read]] = {}
        self._writes: dict[tuple[bytes, bytes | None], list[tuple[str, bytes, asyncio.Future[None]]]] = {}
        self._calls: list[tuple[Sequence[bytes | str | int], asyncio.Future[Any]]] = []
        self._flush_handle: asyncio.Handle | None = None
        self.closed = False

    # -- sending --------------------------------------------------------
    def send(self, payload: bytes, n: int, callback: Callback) -> None:
        """Write ``payload`` (``n`` commands); ``callback`` gets the ``n`` replies or a BackendUnavailable."""
        if self.closed:
            callback(BackendUnavailable("redis", "the Redis pipe is closed"))
            return
        ready = self._ready
        if len(ready) < self.max_connections and self._connecting is None:
            self._connecting = self.loop.create_task(self._connect())
        if not ready:
            self._waiting.append((payload, n, callback))
            return
        self._next = (self._next + 1) % len(ready)
        ready[self._next].send(payload, n, callback)

    def execute(self, *commands: Sequence[bytes | str | int]) -> asyncio.Future[list[Any]]:
        """Send ``commands`` as one batch; a future of their replies (error replies as ReplyError objects)."""
        fut: asyncio.Future[list[Any]] = self.loop.create_future()
        self.send(b"".join(map(encode_command, commands)), len(commands), functools.partial(settle, fut))
        return fut

    def call(self, *args: bytes | str | int) -> asyncio.Future[Any]:
        """A future of one command's reply, sent with this iteration's other commands; an error reply fails
        it with RedisReplyError."""
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._calls.append((args, fut))
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)
        return fut

    async def command(self, *args: bytes | str | int) -> Any:
        """One command's reply; an error reply raises RedisReplyError (a BackendUnavailable)."""
        return await self.call(*args)

    # -- coalesced reads and writes ---------------------------------------
    def hmget(self, key: bytes, ids: Sequence[str]) -> asyncio.Future[list[Any]]:
        """A future of the values of ``ids`` in hash ``key`` (None where absent), sent with this iteration's
        other reads."""
        fut: asyncio.Future[list[Any]] = self.loop.create_future()
        self.hmget_then(key, ids, settle_values, fut)
        return fut

    def hmget_then(self, key: bytes, ids: Sequence[str], callback: ReadCallback, arg: Any) -> None:
        """Read ``ids`` of hash ``key`` with this iteration's other reads: ``callback(arg, ids, values, start)``
        (see :data:`ReadCallback`) is called from the connection's ``data_received`` (no future)."""
        queue = self._reads.get(key)
        if queue is None:
            queue = self._reads[key] = []
        queue.append((ids, callback, arg))
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def hset_indexed(self, key: bytes, index_key: bytes | None, comm_id: str, raw: bytes) -> asyncio.Future[None]:
        """A future set once ``HSET key comm_id raw`` (and ``ZADD index_key 0 comm_id``) is acknowledged."""
        fut: asyncio.Future[None] = self.loop.create_future()
        queue = self._writes.get((key, index_key))
        if queue is None:
            queue = self._writes[(key, index_key)] = []
        queue.append((comm_id, raw, fut))
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)
        return fut

    @property
    def queued(self) -> bool:
        """Whether reads or stores wait for a flush."""
        return bool(self._reads or self._writes or self._calls)

    def _idle(self) -> RedisConnection | None:
        """A connection with nothing in flight; _NO_CONNECTION when there is none yet (or the pipe is closed);
        None while every connection is busy (one more is opened if allowed)."""
        if self.closed or not self._ready:
            return _NO_CONNECTION
        for conn in self._ready:
            if len(conn.inflight) < self.depth:
                return conn
        if len(self._ready) < self.max_connections and self._connecting is None:
            self._connecting = self.loop.create_task(self._connect())
        return None

    def _flush(self) -> None:
        """Send what queued up as one batch: on an idle connection, or (none yet) through :meth:`send`.

        While every connection waits on Redis, requests keep queuing, so a loaded server
        sends few, large batches (one write and one read per batch, not per call).
        """
        self._flush_handle = None
        if not self.queued:
            return
        conn = self._idle()
        if conn is None:
            return  # the busy connection's reply flushes
        send = self.send if conn is _NO_CONNECTION else conn.send
        reads, self._reads = self._reads, {}
        writes, self._writes = self._writes, {}
        calls, self._calls = self._calls, []
        if calls:
            send(b"".join(encode_command(args) for args, _ in calls), len(calls), lambda r: calls_done(calls, r))
        hmgets: list[bytes] = []
        groups: list[tuple[bytes, list[Read]]] = []
        for key, requests in reads.items():  # every hash's reads: one batch (one write, one timer)
            start = 0
            while start < len(requests):  # split very long reads into several commands of one batch
                end, n_ids = start, 0
                while end < len(requests) and (n_ids < MAX_IDS_PER_COMMAND or end == start):
                    n_ids += len(requests[end][0])
                    end += 1
                group = requests[start:end]
                args: list[bytes | str] = [b"HMGET", key]
                for ids, _, _ in group:
                    args.extend(ids)
                hmgets.append(encode_command(args))
                groups.append((key, group))
                start = end
        if hmgets:
            send(hmgets[0] if len(hmgets) == 1 else b"".join(hmgets), len(hmgets),
                 lambda r: reads_done(groups, r, self.on_read_error))
        wait = encode_command((b"WAIT", self.wait_replicas, int((self.timeout or 10.0) * 500))) \
            if self.wait_replicas else b""
        for (key, index_key), stores in writes.items():
            hset: list[bytes | str] = [b"HSET", key]
            for comm_id, raw, _ in stores:
                hset += (comm_id, raw)
            if index_key is None:
                commands = [encode_command(hset)]
            else:
                zadd: list[bytes | str] = [b"ZADD", index_key]
                for comm_id, _, _ in stores:
                    zadd += (b"0", comm_id)
                commands = [encode_command((b"MULTI",)), encode_command(hset), encode_command(zadd),
                            encode_command((b"EXEC",))]
            if wait:
                commands.append(wait)
            send(b"".join(commands), len(commands),
                 lambda r, s=stores, k=key: write_done(k, s, r, self.wait_replicas))

    def _fail_queued(self, error: BaseException) -> None:
        reads, self._reads = self._reads, {}
        writes, self._writes = self._writes, {}
        calls, self._calls = self._calls, []
        for _, fut in calls:
            settle(fut, error)
        for key, requests in reads.items():
            read_done(key, requests, error, None)
        for stores in writes.values():
            for _, _, fut in stores:
                settle(fut, error)

    # -- connections ------------------------------------------------------
    async def _connect(self) -> None:
        try:
            conn = await self._open()
        except BackendUnavailable as exc:
            waiting, self._waiting = self._waiting, []
            for _, _, callback in waiting:
                callback(exc)
            return
        finally:
            self._connecting = None
        if self.closed:
            if conn.transport is not None:
                conn.transport.close()
            return
        self._ready.append(conn)
        waiting, self._waiting = self._waiting, []
        for payload, n, callback in waiting:
            conn.send(payload, n, callback)
        if self.queued and self._flush_handle is None:
            self._flush()

    async def _open(self) -> RedisConnection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.path is not None:
                    _, conn = await self.loop.create_unix_connection(lambda: RedisConnection(self), self.path)
                else:
                    _, conn = await self.loop.create_connection(lambda: RedisConnection(self), self.host, self.port)
                hello: list[Sequence[bytes | str | int]] = []
                if self.password is not None:
                    hello.append((b"AUTH", self.username, self.password) if self.username else
                                 (b"AUTH", self.password))
                if self.db:
                    hello.append((b"SELECT", self.db))
                if hello:
                    fut: asyncio.Future[list[Any]] = self.loop.create_future()
                    conn.send(b"".join(map(encode_command, hello)), len(hello), functools.partial(settle, fut))
                    for reply in await fut:
                        if isinstance(reply, ReplyError):
                            conn.transport.close()  # type: ignore[union-attr]
                            raise BackendUnavailable("redis", f"{self.where} refused the handshake: {reply}")
        except TimeoutError as exc:
            raise BackendUnavailable("redis", f"cannot connect to {self.where} within "
                                              f"{self.connect_timeout} s") from exc
        except OSError as exc:
            raise BackendUnavailable("redis", f"cannot connect to {self.where}: {exc}") from exc
        return conn

    def _lost(self, conn: RedisConnection) -> None:
        with contextlib.suppress(ValueError):
            self._ready.remove(conn)

    async def aclose(self) -> None:
        """Close every connection; commands in flight fail with BackendUnavailable."""
        self.closed = True
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, BackendUnavailable):
                await self._connecting
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
            self._flush()  # fails the queued calls (closed)
        for conn in list(self._ready):
            if conn.transport is not None:
                conn.transport.close()
        self._ready.clear()
