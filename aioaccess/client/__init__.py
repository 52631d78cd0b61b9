"""Async clients: one connection, a shared pool, and concrete-python's wrapper names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._extras import lazy_attributes
from .client import ConcreteServiceClient, FetchCommunicationClient, StoreCommunicationClient, TApplicationException
from .connection import Connection, ConnectionPool, PoolTimeout
from .wrappers import ConcreteServiceClientWrapper, FetchCommunicationClientWrapper, StoreCommunicationClientWrapper

__all__ = [
    "ConcreteServiceClient",
    "ConcreteServiceClientWrapper",
    "Connection",
    "ConnectionPool",
    "FetchCommunicationClient",
    "FetchCommunicationClientWrapper",
    "HTTPConcreteServiceClient",
    "HTTPConcreteServiceClientWrapper",
    "HTTPFetchCommunicationClient",
    "HTTPFetchCommunicationClientWrapper",
    "HTTPStoreCommunicationClient",
    "HTTPStoreCommunicationClientWrapper",
    "PoolTimeout",
    "StoreCommunicationClient",
    "StoreCommunicationClientWrapper",
    "TApplicationException",
]

# The HTTP/TJSON clients need the 'http' extra (aiohttp): imported on first use.
__getattr__ = lazy_attributes(globals(), dict.fromkeys([n for n in __all__ if n.startswith("HTTP")], ".http"))

if TYPE_CHECKING:
    from .http import (
        HTTPConcreteServiceClient,
        HTTPConcreteServiceClientWrapper,
        HTTPFetchCommunicationClient,
        HTTPFetchCommunicationClientWrapper,
        HTTPStoreCommunicationClient,
        HTTPStoreCommunicationClientWrapper,
    )
