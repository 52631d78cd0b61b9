"""The aliases and protocols that define aioaccess's core interfaces."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

__all__ = ["CommId", "RawComm", "RawFetchHandler", "RawStoreHandler", "Container"]

#: A Communication id.
CommId: TypeAlias = str
#: One Communication as compact-protocol bytes.
RawComm: TypeAlias = bytes


@runtime_checkable
class Container(Protocol):
    """What ``CommunicationContainerFetchHandler`` needs of a backend."""

    async def get_raw_many(self, ids: Sequence[CommId]) -> dict[CommId, RawComm]: ...
    async def count(self) -> int: ...
    async def ids(self, offset: int = 0, count: int | None = None) -> list[CommId]: ...
    def __aiter__(self) -> AsyncIterator[CommId]: ...


@runtime_checkable
class RawFetchHandler(Protocol):
    """A fetch handler the server can answer from bytes alone."""

    async def fetch_raw(self, ids: Sequence[CommId]) -> list[RawComm]: ...


@runtime_checkable
class RawStoreHandler(Protocol):
    """A store handler that takes a Communication's bytes as they arrived."""

    async def store_raw(self, comm_id: CommId | None, raw: RawComm) -> None: ...


Handler: TypeAlias = Any
