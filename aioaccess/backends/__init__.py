"""Storage backends: containers to fetch from, and the registry of their names."""

from __future__ import annotations

from .base import CommunicationContainer, MappingContainer, as_container, check_raw
from .directory import DirectoryBackedCommunicationContainer

__all__ = [
    "CommunicationContainer",
    "DirectoryBackedCommunicationContainer",
    "MappingContainer",
    "as_container",
    "check_raw",
]
