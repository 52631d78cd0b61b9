"""The app: every service of an :class:`AppConfig` on the running loop, under one lifespan.

``start()`` opens metrics, then every backend (before anything binds), then binds
the HTTP endpoints and the Thrift listeners; ``shutdown()`` stops accepting on
all of them at once, lets in-flight calls and requests finish within
``graceful_timeout``, then closes what startup opened, in reverse.  Everything
is closed by one :class:`~contextlib.AsyncExitStack`.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..server.server import Server
from ..server.supervisor import is_worker
from .config import AppConfig, ServiceSpec
from .errors import SetupError
from .lifespan import freeze_startup_objects, install_signal_handlers
from .services import open_http, open_processor

if TYPE_CHECKING:
    from ..http.app import HTTPServer
    from ..metrics import ServerMetrics

__all__ = ["App"]

logger = logging.getLogger("aioaccess.app")


class App:
    """Serves an :class:`AppConfig` on the running loop.

    Embed it with ``async with App(config) as app: ...`` (serving inside the block) or
    ``await App(config).serve()`` (until :meth:`close`, a cancellation, or with
    ``signals=True`` SIGINT/SIGTERM).  ``handlers`` maps service names to their handlers,
    :meth:`bound_port` gives their ports.
    """

    def __init__(self, config: AppConfig) -> None:
        self.config = config
        self.server = Server(config.server)
        self.handlers: dict[str, Any] = {}
        self.http: list[HTTPServer] = []
        self._ports: dict[str, Any] = {}  # service name -> its Listener or HTTPServer
        self.metrics: ServerMetrics | None = None
        self._stack = AsyncExitStack()

    def bound_port(self, name: str) -> int:
        """The port service ``name`` listens on, once started (port 0 picks a free one)."""
        return int(self._ports[name].bound_port)

    @property
    def should_exit(self) -> asyncio.Event:
        return self.server.should_exit

    def close(self) -> None:
        """Ask :meth:`serve` to stop (safe from a signal handler via the loop)."""
        self.server.close()

    async def open(self) -> None:
        """Open metrics and every backend, and build every service (nothing listens yet)."""
        self.metrics = await _open_metrics(self.config, self.server, self._stack)
        for spec in self.config.services:  # open every backend before anything binds
            if spec.kind != "http":
                handler, processor = await open_processor(spec, self.config, self._stack, self._observer(spec))
                self.handlers[spec.name] = handler
                self._ports[spec.name] = self.server.add_service(processor, spec.host, spec.port, ssl=spec.ssl)
        for spec in self.config.services:
            if spec.kind == "http":
                http = await open_http(spec, self.config, self.handlers, self._stack)
                if self.metrics is not None:
                    http.app.middlewares.append(self.metrics.aiohttp_middleware(spec.name))
                self.http.append(http)
                self._ports[spec.name] = http

    async def bind(self) -> None:
        """Bind the HTTP endpoints, then the Thrift listeners; SetupError if an address is taken.

        On failure everything is closed (a Thrift listener's failure after a graceful shutdown, as ``serve``).
        """
        specs = [s for s in self.config.services if s.kind == "http"]
        try:
            for spec, http in zip(specs, self.http, strict=True):
                try:
                    await http.start()
                except OSError as exc:
                    raise self._cannot_listen(spec, exc) from exc
        except BaseException:
            try:
                await asyncio.gather(*(http.aclose() for http in self.http))
            finally:
                await self._stack.aclose()
            raise
        try:
            try:
                await self.server.startup()
            except OSError as exc:
                raise self._cannot_listen(next(s for s in self.config.services if s.kind != "http"), exc) from exc
        except BaseException:
            await self.shutdown()
            raise

    async def start(self) -> None:
        """:meth:`open`, then :meth:`bind`; on failure, what was opened is closed."""
        await self._open_or_close()
        await self.bind()

    async def shutdown(self) -> None:
        """Stop every listener and endpoint at once, let in-flight work finish, then close every backend."""
        try:
            await asyncio.gather(self.server.shutdown(), *(http.aclose() for http in self.http))
        finally:
            await self._stack.aclose()

    async def serve(self, *, signals: bool = False) -> None:
        """Start, serve until :meth:`close` (or SIGINT/SIGTERM with ``signals``), shut down gracefully."""
        await self._open_or_close()
        if signals:  # handlers stay until the loop closes: a second signal during shutdown is only logged
            install_signal_handlers(self.close)
            freeze_startup_objects()
        await self.bind()
        try:
            await self.server.should_exit.wait()
        finally:
            await asyncio.shield(self.shutdown())

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()
        await self.shutdown()

    async def _open_or_close(self) -> None:
        try:
            await self.open()
        except BaseException:
            await self._stack.aclose()
            raise

    def _observer(self, spec: ServiceSpec) -> Any:
        return self.metrics.observer(spec.name) if self.metrics is not None else None

    def _cannot_listen(self, spec: ServiceSpec, exc: OSError) -> SetupError:
        if self.config.path is not None:
            return SetupError(f"{self.config.path}: cannot listen: {exc.strerror or exc}")
        return SetupError(f"cannot listen on {spec.host}:{spec.port}: {exc.strerror or exc}")


async def _open_metrics(config: AppConfig, server: Server, stack: AsyncExitStack) -> ServerMetrics | None:
    """With ``metrics_port``: metrics watching ``server``, served over HTTP unless a supervisor serves them."""
    if config.metrics_port is None:
        return None
    from ..metrics import ServerMetrics, multiprocess_enabled

    metrics = ServerMetrics()
    metrics.track(server.state)
    if is_worker():
        if multiprocess_enabled():
            metrics.start_refreshing()
            stack.push_async_callback(metrics.aclose)
        return metrics
    try:
        runner = await metrics.start_http(config.metrics_host, config.metrics_port)
    except OSError as exc:
        raise SetupError(f"cannot serve metrics on {config.metrics_host}:{config.metrics_port}: "
                         f"{exc.strerror or exc}") from exc
    stack.push_async_callback(runner.cleanup)
    return metrics
