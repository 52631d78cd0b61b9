"""StoreCommunicationService into a Redis hash (concrete-python's layout)."""

from __future__ import annotations

from ..backends.redis import RedisHash
from .store import StoreHandler

__all__ = ["RedisHashBackedStoreHandler"]


class RedisHashBackedStoreHandler(RedisHash, StoreHandler):
    """``HSET key id bytes`` for each Communication; acknowledged once Redis has answered.

    The layout is that of concrete-python's ``RedisHashBackedStoreHandler``.
    Redis failures become ``BackendUnavailable`` (a ``ServicesException`` to
    the caller) within ``timeout`` seconds.  ``redis_db`` is owned by the
    caller unless ``owns_client=True``.
    """

    NAME = "RedisHashBackedStoreHandler"

    async def _put_raw(self, comm_id: str, raw: bytes) -> None:
        await self._call(self.redis_db.hset(self.key, comm_id, raw), f"HSET {self.key}")
