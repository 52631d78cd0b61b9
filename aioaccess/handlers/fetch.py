"""FetchCommunicationService over any container (or a plain dict)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .. import __version__, codec
from ..backends.base import CommunicationContainer, as_container
from ..schema import FetchRequest, FetchResult, ServiceInfo

__all__ = ["CommunicationContainerFetchHandler"]

logger = logging.getLogger("aioaccess.handlers.fetch")


class CommunicationContainerFetchHandler:
    """Answers fetch calls from ``communication_container``.

    Unknown ids are skipped, as in concrete-python.  The server uses
    ``fetch_raw`` and so never decodes what it serves.
    """

    def __init__(self, communication_container: CommunicationContainer | Mapping[str, Any]) -> None:
        self.communication_container = communication_container
        self.container = as_container(communication_container)

    @property
    def inline_safe(self) -> bool:
        """Whether the server may step calls outside a Task (the container's INLINE_SAFE)."""
        return self.container.INLINE_SAFE

    async def about(self) -> ServiceInfo:
        return ServiceInfo(
            name=f"CommunicationContainerFetchHandler - {type(self.communication_container)}",
            version=__version__,
            description=f"pid={os.getpid()}",
        )

    async def alive(self) -> bool:
        return True

    async def fetch_raw(self, ids: Sequence[str]) -> list[bytes]:
        """Stored bytes of each id found, in request order."""
        found = await self.container.get_raw_many(ids)
        if len(found) < len(ids):
            # One line per call, not per id: a fetch of millions of unknown ids must not
            # turn into millions of log records (and seconds of a blocked event loop).
            missing = [i for i in ids if i not in found]
            if len(missing) == 1:
                logger.warning("Unable to find Communication with ID: %s", missing[0])
            else:
                logger.warning("Unable to find %d Communications, e.g. IDs: %s", len(missing),
                               ", ".join(missing[:5]))
        return [found[i] for i in ids if i in found]

    async def fetch(self, fetch_request: FetchRequest) -> FetchResult:
        raws = await self.fetch_raw(list(fetch_request.communicationIds or ()))
        return FetchResult(communications=[codec.read_communication_from_buffer(r) for r in raws])

    async def getCommunicationCount(self) -> int:
        return await self.container.count()

    async def getCommunicationIDs(self, offset: int, count: int) -> list[str]:
        return await self.container.ids(offset, count)
