"""StoreCommunicationService into a Redis hash (concrete-python's layout)."""

from __future__ import annotations

import contextlib

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..backends.redis import DEFAULT_REDIS_TIMEOUT, redis_call
from .store import StoreHandler

__all__ = ["RedisHashBackedStoreHandler"]


class RedisHashBackedStoreHandler(StoreHandler):
    """``HSET key id bytes`` for each Communication; acknowledged once Redis has answered.

    The layout is that of concrete-python's ``RedisHashBackedStoreHandler``.
    Redis failures become ``BackendUnavailable`` (a ``ServicesException`` to
    the caller) within ``timeout`` seconds.  ``redis_db`` is owned by the
    caller unless ``owns_client=True``.
    """

    NAME = "RedisHashBackedStoreHandler"

    def __init__(self, redis_db: aioredis.Redis, key: str, *, timeout: float | None = DEFAULT_REDIS_TIMEOUT,
                 owns_client: bool = False) -> None:
        self.redis_db = redis_db
        self.key = key
        self.timeout = timeout
        self.owns_client = owns_client

    async def _put_raw(self, comm_id: str, raw: bytes) -> None:
        await redis_call(self.redis_db.hset(self.key, comm_id, raw), f"HSET {self.key}", self.timeout)

    async def aclose(self) -> None:
        if self.owns_client:
            with contextlib.suppress(RedisError, OSError):
                await self.redis_db.aclose()
