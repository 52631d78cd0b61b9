"""FetchCommunicationService over any container (or a plain dict)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import __version__, codec
from .._types import FetchThen
from ..backends.base import CommunicationContainer, as_container
from ..schema import FetchRequest, FetchResult, ServiceInfo

__all__ = ["CommunicationContainerFetchHandler"]

logger = logging.getLogger("aioaccess.handlers.fetch")


class CommunicationContainerFetchHandler:
    """Answers fetch calls from ``communication_container``.

    Unknown ids are skipped, as in concrete-python.  The server uses
    ``fetch_raw`` and so never decodes what it serves.  What the server may
    do with it is declared here, in the typed Protocols of :mod:`aioaccess._types`
    it implements: ``raw_table`` and ``raw_table_guard`` (``RawTableHandler``,
    ``GuardedRawTable``: the server's ``FastFetch`` is read from them once per
    loop, when it starts) and ``inline_safe``/``task_free`` (``InlineSafeHandler``,
    ``TaskFreeHandler``: the container's ``INLINE_SAFE``/``TASK_FREE``).
    """

    def __init__(self, communication_container: CommunicationContainer | Mapping[str, Any]) -> None:
        self.communication_container = communication_container
        self.container = as_container(communication_container)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The server answers fetch with fetch_raw: a subclass that overrides only fetch
        # gets a fetch_raw that calls it, so what it changes reaches the wire.
        if "fetch" in cls.__dict__ and "fetch_raw" not in cls.__dict__:
            cls.fetch_raw = _fetch_raw_via_fetch  # type: ignore[method-assign]

    @property
    def _fetches_from_container(self) -> bool:
        """Whether fetch answers the container's bytes as they are (no subclass changes what it answers)."""
        return type(self).fetch_raw is CommunicationContainerFetchHandler.fetch_raw

    @property
    def raw_table(self) -> dict[str, bytes] | None:
        """The container's ``raw_table`` (current for the running loop), unless a subclass changes what fetch
        answers."""
        if not self._fetches_from_container:
            return None
        return self.container.current_raw_table()

    @property
    def raw_table_guard(self) -> Callable[[], None] | None:
        """The container's :meth:`~CommunicationContainer.raw_table_guard`: call it before each use of raw_table."""
        return self.container.raw_table_guard()

    @property
    def inline_safe(self) -> bool:
        """Whether the server may step calls outside a Task (the container's INLINE_SAFE)."""
        return self.container.INLINE_SAFE

    @property
    def task_free(self) -> bool:
        """Whether calls wait only on plain futures (the container's TASK_FREE), so need no Task at all."""
        if not self._fetches_from_container:
            return False
        return self.container.TASK_FREE

    @property
    def fetch_then(self) -> FetchThen | None:
        """``fetch_raw`` by callback (``_types.CallbackFetchHandler``): the container's ``fetch_then`` (the Redis
        pipe's), unless a subclass changes what fetch answers; else None."""
        if not self._fetches_from_container:
            return None
        return self.container.fetch_then

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
            warn_missing([i for i in ids if i not in found])
        return [found[i] for i in ids if i in found]

    async def fetch(self, fetch_request: FetchRequest) -> FetchResult:
        raws = await _stored_fetch_raw(type(self))(self, list(fetch_request.communicationIds or ()))
        return FetchResult(communications=[codec.read_communication_from_buffer(r, False) for r in raws])

    async def getCommunicationCount(self) -> int:
        return await self.container.count()

    async def getCommunicationIDs(self, offset: int, count: int) -> list[str]:
        return await self.container.ids(offset, count)


def warn_missing(missing: Sequence[str]) -> None:
    """One warning for the ids a fetch did not find (as concrete-python's handler, but one line per call)."""
    # One line per call, not per id: a fetch of millions of unknown ids must not
    # turn into millions of log records (and seconds of a blocked event loop).
    if len(missing) == 1:
        logger.warning("Unable to find Communication with ID: %s", missing[0])
    else:
        logger.warning("Unable to find %d Communications, e.g. IDs: %s", len(missing), ", ".join(missing[:5]))


async def _fetch_raw_via_fetch(self: CommunicationContainerFetchHandler, ids: Sequence[str]) -> list[bytes]:
    """fetch_raw of a subclass that overrides fetch: its FetchResult, encoded."""
    result = await self.fetch(FetchRequest(communicationIds=list(ids)))
    return [codec.encode(comm) for comm in result.communications or ()]


def _stored_fetch_raw(cls: type) -> Any:
    """The nearest fetch_raw in ``cls``'s MRO that reads the container (not one derived from fetch)."""
    for klass in cls.__mro__:
        method = klass.__dict__.get("fetch_raw")
        if method is not None and method is not _fetch_raw_via_fetch:
            return method
    raise AssertionError("CommunicationContainerFetchHandler defines fetch_raw")
