"""The Redis container and store handler on :class:`RedisPipe` (or a cluster of them): the default of the CLI.

Reads are coalesced ``HMGET``s answered by callback: the server hands a fetch
to :meth:`RedisPipeCommunicationContainer.fetch_then` and writes its reply from
the Redis connection's ``data_received`` (no Task, coroutine or future per
call; other reads await plain futures); stores are coalesced into ``MULTI``/``HSET``/
``ZADD``/``EXEC`` and acknowledged once Redis has acknowledged them.  Listing
reads the id index (see :mod:`.redis_layout`): a page costs ``O(log N + count)``.
An index whose size differs from its hash (a hash written by concrete-python, or
an index never built) is not trusted: listing falls back to ``HKEYS`` and warns
once; ``aioaccess redis-index KEY`` builds the index.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from ..exceptions import CorruptCommunication
from ..handlers.fetch import warn_missing
from ..handlers.store import StoreHandler
from .base import CommunicationContainer, check_raw
from .redis_layout import FieldNames, RedisLayout
from .redis_pipe import ReadCallback, settle

__all__ = ["RedisPipeCommunicationContainer", "RedisPipeStoreHandler", "build_index", "decode_id"]

logger = logging.getLogger("aioaccess.backends.redis")


class Pipe(Protocol):
    """What the Redis fast path needs of a connection (RedisPipe) or a cluster of them (RedisClusterPipe)."""

    def hmget(self, key: bytes, ids: Sequence[str]) -> Any: ...
    def hmget_then(self, key: bytes, ids: Sequence[str], callback: ReadCallback, arg: Any) -> None: ...
    def hset_indexed(self, key: bytes, index_key: bytes | None, comm_id: str, raw: bytes) -> Any: ...
    def call(self, *args: bytes | str | int) -> Any: ...
    async def command(self, *args: bytes | str | int) -> Any: ...
    async def aclose(self) -> None: ...


def decode_id(field: bytes) -> str:
    """A hash field or index member as an id."""
    return field.decode("utf-8", "replace")


class RedisPipeBacked:
    """The pipe, the layout and ownership shared by the container and the store handler."""

    def __init__(self, pipe: Pipe, key: str, *, shards: int = 0, owns_pipe: bool = False) -> None:
        self.pipe = pipe
        self.key = key
        self.layout = RedisLayout(key, shards)
        self.field_names = FieldNames(key)
        self.owns_pipe = owns_pipe

    async def aclose(self) -> None:
        if self.owns_pipe:
            await self.pipe.aclose()


class RedisPipeCommunicationContainer(RedisPipeBacked, CommunicationContainer):
    """Communications in the Redis hash ``key`` (or its ``shards`` buckets), read through ``pipe``."""

    NAME = "redis"
    INLINE_SAFE = True
    #: Reads wait only on plain futures (no Task, no asyncio.timeout): the server steps them by callbacks.
    TASK_FREE = True

    _warned = False

    #: Bytes of stored values already checked, kept to skip checking them again (0: check every read).
    CHECKED_CACHE_BYTES = 64 << 20

    def __init__(self, pipe: Pipe, key: str, *, shards: int = 0, owns_pipe: bool = False) -> None:
        super().__init__(pipe, key, shards=shards, owns_pipe=owns_pipe)
        self._inflight = 0  # fetch_then calls not answered yet
        self._idle: asyncio.Future[None] | None = None  # done when _inflight drops to 0
        self._checked: dict[str, bytes] = {}  # id -> the value last checked
        self._checked_bytes = 0
        self._answer_read = self._answer  # bound once: a read queues no new object for its callback
        self._one_hash = None if self.layout.shards else self.layout.hash_keys[0]

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        fut: asyncio.Future[dict[str, bytes]] = asyncio.get_running_loop().create_future()
        self._read_then(ids, _settle_found, fut)
        return await fut

    def fetch_then(self, ids: Sequence[str], done: Callable[[list[bytes] | BaseException], None],
                   ) -> asyncio.Future[None]:
        """``fetch_raw`` by callback: ``done`` gets the checked bytes of each id found, in request order (one
        warning names the ids missing), or the error.  See ``aioaccess.server.callback_fetch``.

        ``done`` is called from the Redis connection's ``data_received`` (or at once), with no Task or
        future per call.  The future returned is done once no ``fetch_then`` call is in flight.
        """
        idle = self._idle
        if not self._inflight and (idle is None or idle.done()):
            idle = self._idle = asyncio.get_running_loop().create_future()
        self._inflight += 1
        if ids and self._one_hash is not None:
            self.pipe.hmget_then(self._one_hash, ids, self._answer_read, done)
        else:
            self._read_then(ids, self._answer_read, done)
        return idle  # type: ignore[return-value]

    def _answer(self, done: Callable[[list[bytes] | BaseException], None], ids: Sequence[str],
                values: list[Any] | BaseException, start: int) -> None:
        self._inflight -= 1
        if len(ids) == 1 and type(values) is list and (raw := values[start]) is not None \
                and self._checked.get(ids[0]) == raw:
            result: list[bytes] | BaseException = [raw]  # the usual call: a value checked before, unchanged
        elif isinstance(values, BaseException):
            result = values
        else:
            try:
                result = self._in_order(ids, values, start)
            except CorruptCommunication as exc:
                result = exc
        try:
            done(result)
        finally:
            if not self._inflight and self._idle is not None and not self._idle.done():
                self._idle.set_result(None)

    def _in_order(self, ids: Sequence[str], values: list[Any], start: int) -> list[bytes]:
        """The values found, checked (CorruptCommunication names a bad one), in request order."""
        check = self.VALIDATE_ON_READ
        if len(ids) == 1:  # the usual call: no list but the answer's
            raw = values[start]
            if raw is None:
                warn_missing(ids)
                return []
            if check:
                self._check(ids[0], raw)
            return [raw]
        found, missing = [], []
        for comm_id, raw in zip(ids, values[start:start + len(ids)], strict=True):
            if raw is None:
                missing.append(comm_id)
                continue
            if check:
                self._check(comm_id, raw)
            found.append(raw)
        if missing:
            warn_missing(missing)
        return found

    def _check(self, comm_id: str, raw: bytes) -> None:
        """check_raw, skipped for a value equal to the one last checked for ``comm_id`` (one memcmp)."""
        if self._checked.get(comm_id) != raw:
            check_raw(comm_id, raw)
            self._remember(comm_id, raw)

    def _remember(self, comm_id: str, raw: bytes) -> None:
        """Keep ``raw`` as checked, within CHECKED_CACHE_BYTES (emptied when full: memory stays bounded)."""
        if len(raw) > self.CHECKED_CACHE_BYTES:
            return
        old = self._checked.pop(comm_id, None)
        self._checked_bytes -= len(old) if old is not None else 0
        if self._checked_bytes + len(raw) > self.CHECKED_CACHE_BYTES:
            self._checked.clear()
            self._checked_bytes = 0
        self._checked[comm_id] = raw
        self._checked_bytes += len(raw)

    def _read_then(self, ids: Sequence[str], callback: ReadCallback, arg: Any) -> None:
        """``callback(arg, ids, values, start)`` as :meth:`RedisPipe.hmget_then` for ids in any buckets: one
        HMGET per bucket, all sent in one flush."""
        layout = self.layout
        if not ids:
            callback(arg, ids, [], 0)
        elif not layout.shards:
            self.pipe.hmget_then(layout.hash_keys[0], ids, callback, arg)
        elif len(ids) == 1:
            self.pipe.hmget_then(layout.hash_keys[layout.bucket(ids[0])], ids, callback, arg)
        else:
            groups = layout.group(ids)
            if len(groups) == 1:
                for b in groups:
                    self.pipe.hmget_then(layout.hash_keys[b], ids, callback, arg)
            else:
                gather = _Gather(ids, len(groups), callback, arg)
                for b, group in groups.items():
                    self.pipe.hmget_then(layout.hash_keys[b], group, _Gather.add, gather)

    async def _iter_ids(self) -> AsyncIterator[str]:
        for comm_id in await self._ids(0, None):
            yield comm_id

    async def _count(self) -> int:
        return sum(await self._each(b"HLEN", self.layout.hash_keys))

    async def _each(self, command: bytes, keys: list[bytes], more: bytes | None = None,
                    more_keys: list[bytes] | None = None) -> list[int]:
        """``command KEY`` for every key (then ``more KEY`` for every ``more_keys``), all sent together."""
        futs = [self.pipe.call(command, key) for key in keys]
        futs += [self.pipe.call(more, key) for key in more_keys or ()] if more else []
        return [int(n) for n in await asyncio.gather(*futs)]

    async def _contains(self, comm_id: str) -> bool:
        key = self.layout.hash_keys[self.layout.bucket(comm_id)]
        return bool(await self.pipe.command(b"HEXISTS", key, comm_id))

    async def _index_sizes(self) -> list[int] | None:
        """Each bucket's index size, or None if any index disagrees with its hash."""
        sizes = []
        n = len(self.layout.hash_keys)
        counts = await self._each(b"HLEN", self.layout.hash_keys, b"ZCARD", self.layout.index_keys)
        for key, index, n_hash, n_index in zip(self.layout.hash_keys, self.layout.index_keys, counts[:n], counts[n:],
                                               strict=True):
            if n_hash != n_index:
                if not self._warned:
                    self._warned = True
                    logger.warning("Redis id index %s holds %d ids but %s holds %d: listing with HKEYS "
                                   "(O(N) per page); run 'aioaccess redis-index %s' to build the index",
                                   decode_id(index), n_index, decode_id(key), n_hash, self.key)
                return None
            sizes.append(n_index)
        return sizes

    async def _ids(self, offset: int, count: int | None) -> list[str]:
        sizes = None if offset < 0 or (count is not None and count < 0) else await self._index_sizes()
        if sizes is None:  # no usable index (or Python's negative slicing): every id, as concrete-python
            fields: list[bytes] = []
            for key in self.layout.hash_keys:
                fields += await self.pipe.command(b"HKEYS", key)
            return self.field_names.ids(fields)[offset:][:count]
        self._warned = False
        members: list[bytes] = []
        for index, size in zip(self.layout.index_keys, sizes, strict=True):
            if count is not None and len(members) >= count:
                break
            if offset >= size:
                offset -= size
                continue
            stop = -1 if count is None else offset + count - len(members) - 1
            members += await self.pipe.command(b"ZRANGE", index, offset, stop)
            offset = 0
        return self.field_names.ids(members)

    async def ping(self) -> None:
        """Check Redis answers (BackendUnavailable if not)."""
        await self.pipe.command(b"PING")


