"""Communications served by a remote FetchCommunicationService."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from ssl import SSLContext
from typing import TypeVar

from .. import codec
from ..client.client import FetchCommunicationClient
from ..client.connection import DEFAULT_TIMEOUT, ConnectionPool
from ..exceptions import BackendUnavailable, ProtocolError
from .base import CommunicationContainer

__all__ = ["FetchBackedCommunicationContainer"]

logger = logging.getLogger("aioaccess.backends.fetch")

T = TypeVar("T")

#: Ids asked for per getCommunicationIDs call while iterating.
_ID_PAGE = 10_000


class FetchBackedCommunicationContainer(CommunicationContainer):
    """Maps ids to the Communications of the FetchCommunicationService at ``host:port``.

    Calls go over a pool of at most ``max_connections`` persistent
    connections, each within ``timeout`` seconds; get-many is one ``fetch``
    call.  Connection failures and timeouts become ``BackendUnavailable``;
    the pool reconnects by itself.  ``aclose()`` closes the pool.
    """

    NAME = "fetch"

    def __init__(self, host: str, port: int, *, max_connections: int = 64,
                 timeout: float | None = DEFAULT_TIMEOUT, ssl: SSLContext | None = None,
                 add_references: bool = False) -> None:
        self.add_references = add_references  # concrete-python's fetch client adds none
        self.host = host
        self.port = int(port)
        self.pool = ConnectionPool(host, self.port, max_connections=max_connections, timeout=timeout, ssl=ssl)
        self.client = FetchCommunicationClient(self.pool)

    async def _call(self, awaitable: Awaitable[T], what: str) -> T:
        try:
            return await awaitable
        except (ConnectionError, TimeoutError, OSError, ProtocolError) as exc:
            raise BackendUnavailable("fetch", f"{what} on {self.host}:{self.port} failed: {exc}") from exc

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        if not ids:
            return {}
        raws = await self._call(self.client.fetch_raw(list(ids)), "fetch")
        found: dict[str, bytes] = {}
        for raw in raws:
            comm_id = codec.read_string_field(raw, 1)
            if comm_id is not None:
                found[comm_id] = raw
        return found

    async def _iter_ids(self) -> AsyncIterator[str]:
        total = await self._count()
        offset = 0
        while offset < total:
            page = await self._ids(offset, min(_ID_PAGE, total - offset))
            if not page:
                return
            for comm_id in page:
                yield comm_id
            offset += len(page)

    async def _count(self) -> int:
        return int(await self._call(self.client.getCommunicationCount(), "getCommunicationCount"))

    async def _ids(self, offset: int, count: int | None) -> list[str]:
        if count is None:
            count = max(0, await self._count() - offset)
        return list(await self._call(self.client.getCommunicationIDs(offset, count), "getCommunicationIDs"))

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.pool.aclose()
