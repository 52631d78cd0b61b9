"""The Redis container and store handler on :class:`RedisPipe` (or a cluster of them): the default of the CLI.

Reads are coalesced ``HMGET``s answered as plain futures, so the server serves
them without a Task per call; stores are coalesced into ``MULTI``/``HSET``/
``ZADD``/``EXEC`` and acknowledged once Redis has acknowledged them.  Listing
reads the id index (see :mod:`.redis_layout`): a page costs ``O(log N + count)``.
An index whose size differs from its hash (a hash written by concrete-python, or
an index never built) is not trusted: listing falls back to ``HKEYS`` and warns
once; ``aioaccess redis-index KEY`` builds the index.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from ..handlers.store import StoreHandler
from .base import CommunicationContainer
from .redis_layout import FieldNames, RedisLayout

__all__ = ["RedisPipeCommunicationContainer", "RedisPipeStoreHandler", "build_index", "decode_id"]

logger = logging.getLogger("aioaccess.backends.redis")


class Pipe(Protocol):
    """What the Redis fast path needs of a connection (RedisPipe) or a cluster of them (RedisClusterPipe)."""

    def hmget(self, key: bytes, ids: Sequence[str]) -> Any: ...
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

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        if not ids:
            return {}
        layout = self.layout
        if not layout.shards:
            values = await self.pipe.hmget(layout.hash_keys[0], ids)
            return {i: v for i, v in zip(ids, values, strict=True) if v is not None}
        waits = [(group, self.pipe.hmget(layout.hash_keys[b], group)) for b, group in layout.group(ids).items()]
        found: dict[str, bytes] = {}
        for group, fut in waits:  # every bucket's HMGET went out in one flush
            found.update((i, v) for i, v in zip(group, await fut, strict=True) if v is not None)
        return found

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
