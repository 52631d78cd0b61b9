"""The aliases and protocols that define aioaccess's core interfaces.

The server reads a handler's capabilities through these Protocols, once, when
it builds its :class:`~aioaccess.service.Service`: nothing else looks for
attributes on a handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

__all__ = ["CommId", "RawComm", "RawFetchHandler", "RawStoreHandler", "CheckedRawStore", "RawTableHandler",
           "GuardedRawTable", "InlineSafeHandler", "TaskFreeHandler", "FetchDone", "FetchThen", "CallbackFetchHandler",
           "MessageRelay", "Container"]

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


@runtime_checkable
class CheckedRawStore(RawStoreHandler, Protocol):
    """A raw store handler whose ``store_raw`` itself refuses bytes that are not exactly one Communication
    (``checks_raw``), so the server need not bound the argument first."""

    checks_raw: bool


@runtime_checkable
class RawTableHandler(RawFetchHandler, Protocol):
    """A raw fetch handler with a snapshot the server may answer from without calling it.

    ``raw_table``: id -> stored bytes, the same dict for as long as the handler
    lives and kept current by its container (it need not hold every id), or
    None.  Read it on the serving loop, once: the server builds its
    :class:`~aioaccess.service.FastFetch` from it when it starts.
    """

    raw_table: dict[CommId, RawComm] | None


@runtime_checkable
class GuardedRawTable(Protocol):
    """A ``raw_table`` that may lag behind changes already made (a directory's inotify queue).

    ``raw_table_guard``: call it before each read of the table (it applies
    what is queued), or None when the table is always current.
    """

    raw_table_guard: Callable[[], object] | None


@runtime_checkable
class InlineSafeHandler(Protocol):
    """``inline_safe``: calls may start outside an asyncio Task and finish inline when they never wait.

    Only handlers that say so get this: ``asyncio.timeout``, redis-py and
    aiobotocore need ``asyncio.current_task()``.
    """

    inline_safe: bool


@runtime_checkable
class TaskFreeHandler(InlineSafeHandler, Protocol):
    """``task_free``: an inline-safe handler whose calls wait only on plain futures (the Redis pipe).

    The server resumes such a call from the future's done callback and never
    makes a Task for it (``server.protocol.FramedProtocol._wait_on``).
    """

    task_free: bool


#: Gets the stored bytes of each id found, in request order, or the exception that failed the call.
FetchDone: TypeAlias = Callable[[list[RawComm] | BaseException], None]


class FetchThen(Protocol):
    """``fetch_then(ids, done)``: start reading ``ids``; ``done`` gets the outcome exactly once, maybe at once.

    Returns a future that is done once none of the container's calls is in
    flight (graceful shutdown waits on it as on a Task), or None.
    """

    def __call__(self, ids: Sequence[CommId], done: FetchDone) -> asyncio.Future[Any] | None: ...


@runtime_checkable
class CallbackFetchHandler(Protocol):
    """``fetch_then``: a fetch handler whose reads finish in its client's own callbacks (the Redis pipe).

    The server hands it each plain fetch call that arrives alone on an idle
    connection and writes the reply from ``done``: no coroutine, Task or
    future per call (``server.callback_fetch``).  None: no such route.
    """

    fetch_then: FetchThen | None


@runtime_checkable
class MessageRelay(Protocol):
    """A handler that forwards a whole compact call message upstream and returns the upstream's reply."""

    upstream: str

    async def relay_message(self, msg: bytes) -> bytes: ...
    def unavailable(self, exc: BaseException) -> Exception: ...


Handler: TypeAlias = Any
