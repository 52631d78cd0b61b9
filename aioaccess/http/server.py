"""Serving an aiohttp app (the HTTP/TJSON endpoint) on the running loop, with aioaccess's connection guard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..server.server import reserve_fds
from .limits import ConnectionGuard, HTTPLimits

__all__ = ["HTTPServer", "serve_http"]

logger = logging.getLogger("aioaccess.http")


class _ClientFaultLog(logging.LoggerAdapter):
    """aiohttp's server log, with the client's faults taken down from ERROR.

    aiohttp logs a request it cannot parse (bad Content-Length, broken
    chunking, a header line too long, a gzip body that does not inflate, ...)
    and a client gone before its answer as an error with a traceback; here
    the first is one INFO line and the second a DEBUG one.  Anything else
    stays an ERROR.
    """

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError | web.RequestPayloadError):
            self.info(f"{msg}: %s", *args, " ".join(str(exc_info).split())[:300])
        elif isinstance(exc_info, ConnectionError):
            self.debug(f"{msg}: %r", *args, exc_info)
        else:
            self.error(msg, *args, exc_info=exc_info, **kwargs)


class HTTPServer:
    """An aiohttp app on ``host:port`` (AppRunner + TCPSite) on the running loop.

    ``await start()`` binds (``port=0`` picks a free port; see ``bound_port``),
    ``await aclose()`` stops accepting and finishes requests in flight.  To run it
    beside a Thrift :class:`~aioaccess.server.Server`, start it and append
    ``aclose`` to ``server.cleanups``.  ``limits`` (:class:`HTTPLimits`): header
    and keep-alive timeouts and the connection cap.
    """

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 8080, *,
                 shutdown_timeout: float = 30.0, backlog: int = 2048, reuse_port: bool = False,
                 access_log: bool = False, limits: HTTPLimits | None = None, ssl_context: Any = None) -> None:
        self.app = app
        self.ssl_context = ssl_context  # serve HTTPS (aioaccess.tls.server_context); None: plain HTTP
        self.limits = limits or HTTPLimits()
        self.guard = ConnectionGuard(self.limits)
        self.listener: asyncio.Server | None = None
        self.host = host
        self.port = port
        self.shutdown_timeout = shutdown_timeout
        self.backlog = backlog
        self.reuse_port = reuse_port
        self.access_log = access_log
        self.runner: web.AppRunner | None = None

    @property
    def bound_port(self) -> int:
        if self.listener is None or not self.listener.sockets:
            raise RuntimeError("HTTP server has not started")
        return int(self.listener.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context is not None else 'http'}://{self.host}:{self.bound_port}"

    async def start(self) -> None:
        """Bind and start serving."""
        kwargs: dict[str, Any] = {} if self.access_log else {"access_log": None}
        kwargs["logger"] = _ClientFaultLog(logging.getLogger("aiohttp.server"), {})
        kwargs.update(self.limits.handler_args())
        self.app.middlewares.insert(0, self.guard.middleware)
        self.runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=self.shutdown_timeout,
                                    **kwargs)
        await self.runner.setup()
        assert self.runner.server is not None
        reserve_fds(self.limits.max_connections)
        try:
            # Our own listener rather than a TCPSite: each connection is wrapped in a GuardedConnection.
            self.listener = await asyncio.get_running_loop().create_server(
                self.guard.factory(self.runner.server), self.host, self.port, backlog=self.backlog,
                reuse_address=True, reuse_port=self.reuse_port or None, ssl=self.ssl_context)
        except BaseException:
            await self.runner.cleanup()
            self.runner = None
            raise
        logger.info("Serving HTTP/TJSON on http://%s:%d (%s)", self.host, self.bound_port,
                    ", ".join(r.canonical for r in self.app.router.resources()))

    async def aclose(self) -> None:
        """Stop accepting, let requests in flight finish, close connections."""
        runner, self.runner = self.runner, None
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
        if runner is not None:
            await runner.cleanup()
            logger.info("HTTP server stopped")

    async def __aenter__(self) -> HTTPServer:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


@contextlib.asynccontextmanager
async def serve_http(app: web.Application | None = None, host: str = "127.0.0.1", port: int = 0, *,
                     fetch_handler: Any = None, store_handler: Any = None,
                     **options: Any) -> AsyncIterator[HTTPServer]:
    """Serve ``app`` (or ``create_app(fetch_handler, store_handler, **options)``) for the ``async with`` body."""
    if app is None:
        from .app import create_app

        app = create_app(fetch_handler, store_handler, **options)
    elif fetch_handler is not None or store_handler is not None or options:
        raise TypeError("give either an app or handlers and app options, not both")
    async with HTTPServer(app, host, port) as server:
        yield server
