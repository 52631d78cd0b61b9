"""The container interface every backend implements, written once.

Public methods validate ids, check stored bytes and decode on request; a
backend implements only ``_get_raw_many``, ``_iter_ids`` and ``_count``
(and may override ``_contains`` and ``_ids`` where it can do better).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar

from .. import codec
from .._types import FetchThen
from ..codec import CodecError
from ..exceptions import CorruptCommunication
from ..schema import Communication

__all__ = ["CommunicationContainer", "MappingContainer", "as_container", "check_raw"]


def check_raw(comm_id: str, raw: bytes) -> bytes:
    """Return ``raw`` if it is exactly one well-formed compact struct, else raise CorruptCommunication."""
    try:
        end = codec.skip(raw, 0)
    except CodecError as exc:
        raise CorruptCommunication(comm_id, str(exc)) from exc
    if end != len(raw):
        raise CorruptCommunication(comm_id, f"{len(raw) - end} bytes follow the Communication")
    return raw


class CommunicationContainer(abc.ABC):
    """Async, read-only map of Communication id -> Communication."""

    NAME: ClassVar[str] = "abstract"
    #: Whether stored bytes must be checked on every read (False when checked at load).
    VALIDATE_ON_READ: ClassVar[bool] = True
    #: Whether reads may start outside an asyncio Task (no ``asyncio.timeout``, no
    #: client library that needs ``current_task()``); lets the server answer
    #: calls that never wait without creating a Task.
    INLINE_SAFE: ClassVar[bool] = False
    #: Whether reads wait only on plain futures (no Task, no ``asyncio.timeout``): the server then steps them
    #: by callbacks and never makes a Task for them (``_types.TaskFreeHandler``).
    TASK_FREE: ClassVar[bool] = False
    #: ``fetch_then(ids, done)``: :meth:`get_raw_many` by callback (``_types.FetchThen``), for containers
    #: whose reads finish in their client's own callbacks (the Redis pipe); None: no such route.
    fetch_then: ClassVar[FetchThen | None] = None
    #: A dict of id -> checked compact bytes that the container keeps current for as
    #: long as it lives (the same object throughout; it may be empty, and need not hold
    #: every id).  The server answers a fetch of ids that are all in it without calling
    #: the container; anything else goes through :meth:`get_raw_many`.  None: no such dict.
    raw_table: dict[str, bytes] | None = None
    #: Whether ``get``/``get_many`` call ``add_references_to_communication`` (concrete-python's
    #: ``add_references`` constructor argument; its containers default to True).
    add_references: bool = True

    # -- what a backend implements -------------------------------------
    @abc.abstractmethod
    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        """Stored bytes of the ids that exist (missing ids left out)."""

    @abc.abstractmethod
    def _iter_ids(self) -> AsyncIterator[str]:
        """Every id, in the container's order."""

    @abc.abstractmethod
    async def _count(self) -> int:
        """Number of Communications."""

    async def _contains(self, comm_id: str) -> bool:
        return bool(await self._get_raw_many([comm_id]))

    async def _ids(self, offset: int, count: int | None) -> list[str]:
        # concrete-python's slicing: list(keys)[offset:][:count]
        ids = [i async for i in self._iter_ids()]
        return ids[offset:][:count]

    # -- public API ------------------------------------------------------
    def current_raw_table(self) -> dict[str, bytes] | None:
        """:attr:`raw_table`, made current for the running event loop (call it from the serving loop)."""
        return self.raw_table

    def raw_table_guard(self) -> Callable[[], None] | None:
        """A function to call before each use of :attr:`raw_table` (it applies changes the container has been
        told of but not yet applied), or None when the table is always current."""
        return None

    async def get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        """Compact bytes of each id found, checked; one backend round trip where possible."""
        found = await self._get_raw_many(ids)
        if self.VALIDATE_ON_READ:
            for comm_id, raw in found.items():
                check_raw(comm_id, raw)
        return found

    async def get_raw(self, comm_id: str) -> bytes:
        """Compact bytes of one Communication; KeyError if absent."""
        found = await self.get_raw_many([comm_id])
        try:
            return found[comm_id]
        except KeyError:
            raise KeyError(comm_id) from None

    async def get(self, comm_id: str) -> Communication:
        """One decoded Communication (with references if :attr:`add_references`); KeyError if absent."""
        return _decode(comm_id, await self.get_raw(comm_id), self.add_references)

    async def get_many(self, ids: Sequence[str]) -> dict[str, Communication]:
        """Decoded Communications of the ids found (with references if :attr:`add_references`)."""
        refs = self.add_references
        return {i: _decode(i, raw, refs) for i, raw in (await self.get_raw_many(ids)).items()}

    async def contains(self, comm_id: str) -> bool:
        """Whether ``comm_id`` is stored."""
        return await self._contains(comm_id)

    async def count(self) -> int:
        """Number of Communications."""
        return await self._count()

    async def ids(self, offset: int = 0, count: int | None = None) -> list[str]:
        """Ids sliced as concrete-python does: ``list(ids)[offset:][:count]``."""
        return await self._ids(offset, count)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iter_ids()

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the container opened (connections, files)."""

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    # Python syntax cannot be awaited: point to the async methods instead.
    def __contains__(self, item: object) -> bool:
        raise TypeError(f"use 'await container.contains(id)' on {type(self).__name__}")

    def __len__(self) -> int:
        raise TypeError(f"use 'await container.count()' on {type(self).__name__}")

    def __getitem__(self, item: object) -> Any:
        raise TypeError(f"use 'await container.get(id)' on {type(self).__name__}")

    def __iter__(self) -> Any:
        raise TypeError(f"use 'async for comm_id in {type(self).__name__}'")


def _decode(comm_id: str, raw: bytes, add_references: bool) -> Communication:
    try:
        return codec.read_communication_from_buffer(raw, add_references)
    except CodecError as exc:
        raise CorruptCommunication(comm_id, str(exc)) from exc


class IdIndexed:
    """A container's id listing answered from a mapping of every id it holds (``id_index``), in its order."""

    id_index: Mapping[str, Any]

    async def _iter_ids(self) -> AsyncIterator[str]:
        for comm_id in list(self.id_index):
            yield comm_id

    async def _count(self) -> int:
        return len(self.id_index)

    async def _contains(self, comm_id: str) -> bool:
        return comm_id in self.id_index

    async def _ids(self, offset: int, count: int | None) -> list[str]:
        return list(self.id_index)[offset:][:count]


class MappingContainer(IdIndexed, CommunicationContainer):
    """A plain mapping of id -> Communication (or compact bytes) as a container."""

    NAME = "mapping"
    VALIDATE_ON_READ = False
    INLINE_SAFE = True

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        self.mapping = mapping

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        found = {}
        for comm_id in ids:
            value = self.mapping.get(comm_id)
            if value is None:
                continue
            found[comm_id] = check_raw(comm_id, value) if isinstance(value, bytes | bytearray) else codec.encode(value)
        return found

    @property
    def id_index(self) -> Mapping[str, Any]:
        return self.mapping


def as_container(source: CommunicationContainer | Mapping[str, Any] | Iterable[Any]) -> CommunicationContainer:
    """Wrap a dict (or any mapping) so handlers see one interface."""
    if isinstance(source, CommunicationContainer):
        return source
    if isinstance(source, Mapping):
        return MappingContainer(source)
    raise TypeError(f"cannot serve Communications from a {type(source).__name__}")
