"""concrete-python's service wrapper names: ``await wrapper.serve(host, port)``."""

from __future__ import annotations

import contextlib
import ssl as _ssl
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from ..schema import FetchCommunicationService, StoreCommunicationService
from .config import ServerConfig
from .dispatch import CallObserver, Processor
from .server import Listener, Server

__all__ = ["ConcreteServiceWrapper", "FetchCommunicationServiceWrapper", "StoreCommunicationServiceWrapper"]


class ConcreteServiceWrapper:
    """Serves one handler over framed compact Thrift on the running event loop."""

    concrete_service_class: ClassVar[Any]

    def __init__(self, implementation: Any, *, config: ServerConfig | None = None,
                 observer: CallObserver | None = None, ssl: _ssl.SSLContext | None = None) -> None:
        self.implementation = implementation
        self.config = config
        self.ssl = ssl  # serve over TLS (aioaccess.tls.server_context); None: plaintext, as concrete-python
        self.processor = Processor(self.concrete_service_class, implementation, observer=observer)

    async def serve(self, host: str, port: int) -> None:
        """Serve until cancelled; in-flight calls finish on the way out."""
        server = Server(self.config)
        server.add_service(self.processor, host, port, ssl=self.ssl)
        await server.serve()

    @contextlib.asynccontextmanager
    async def serving(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Listener]:
        """Serve in the background for the ``async with`` body; yields the listener (``.bound_port``)."""
        server = Server(self.config)
        listener = server.add_service(self.processor, host, port, ssl=self.ssl)
        await server.startup()
        try:
            yield listener
        finally:
            await server.shutdown()


class FetchCommunicationServiceWrapper(ConcreteServiceWrapper):
    """FetchCommunicationService over framed compact Thrift."""

    concrete_service_class = FetchCommunicationService


class StoreCommunicationServiceWrapper(ConcreteServiceWrapper):
    """StoreCommunicationService over framed compact Thrift."""

    concrete_service_class = StoreCommunicationService
