"""One Redis connection of a :class:`~aioaccess.backends.redis_pipe.RedisPipe`: RESP out, hiredis in.

Batches of commands are written back to back and answered in order; a batch
without its replies within the pipe's timeout, an unreadable reply or a lost
connection fails every batch in flight with ``BackendUnavailable``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import hiredis

from ..exceptions import BackendUnavailable

__all__ = ["Callback", "RedisConnection", "RedisReplyError", "ReplyError", "encode_command"]

ReplyError = hiredis.ReplyError
#: Gets a batch's replies, or the BackendUnavailable that failed it.
Callback = Callable[[list[Any] | BaseException], None]


class RedisReplyError(BackendUnavailable):
    """Redis answered a command with an error reply (``reply``: its text, e.g. ``MOVED 3999 host:port``)."""

    def __init__(self, what: str, reply: ReplyError) -> None:
        super().__init__("redis", f"{what} failed: {reply}")
        self.reply = str(reply)


def encode_command(args: Sequence[bytes | str | int]) -> bytes:
    """One command in RESP (an array of bulk strings), packed by hiredis."""
    try:
        return hiredis.pack_command(tuple(args))  # type: ignore[no-any-return]
    except TypeError:  # e.g. a bytearray: the same encoding in Python
        pass
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8")
        elif isinstance(arg, int):
            arg = b"%d" % arg
        parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(parts)


class _Batch:
    __slots__ = ("n", "replies", "callback", "timer")

    def __init__(self, n: int, callback: Callback, timer: asyncio.TimerHandle | None) -> None:
        self.n = n
        self.replies: list[Any] = []
        self.callback = callback
        self.timer = timer


class RedisConnection(asyncio.Protocol):
    """One Redis connection: batches are answered in the order they were written."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.reader = hiredis.Reader()
        self.inflight: deque[_Batch] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, payload: bytes, n: int, callback: Callback) -> None:
        assert self.transport is not None
        timer = None
        if self.pipe.timeout is not None:
            timer = self.pipe.loop.call_later(self.pipe.timeout, self._timed_out)
        self.inflight.append(_Batch(n, callback, timer))
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        inflight = self.inflight
        try:
            while (reply := self.reader.gets()) is not False:
                batch = inflight[0]
                batch.replies.append(reply)
                if len(batch.replies) == batch.n:
                    inflight.popleft()
                    if batch.timer is not None:
                        batch.timer.cancel()
                    batch.callback(batch.replies)
        except (hiredis.ProtocolError, IndexError) as exc:
            self._fail(f"unreadable reply from {self.pipe.where}: {exc!r}")
            return
        if len(inflight) < self.pipe.depth and self.pipe.queued:
            self.pipe._flush()  # what queued up while this connection was busy, as one batch

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(f"connection to {self.pipe.where} lost" + (f": {exc}" if exc else ""))

    def _timed_out(self) -> None:
        self._fail(f"{self.pipe.where} gave no answer within {self.pipe.timeout} s")

    def _fail(self, reason: str) -> None:
        """Fail every batch in flight and drop the connection (later replies could not be matched)."""
        self.pipe._lost(self)
        if self.transport is not None:
            self.transport.abort()
        error = BackendUnavailable("redis", reason)
        self.pipe._fail_queued(error)  # they were waiting for this Redis too
        while self.inflight:
            batch = self.inflight.popleft()
            if batch.timer is not None:
                batch.timer.cancel()
            batch.callback(error)


