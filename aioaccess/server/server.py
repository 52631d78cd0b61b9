"""Server lifecycle: listeners for one or more services on one event loop.

``startup()`` binds, ``serve()`` runs until ``should_exit`` is set (a signal,
``close()``, or cancellation), ``shutdown()`` stops accepting, lets in-flight
calls finish within ``graceful_timeout``, then cancels what is left.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as _ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import ServerConfig
from .protocol import FramedProtocol

if TYPE_CHECKING:
    from .dispatch import Processor

__all__ = ["Listener", "Server", "ServerState", "reserve_fds"]

logger = logging.getLogger("aioaccess.server")

#: File descriptors kept beyond ``max_connections`` for listeners, backends and files.
_FD_MARGIN = 256
#: Seconds shutdown waits, at most, for peers to close their side after the server's goodbye.
_GOODBYE_WAIT = 2.0


def _ensure_fd_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit); return the soft limit."""
    try:
        import resource
    except ImportError:  # not POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def reserve_fds(max_connections: int) -> None:
    """Raise the open-file limit to fit ``max_connections`` (and a margin), or warn that it cannot.

    Past the limit accept() fails with EMFILE and clients hang in the backlog
    instead of getting the server's clear refusal at its connection cap.
    """
    wanted = max_connections + _FD_MARGIN
    fd_limit = _ensure_fd_limit(wanted)
    if fd_limit < wanted:
        logger.warning("Open-file limit %d is below max_connections %d + %d: beyond it connections wait "
                       "unserved instead of being refused (raise ulimit -n or lower --max-connections)",
                       fd_limit, max_connections, _FD_MARGIN)


@dataclass
class ServerState:
    """What every connection of one server shares."""

    config: ServerConfig
    connections: set[FramedProtocol] = field(default_factory=set)
    #: Connections over ``max_connections``, held only to send the refusal.
    refusing: set[FramedProtocol] = field(default_factory=set)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    total_connections: int = 0
    total_requests: int = 0
    refused: int = 0
    idle_closed: int = 0
    #: Idle connections closed to make room for a new one at ``max_connections`` (also in ``idle_closed``).
    evicted: int = 0
    protocol_errors: int = 0
    #: Bytes of unfinished frames held by all connections, and connections closed for passing the budget.
    buffered_bytes: int = 0
    buffer_overflows: int = 0


@dataclass
class Listener:
    """One service on one address; ``port`` is the bound port after startup; ``ssl``: served over TLS."""

    processor: Processor
    host: str
    port: int
    sock: socket.socket | None = None
    server: asyncio.Server | None = None
    ssl: _ssl.SSLContext | None = None

    @property
    def bound_port(self) -> int:
        assert self.server is not None, "listener has not started"
        return int(self.server.sockets[0].getsockname()[1])


class Server:
    """Runs framed-compact Thrift services until told to stop."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self.config.validate()
        self.state = ServerState(self.config)
        self.listeners: list[Listener] = []
        self.started = asyncio.Event()
        self.should_exit = asyncio.Event()
        #: Async callables run after shutdown, for a Server run on its own (an :class:`aioaccess.app.App`
        #: closes what it opened with its one AsyncExitStack instead).
        self.cleanups: list[Any] = []

    def add_service(self, processor: Processor, host: str = "127.0.0.1", port: int = 9090,
                    sock: socket.socket | None = None, *, ssl: _ssl.SSLContext | None = None) -> Listener:
        """Serve ``processor`` on ``host:port`` (or an already bound ``sock``); over TLS with ``ssl``
        (:func:`aioaccess.tls.server_context`)."""
        listener = Listener(processor, host, port, sock, ssl=ssl)
        self.listeners.append(listener)
        return listener

    async def startup(self) -> None:
        """Bind every listener."""
        loop = asyncio.get_running_loop()
        reserve_fds(self.config.max_connections)
        try:
            for listener in self.listeners:
                listener.processor.fast_fetch(loop)  # read from the container now, not when a client connects
                def factory(p: Processor = listener.processor) -> FramedProtocol:
                    return FramedProtocol(p, self.state)

                tls: dict[str, Any] = {}
                if listener.ssl is not None:
                    tls = {"ssl": listener.ssl, "ssl_handshake_timeout": self.config.tls_handshake_timeout}

                if listener.sock is not None:
                    listener.server = await loop.create_server(factory, sock=listener.sock,
                                                               backlog=self.config.backlog, **tls)
                else:
                    listener.server = await loop.create_server(
                        factory, listener.host, listener.port, backlog=self.config.backlog,
                        reuse_address=True, reuse_port=self.config.reuse_port or None, **tls,
                    )
                logger.info("Serving %s on %s:%d%s", type(listener.processor.handler).__name__,
                            listener.host, listener.bound_port, " (TLS)" if listener.ssl is not None else "")
        except BaseException:
            # One address failed: release the ones already bound before reporting it.
            for listener in self.listeners:
                if listener.server is not None:
                    listener.server.close()
                    await listener.server.wait_closed()
                    listener.server = None
            raise
        self.started.set()

    async def serve(self) -> None:
        """Start, run until ``should_exit``, then shut down gracefully."""
        await self.startup()
        try:
            await self.should_exit.wait()
        finally:
            await asyncio.shield(self.shutdown())

    def close(self) -> None:
        """Ask ``serve()`` to stop (safe from a signal handler via the loop)."""
        self.should_exit.set()

    async def shutdown(self) -> None:
        """Stop accepting, finish in-flight calls within the grace period, close."""
        for listener in self.listeners:
            if listener.server is not None:
                listener.server.close()
        for conn in list(self.state.connections):
            conn.shutdown()
        for conn in list(self.state.refusing):
            conn.shutdown()
        grace = self.config.graceful_timeout
        loop = asyncio.get_running_loop()
        end = loop.time() + grace
        if self.state.tasks:
            logger.info("Waiting up to %.1f s for %d in-flight calls", grace, len(self.state.tasks))
        while self.state.tasks:  # calls queued behind one in flight start when it ends: wait for those too
            if loop.time() >= end:
                pending = set(self.state.tasks)
                for task in pending:
                    task.cancel()
                logger.warning("Cancelled %d calls still running after %.1f s", len(pending), grace)
                await asyncio.wait(pending)
                break
            await asyncio.wait(set(self.state.tasks), timeout=end - loop.time())
        # Every connection has said goodbye (half-closed) once its last reply was out: give the peers a
        # moment to read it and close their side, so that nothing they sent meanwhile turns into a reset.
        deadline = loop.time() + min(_GOODBYE_WAIT, grace)
        while (self.state.connections or self.state.refusing) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for conn in [*self.state.connections, *self.state.refusing]:
            if conn.transport is not None:
                conn.transport.close()
        for listener in self.listeners:
            if listener.server is not None:
                await listener.server.wait_closed()
        for cleanup in reversed(self.cleanups):
            await cleanup()
        self.cleanups.clear()
        logger.info("Server stopped")
