"""Service handlers: what a fetch or store call does.

Names are imported on first use (PEP 562): the Redis and S3 store handlers need the 'redis' and 's3' extras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._extras import lazy_attributes

__all__ = [
    "CommunicationContainerFetchHandler",
    "DirectoryBackedStoreHandler",
    "RedisHashBackedStoreHandler",
    "RelayFetchHandler",
    "S3BackedStoreHandler",
    "StoreHandler",
    "validate_comm_id",
]

_LAZY: dict[str, str] = {
    "CommunicationContainerFetchHandler": ".fetch",
    "DirectoryBackedStoreHandler": ".store",
    "RedisHashBackedStoreHandler": ".redis_store",
    "RelayFetchHandler": ".relay",
    "S3BackedStoreHandler": ".s3_store",
    "StoreHandler": ".store",
    "validate_comm_id": ".store",
}


__getattr__ = lazy_attributes(globals(), _LAZY)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from .fetch import CommunicationContainerFetchHandler
    from .redis_store import RedisHashBackedStoreHandler
    from .relay import RelayFetchHandler
    from .s3_store import S3BackedStoreHandler
    from .store import DirectoryBackedStoreHandler, StoreHandler, validate_comm_id
