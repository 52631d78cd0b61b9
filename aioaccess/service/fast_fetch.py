"""The fetch a connection answers inside ``data_received``: an explicit object, built once per loop."""

from __future__ import annotations

from collections.abc import Callable

from .._types import CommId, GuardedRawTable, RawComm, RawTableHandler

__all__ = ["CallObserver", "FastFetch", "snapshot"]

#: ``observer(method, outcome, seconds, reply_bytes)``; outcome is "ok",
#: "exception" (a declared Thrift exception) or "error".
CallObserver = Callable[[str, str, float, int], None]


class FastFetch:
    """A snapshot of a handler's ``raw_table`` and what keeps reads from it fresh.

    ``table``: id -> stored bytes, kept current by the container; ``guard``:
    called before each read of the table (a directory applies the inotify
    events already queued, so no read returns bytes older than a change that
    finished before it), or None; ``max_reply_size``: a reply of several
    Communications over it goes the general way (which refuses it);
    ``observer``: told of each call answered from the table (metrics), or None.
    The connection answers a frame with :func:`aioaccess.wire.fetch_call.fetch_reply_now`
    over these fields; anything it declines goes through the service.
    """

    __slots__ = ("table", "guard", "max_reply_size", "observer")

    def __init__(self, table: dict[CommId, RawComm], guard: Callable[[], object] | None, max_reply_size: int,
                 observer: CallObserver | None = None) -> None:
        self.table = table
        self.guard = guard
        self.max_reply_size = max_reply_size
        self.observer = observer

    def __repr__(self) -> str:
        return f"FastFetch({len(self.table)} ids, guard={self.guard is not None})"


def snapshot(handler: object, max_reply_size: int, observer: CallObserver | None) -> FastFetch | None:
    """The :class:`FastFetch` of ``handler``, or None when it keeps no table.

    Call it on the loop that will serve from it: a directory container moves its inotify watch there.
    """
    if not isinstance(handler, RawTableHandler):
        return None
    table = handler.raw_table
    if type(table) is not dict:
        return None
    guard = handler.raw_table_guard if isinstance(handler, GuardedRawTable) else None
    return FastFetch(table, guard, max_reply_size, observer)
