"""Communications in a Redis hash: field = Communication id, value = compact bytes.

This is the layout concrete-python's ``RedisCommunicationWriter(key_type='hash')``
(and so its ``RedisHashBackedStoreHandler``) writes.  Every Redis failure
(refused connection, timeout, wrong key type) becomes ``BackendUnavailable``
within ``timeout`` seconds; redis-py reconnects by itself on the next call
once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from ..exceptions import BackendUnavailable
from .base import CommunicationContainer
from .redis_layout import FieldNames

__all__ = [
    "DEFAULT_REDIS_TIMEOUT",
    "RedisHash",
    "RedisHashBackedCommunicationContainer",
    "make_redis_client",
    "redis_call",
]

logger = logging.getLogger("aioaccess.backends.redis")

#: Seconds one Redis operation may take before it fails with BackendUnavailable.
DEFAULT_REDIS_TIMEOUT = 10.0

T = TypeVar("T")


def make_redis_client(url: str, *, socket_timeout: float = 5.0, connect_timeout: float = 2.0,
                      retries: int = 1, max_connections: int | None = 64, **options: Any) -> aioredis.Redis:
    """A ``redis.asyncio.Redis`` for ``url`` with bounded timeouts and few, quick retries.

    Its pool is a ``BlockingConnectionPool``: when all ``max_connections`` are
    busy a command waits for one (bounded by the caller's timeout) instead of
    failing with "Too many connections".  The caller owns the client, and the
    client its pool: ``await client.aclose()`` (or ``async with``).
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        max_connections=max_connections or 64,
        timeout=None,  # redis_call's deadline bounds the wait
        **options,
    )
    return aioredis.Redis.from_pool(pool)


async def redis_call(awaitable: Awaitable[T], what: str, timeout: float | None) -> T:
    """Await a Redis command; failures and overruns become BackendUnavailable."""
    try:
        async with asyncio.timeout(timeout):
            return await awaitable
    except TimeoutError as exc:
        raise BackendUnavailable("redis", f"{what} got no answer within {timeout} s") from exc
    except RedisError as exc:
        raise BackendUnavailable("redis", f"{what} failed: {exc}") from exc
    except OSError as exc:
        raise BackendUnavailable("redis", f"{what} failed: {exc}") from exc


class RedisHash:
    """One Redis hash ``key`` reached through ``redis_db``: what the Redis container and store share.

    Commands go through :func:`redis_call` with ``timeout``; ``aclose`` closes
    ``redis_db`` only when ``owns_client``.
    """

    def __init__(self, redis_db: aioredis.Redis, key: str, *, timeout: float | None = DEFAULT_REDIS_TIMEOUT,
                 owns_client: bool = False) -> None:
        self.redis_db = redis_db
        self.key = key
        self.timeout = timeout
        self.owns_client = owns_client

    async def _call(self, awaitable: Awaitable[T], what: str) -> T:
        return await redis_call(awaitable, what, self.timeout)

    async def aclose(self) -> None:
        if self.owns_client:
            with contextlib.suppress(RedisError, OSError):
                await self.redis_db.aclose()


class RedisHashBackedCommunicationContainer(RedisHash, CommunicationContainer):
    """Maps ids to the fields of the Redis hash ``key``.

    Get-many is one ``HMGET``; ``contains`` is ``HEXISTS``; ``count`` is
    ``HLEN``; iteration and ``ids()`` use ``HKEYS``.  ``redis_db`` is
    a ``redis.asyncio.Redis`` created with ``decode_responses=False``; the
    caller owns it unless ``owns_client=True``.  A field name that is not
    UTF-8 cannot be a Communication id: iteration and ``ids()`` skip it, with
    one warning (again only when the number of such fields changes); ``count``
    (``HLEN``, as in concrete-python) still includes it.
    """

    NAME = "redis"

    def __init__(self, redis_db: aioredis.Redis, key: str, add_references: bool = True, **kwargs: Any) -> None:
        super().__init__(redis_db, key, **kwargs)
        self.add_references = add_references
        self.field_names = FieldNames(key)

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        if not ids:
            return {}
        values = await self._call(self.redis_db.hmget(self.key, list(ids)), f"HMGET {self.key}")
        return {i: bytes(v) for i, v in zip(ids, values, strict=True) if v is not None}

    async def _iter_ids(self) -> AsyncIterator[str]:
        # HKEYS, as concrete-python: HSCAN would also carry every value (NOVALUES needs Redis 7.4).
        for comm_id in await self._ids(0, None):
            yield comm_id

    async def _count(self) -> int:
        return int(await self._call(self.redis_db.hlen(self.key), f"HLEN {self.key}"))

    async def _contains(self, comm_id: str) -> bool:
        return bool(await self._call(self.redis_db.hexists(self.key, comm_id), f"HEXISTS {self.key}"))

    async def _ids(self, offset: int, count: int | None) -> list[str]:
        fields = await self._call(self.redis_db.hkeys(self.key), f"HKEYS {self.key}")
        ids = self.field_names.ids(fields)
        return ids[offset:][:count]

    async def ping(self) -> None:
        """Check Redis answers (BackendUnavailable if not)."""
        await self._call(self.redis_db.ping(), "PING")
