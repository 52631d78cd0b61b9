"""Async clients: one connection, a shared pool, and concrete-python's wrapper names."""

from __future__ import annotations

from .client import ConcreteServiceClient, FetchCommunicationClient, StoreCommunicationClient, TApplicationException
from .connection import Connection, ConnectionPool, PoolTimeout
from .http import (
    HTTPConcreteServiceClient,
    HTTPConcreteServiceClientWrapper,
    HTTPFetchCommunicationClient,
    HTTPFetchCommunicationClientWrapper,
    HTTPStoreCommunicationClient,
    HTTPStoreCommunicationClientWrapper,
)
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
