"""Service handlers: what a fetch or store call does."""

from __future__ import annotations

from .fetch import CommunicationContainerFetchHandler
from .redis_store import RedisHashBackedStoreHandler
from .relay import RelayFetchHandler
from .s3_store import S3BackedStoreHandler
from .store import DirectoryBackedStoreHandler, StoreHandler, validate_comm_id

__all__ = [
    "CommunicationContainerFetchHandler",
    "DirectoryBackedStoreHandler",
    "RedisHashBackedStoreHandler",
    "RelayFetchHandler",
    "S3BackedStoreHandler",
    "StoreHandler",
    "validate_comm_id",
]
