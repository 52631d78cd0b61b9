"""A connection's limits: the connection cap, the idle timeout, the backlog and the partial-frame budget.

:class:`ConnectionLimits` is the part of :class:`~aioaccess.server.protocol.FramedProtocol`
that keeps one connection within the server's limits; it never answers a
call, so the limits never change the route a call takes.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from typing import TYPE_CHECKING

try:
    import fcntl
    import termios
except ImportError:  # not POSIX
    fcntl = termios = None  # type: ignore[assignment]

from ..exceptions import ProtocolError
from ..wire.framing import FrameDecoder
from ..wire.messages import build_application_exception, parse_header
from .slots import oldest_idle

if TYPE_CHECKING:
    from .config import ServerConfig
    from .server import ServerState

__all__ = ["ConnectionLimits"]

logger = logging.getLogger("aioaccess.server")

_INTERNAL_ERROR = 6
_TIOCOUTQ: int | None = getattr(termios, "TIOCOUTQ", None) if termios is not None else None
#: Stop reading a connection while this much is queued behind a call in flight.
_MAX_BACKLOG_BYTES = 4 << 20
_MAX_BACKLOG_FRAMES = 256


def _unsent(transport: asyncio.Transport) -> int:
    """Reply bytes not yet taken by the peer: the transport's buffer plus, when that is not empty,
    the kernel's send queue (Linux TIOCOUTQ), so that a slowly reading peer shows progress."""
    try:
        n = transport.get_write_buffer_size()
    except NotImplementedError:  # a transport without write buffering
        return 0
    if n and _TIOCOUTQ is not None:
        sock = transport.get_extra_info("socket")
        try:
            n += struct.unpack("i", fcntl.ioctl(sock.fileno(), _TIOCOUTQ, b"\0\0\0\0"))[0]
        except (AttributeError, OSError, ValueError):
            pass
    return n


class ConnectionLimits:
    """Keeps one framed connection within its server's limits (the state lives on the protocol)."""

    config: ServerConfig
    state: ServerState
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport | None
    decoder: FrameDecoder
    pending: deque[bytes]
    pending_bytes: int
    held: int
    unsent_at_check: int
    backlog_paused: bool
    write_paused: bool
    busy: bool
    closing: bool
    last_frame_at: float
    idle_handle: asyncio.TimerHandle | None

    def _protocol_error(self, exc: Exception) -> None:
        logger.info("Closing connection: %s", exc)
        self.state.protocol_errors += 1
        if self.transport is not None:
            self.transport.close()

    def _make_room(self) -> bool:
        """At the cap: close the connection idle longest (see ``server.slots``); False when none is idle."""
        victim = oldest_idle(self.state.connections, self.last_frame_at)
        if victim is None or victim.transport is None:
            return False
        logger.info("At the limit of %d connections: closing the one idle longest", self.config.max_connections)
        self.state.idle_closed += 1
        self.state.evicted += 1
        victim.transport.close()
        return True

    def idle_since(self) -> float | None:
        """When this connection last finished a call, or None while it has one in flight, queued or arriving
        (a partial frame), or a reply still going out."""
        transport = self.transport
        if (self.busy or self.pending or self.held or self.decoder.buffered or self.closing or transport is None
                or transport.is_closing() or _unsent(transport)):
            return None
        return self.last_frame_at

    def _update_reading(self) -> None:
        """Pause reading while a pipelining client has queued too much behind a call in flight."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        full = self.pending_bytes >= _MAX_BACKLOG_BYTES or len(self.pending) >= _MAX_BACKLOG_FRAMES
        if full and not self.backlog_paused:
            self.backlog_paused = True
            transport.pause_reading()
        elif not full and self.backlog_paused:
            self.backlog_paused = False
            if not self.write_paused:
                transport.resume_reading()

    def _arm_idle(self) -> None:
        timeout = self.config.idle_timeout
        if timeout is not None:
            self.idle_handle = self.loop.call_at(self.last_frame_at + timeout, self._check_idle)

    def _check_idle(self) -> None:
        self.idle_handle = None
        if self.transport is None:
            return
        timeout = self.config.idle_timeout
        assert timeout is not None
        now = self.loop.time()
        unsent = _unsent(self.transport)
        if self.busy or (unsent and unsent != self.unsent_at_check):
            # A call in flight, or a reply still moving out to a peer reading slowly: not idle.
            self.last_frame_at = now
        elif now - self.last_frame_at >= timeout:
            logger.info("Closing connection idle for %.1f s", timeout)
            self.state.idle_closed += 1
            if unsent:
                self.transport.abort()  # the peer stopped reading: close() would wait on it forever
            else:
                self.transport.close()
            return
        self.unsent_at_check = unsent
        self._arm_idle()

    def _charge_partial(self) -> bool:
        """Charge this connection's partial frame to the server-wide budget; False once closed for passing it."""
        now = self.decoder.buffered
        grew = now > self.held
        self.state.buffered_bytes += now - self.held
        self.held = now
        budget = max(self.config.max_buffered_bytes, self.config.max_frame_size)
        if grew and self.state.buffered_bytes > budget:
            self.state.buffer_overflows += 1
            self._protocol_error(ProtocolError(
                f"unfinished frames of all connections would hold over {budget} bytes (max_buffered_bytes)"))
            return False
        return True

    def _refuse(self, msg: bytes) -> None:
        assert self.transport is not None
        try:
            header = parse_header(msg)
            text = f"Server is at its limit of {self.config.max_connections} connections; try again later"
            self.transport.write(build_application_exception(header.name, header.seqid, _INTERNAL_ERROR, text))
        except ProtocolError:
            pass
        self.transport.close()