class RedisPipeStoreHandler(RedisPipeBacked, StoreHandler):
    """``HSET`` + ``ZADD`` of the id index in one ``MULTI``/``EXEC``, coalesced with concurrent stores.

    The hash is concrete-python's ``RedisHashBackedStoreHandler`` layout (or the
    sharded one); a store is acknowledged once Redis has acknowledged it.
    """

    NAME = "RedisHashBackedStoreHandler"

    async def _put_raw(self, comm_id: str, raw: bytes) -> None:
        b = self.layout.bucket(comm_id)
        await self.pipe.hset_indexed(self.layout.hash_keys[b], self.layout.index_keys[b], comm_id, raw)


def _settle_found(fut: asyncio.Future[dict[str, bytes]], ids: Sequence[str], values: list[Any] | BaseException,
                  start: int) -> None:
    """A ReadCallback settling ``fut`` with id -> stored bytes of the ids found (or the error)."""
    if isinstance(values, BaseException):
        settle(fut, values)
    else:
        settle(fut, {i: v for i, v in zip(ids, values[start:start + len(ids)], strict=True) if v is not None})


class _Gather:
    """Joins the reads of several buckets: the callback gets every value in request order, or the first error."""

    __slots__ = ("ids", "left", "found", "callback", "arg")

    def __init__(self, ids: Sequence[str], n: int, callback: ReadCallback, arg: Any) -> None:
        self.ids = ids
        self.left = n
        self.found: dict[str, Any] = {}
        self.callback: ReadCallback | None = callback
        self.arg = arg

    def add(self, ids: Sequence[str], values: list[Any] | BaseException, start: int) -> None:
        callback = self.callback
        if callback is None:
            return  # an error was handed on already
        self.left -= 1
        if isinstance(values, BaseException):
            self.callback = None
            callback(self.arg, self.ids, values, 0)
            return
        self.found.update(zip(ids, values[start:start + len(ids)], strict=True))
        if not self.left:
            self.callback = None
            callback(self.arg, self.ids, [self.found[i] for i in self.ids], 0)


async def build_index(pipe: Pipe, layout: RedisLayout, *, batch: int = 1000) -> int:
    """Add every id of ``layout``'s hashes to their id indexes (``HSCAN`` + ``ZADD``); the number of ids seen.

    Safe while stores go on (they add their ids themselves, ``ZADD`` is idempotent);
    until an index holds as many ids as its hash, listing does not use it.
    """
    total = 0
    for key, index in zip(layout.hash_keys, layout.index_keys, strict=True):
        cursor = b"0"
        while True:
            cursor, flat = await pipe.command(b"HSCAN", key, cursor, b"COUNT", batch)
            fields = flat[0::2]
            if fields:
                args: list[bytes | str | int] = [b"ZADD", index]
                for field in fields:
                    args += (b"0", field)
                await pipe.command(*args)
                total += len(fields)
            if cursor == b"0":
                break
    return total
