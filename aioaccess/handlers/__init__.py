"""Service handlers: what a fetch or store call does."""

from __future__ import annotations

from .fetch import CommunicationContainerFetchHandler
from .store import DirectoryBackedStoreHandler, StoreHandler, validate_comm_id

__all__ = ["CommunicationContainerFetchHandler", "DirectoryBackedStoreHandler", "StoreHandler", "validate_comm_id"]
