"""Every server setting in one place, with typed defaults."""

from __future__ import annotations

from dataclasses import dataclass

from ..wire.framing import DEFAULT_MAX_FRAME_SIZE

__all__ = ["ServerConfig"]


@dataclass
class ServerConfig:
    """Limits and timeouts shared by every listener of one :class:`Server`."""

    #: Largest frame a client may send, checked before buffering it.
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    #: Close a connection after this many seconds without a complete request
    #: while nothing is in flight (slow senders included); None: never.
    idle_timeout: float | None = 300.0
    #: Connections open at once.  At the cap the connection idle longest (at least
    #: ``server.slots.MIN_IDLE`` s, nothing in flight) is closed for the new one; with none idle it is refused.
    max_connections: int = 10_000
    #: Bytes of unfinished request frames all connections may hold together (never less than
    #: one max_frame_size); a connection whose partial frame would go past it is closed.
    max_buffered_bytes: int = 1 << 30
    #: Seconds shutdown waits for in-flight calls before cancelling them.
    graceful_timeout: float = 30.0
    #: Listen backlog.
    backlog: int = 2048
    #: Bind with SO_REUSEPORT (several processes on one port).
    reuse_port: bool = False
    #: Seconds a TLS listener's client has to finish its handshake (the idle timer starts after it).
    tls_handshake_timeout: float = 10.0

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        if self.max_frame_size < 16:
            raise ValueError(f"max_frame_size must be >= 16, not {self.max_frame_size}")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be > 0 or None, not {self.idle_timeout}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, not {self.max_connections}")
        if self.graceful_timeout < 0:
            raise ValueError(f"graceful_timeout must be >= 0, not {self.graceful_timeout}")
        if self.tls_handshake_timeout <= 0:
            raise ValueError(f"tls_handshake_timeout must be > 0, not {self.tls_handshake_timeout}")
        if self.max_buffered_bytes < 1:
            raise ValueError(f"max_buffered_bytes must be >= 1, not {self.max_buffered_bytes}")
