"""Storage backends: containers to fetch from, and the registry of their names.

Names are imported on first use (PEP 562): the Redis and S3 backends need the 'redis' and 's3' extras.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._extras import lazy_attributes
from .base import CommunicationContainer, MappingContainer, as_container, check_raw

__all__ = [
    "CONTAINERS",
    "CommunicationContainer",
    "DirectoryBackedCommunicationContainer",
    "FetchBackedCommunicationContainer",
    "FileTooLarge",
    "MappingContainer",
    "MemoryBackedCommunicationContainer",
    "RedisHashBackedCommunicationContainer",
    "S3BackedCommunicationContainer",
    "ZipFileBackedCommunicationContainer",
    "as_container",
    "check_raw",
    "make_redis_client",
    "make_s3_client",
    "prefix_s3_key",
    "unprefix_s3_key",
]

_LAZY: dict[str, str] = {
    "DirectoryBackedCommunicationContainer": ".directory",
    "FetchBackedCommunicationContainer": ".fetch",
    "FileTooLarge": ".memory",
    "MemoryBackedCommunicationContainer": ".memory",
    "RedisHashBackedCommunicationContainer": ".redis",
    "make_redis_client": ".redis",
    "S3BackedCommunicationContainer": ".s3",
    "make_s3_client": ".s3",
    "prefix_s3_key": ".s3",
    "unprefix_s3_key": ".s3",
    "ZipFileBackedCommunicationContainer": ".zip",
}

#: Container class names by ``NAME``, for :data:`CONTAINERS`.
_CONTAINER_NAMES = {
    "memory": "MemoryBackedCommunicationContainer",
    "directory": "DirectoryBackedCommunicationContainer",
    "zip": "ZipFileBackedCommunicationContainer",
    "redis": "RedisHashBackedCommunicationContainer",
    "s3": "S3BackedCommunicationContainer",
    "fetch": "FetchBackedCommunicationContainer",
    "mapping": "MappingContainer",
}


_lazy = lazy_attributes(globals(), _LAZY)


def __getattr__(name: str) -> Any:
    if name != "CONTAINERS":
        return _lazy(name)
    #: Container classes by ``NAME`` ("memory", "directory", "zip", "redis", "s3", "fetch", "mapping").
    containers = {kind: globals()[cls] if cls in globals() else _lazy(cls) for kind, cls in _CONTAINER_NAMES.items()}
    globals()["CONTAINERS"] = containers
    return containers


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from .directory import DirectoryBackedCommunicationContainer
    from .fetch import FetchBackedCommunicationContainer
    from .memory import FileTooLarge, MemoryBackedCommunicationContainer
    from .redis import RedisHashBackedCommunicationContainer, make_redis_client
    from .s3 import S3BackedCommunicationContainer, make_s3_client, prefix_s3_key, unprefix_s3_key
    from .zip import ZipFileBackedCommunicationContainer

    CONTAINERS: dict[str, type[CommunicationContainer]]
