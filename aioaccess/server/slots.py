"""Connection slots under pressure: at the cap, the connection idle longest makes room for a new one.

Thrift and HTTP servers alike hold at most ``max_connections``.  An attacker
(or a leaky client pool) holding idle connections would otherwise keep every
slot until the idle timeout, and a new client would be refused.  So, at the
cap, the server closes the connection that has been idle longest, if it has
been idle at least :data:`MIN_IDLE` seconds, and serves the new one; a new
client is refused only when every connection is busy or was active within
that time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

__all__ = ["MIN_IDLE", "Evictable", "oldest_idle"]

#: Seconds a connection must have been idle before it may be closed to make room.
MIN_IDLE = 1.0


class Evictable(Protocol):
    def idle_since(self) -> float | None:
        """Loop time since which the connection has done nothing, or None while it is busy."""


C = TypeVar("C", bound=Evictable)


def oldest_idle(connections: Iterable[C], now: float, min_idle: float = MIN_IDLE) -> C | None:
    """The connection idle longest, for at least ``min_idle`` seconds; None when there is none."""
    best: C | None = None
    best_since = now - min_idle
    for conn in connections:
        since = conn.idle_since()
        if since is not None and since <= best_since:
            best, best_since = conn, since
    return best
