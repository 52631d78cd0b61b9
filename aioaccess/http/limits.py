"""Connection limits of the HTTP/TJSON server, as the Thrift server has them.

aiohttp by itself cuts no slow client (its keep-alive default is 3,630 s) and
caps no connections.  :class:`ConnectionGuard` wraps each aiohttp
``RequestHandler`` in a :class:`GuardedConnection` that

- closes a connection whose request head has not arrived in full
  ``header_timeout`` seconds after its first byte (slowloris);
- has aiohttp close a connection with no request for ``keepalive_timeout``
  seconds, from its opening or its last response (idle clients);
- holds at most ``max_connections``: at the cap the connection idle longest
  (:func:`aioaccess.server.slots.oldest_idle`) is closed to make room, and
  when every connection is busy the new one is answered ``503`` with
  ``Connection: close`` and a one-line reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..server.slots import oldest_idle
from .settings import DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, HTTPLimits

__all__ = ["DEFAULT_HEADER_TIMEOUT", "DEFAULT_KEEPALIVE_TIMEOUT", "ConnectionGuard", "GuardedConnection",
           "HTTPLimits"]

logger = logging.getLogger("aioaccess.http")

#: Seconds a connection over the cap is held to answer its first request with the 503.
_REFUSAL_HOLD = 5.0


class GuardedConnection(asyncio.Protocol):
    """One client connection: aiohttp's RequestHandler plus the header timer and the slot it holds."""

    def __init__(self, guard: ConnectionGuard, handler: Any) -> None:
        self.guard = guard
        self.handler = handler
        self.loop = asyncio.get_running_loop()
        self.last_active = self.loop.time()
        self.head_since: float | None = None  # first byte of a request head not yet complete
        self.requests = 0  # requests being answered
        self.refused = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self.guard
        if len(guard.open) >= guard.limits.max_connections:
            victim = oldest_idle(guard.open, self.last_active)
            if victim is not None:
                guard.evicted += 1
                logger.info("At the limit of %d connections: closing the one idle longest",
                            guard.limits.max_connections)
                victim.close()
            else:
                self.refused = True
                guard.refused += 1
                logger.warning("Refusing connection: %d open (max_connections)", len(guard.open))
                self.timer = self.loop.call_later(_REFUSAL_HOLD, self.close)
        if not self.refused:
            guard.open[self] = None
        guard.by_handler[self.handler] = self
        self.handler.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.open.pop(self, None)
        self.guard.by_handler.pop(self.handler, None)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.handler.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        timeout = self.guard.limits.header_timeout
        if self.head_since is None and not self.requests and timeout is not None:
            self.head_since = self.loop.time()
            if self.timer is None:
                self.timer = self.loop.call_at(self.head_since + timeout, self._check_head)
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received()  # type: ignore[no-any-return]

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    def idle_since(self) -> float | None:
        if self.requests or self.refused or self.handler.transport is None:  # busy, refused or closing
            return None
        return self.last_active

    def close(self) -> None:
        self.handler.force_close()

    def _check_head(self) -> None:
        self.timer = None
        timeout = self.guard.limits.header_timeout
        if self.head_since is None or self.requests or timeout is None:
            return
        if self.loop.time() - self.head_since >= timeout:
            self.guard.header_timeouts += 1
            logger.info("Closing connection: request head not received within %g s", timeout)
            self.close()
        else:
            self.timer = self.loop.call_at(self.head_since + timeout, self._check_head)

    def request_started(self) -> None:
        self.requests += 1
        self.head_since = None

    def request_done(self) -> None:
        self.requests -= 1
        self.last_active = self.loop.time()


class ConnectionGuard:
    """The open connections of one HTTP server and what was cut or refused."""

    def __init__(self, limits: HTTPLimits) -> None:
        limits.validate()
        self.limits = limits
        self.open: dict[GuardedConnection, None] = {}  # in opening order
        self.by_handler: dict[Any, GuardedConnection] = {}
        self.refused = self.evicted = self.header_timeouts = 0

    def factory(self, server: web.Server) -> Callable[[], GuardedConnection]:
        """The protocol factory for ``loop.create_server``, around aiohttp's ``server``."""
        return lambda: GuardedConnection(self, server())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Marks the connection busy while its request is answered; answers 503 on one over the cap."""
        conn = self.by_handler.get(request.protocol)
        if conn is None:
            return await handler(request)
        if conn.refused:
            text = f"Server is at its limit of {self.limits.max_connections} connections; try again later\n"
            response = web.Response(status=503, text=text, headers={"Retry-After": "1"})
            response.force_close()
            return response
        conn.request_started()
        try:
            return await handler(request)
        finally:
            conn.request_done()
