"""Storage backends: containers to fetch from, and the registry of their names."""

from __future__ import annotations

from .base import CommunicationContainer, MappingContainer, as_container, check_raw
from .directory import DirectoryBackedCommunicationContainer
from .fetch import FetchBackedCommunicationContainer
from .memory import FileTooLarge, MemoryBackedCommunicationContainer
from .redis import RedisHashBackedCommunicationContainer, make_redis_client
from .s3 import S3BackedCommunicationContainer, make_s3_client, prefix_s3_key, unprefix_s3_key
from .zip import ZipFileBackedCommunicationContainer

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

#: Container classes by ``NAME`` ("memory", "directory", "zip", "redis", "s3", "fetch", "mapping").
CONTAINERS: dict[str, type[CommunicationContainer]] = {
    cls.NAME: cls
    for cls in (
        MemoryBackedCommunicationContainer,
        DirectoryBackedCommunicationContainer,
        ZipFileBackedCommunicationContainer,
        RedisHashBackedCommunicationContainer,
        S3BackedCommunicationContainer,
        FetchBackedCommunicationContainer,
        MappingContainer,
    )
}
