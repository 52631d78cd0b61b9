"""concrete-python's client wrapper names, as async context managers."""

from __future__ import annotations

from ssl import SSLContext
from types import TracebackType
from typing import Any, ClassVar

from .client import ConcreteServiceClient, FetchCommunicationClient, StoreCommunicationClient
from .connection import DEFAULT_TIMEOUT

__all__ = ["ConcreteServiceClientWrapper", "FetchCommunicationClientWrapper", "StoreCommunicationClientWrapper"]


class ConcreteServiceClientWrapper:
    """``async with Wrapper(host, port) as client``: one connection, closed on exit; over TLS with ``ssl``
    (:func:`aioaccess.tls.client_context`)."""

    client_class: ClassVar[type[ConcreteServiceClient]]

    def __init__(self, host: str, port: int, *, timeout: float | None = DEFAULT_TIMEOUT,
                 ssl: SSLContext | None = None) -> None:
        self.host = host
        self.ssl = ssl
        try:
            self.port = int(port)
        except ValueError:
            raise ValueError(f"Service expected 'port' to be an integer, but it was {port!r}") from None
        self.timeout = timeout
        self._client: ConcreteServiceClient | None = None

    async def __aenter__(self) -> Any:
        client = self.client_class.connect(self.host, self.port, timeout=self.timeout, ssl=self.ssl)
        await client.__aenter__()
        self._client = client
        return client

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class FetchCommunicationClientWrapper(ConcreteServiceClientWrapper):
    """``async with FetchCommunicationClientWrapper(host, port) as client: await client.fetch(...)``."""

    client_class = FetchCommunicationClient

    async def __aenter__(self) -> FetchCommunicationClient:
        return await super().__aenter__()


class StoreCommunicationClientWrapper(ConcreteServiceClientWrapper):
    """``async with StoreCommunicationClientWrapper(host, port) as client: await client.store(comm)``."""

    client_class = StoreCommunicationClient

    async def __aenter__(self) -> StoreCommunicationClient:
        return await super().__aenter__()
