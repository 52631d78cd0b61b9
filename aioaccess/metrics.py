"""Prometheus metrics for servers: calls, latency, bytes out, connections, backend errors.

One :class:`ServerMetrics` per process.  Wrap a service with it:
``Processor(service, handler, observer=metrics.observer("fetch"))`` observes each
call (``service.observe``) without changing the route that answers it; let it
watch each :class:`~aioaccess.server.ServerState` with :meth:`ServerMetrics.track`,
and serve ``/metrics`` in the Prometheus text format on the running loop with
:meth:`ServerMetrics.start_http`.

With several worker processes (``--workers``) the supervisor sets
``PROMETHEUS_MULTIPROC_DIR`` for its workers: each worker records into files
there and the supervisor alone serves ``/metrics``, summed over workers
(:func:`multiprocess_registry`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import choose_encoder

if TYPE_CHECKING:
    from aiohttp import web

    from .server.server import ServerState
    from .service import CallObserver

__all__ = ["LATENCY_BUCKETS", "ServerMetrics", "multiprocess_enabled", "multiprocess_registry"]

logger = logging.getLogger("aioaccess.metrics")

#: Call latency buckets in seconds: 100 us to 30 s.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, 30.0)

#: ServerState counters exported as Prometheus counters (attribute -> metric name, help).
_STATE_COUNTERS = {
    "total_connections": ("aioaccess_connections_accepted", "Connections accepted"),
    "refused": ("aioaccess_connections_refused", "Connections refused at max_connections"),
    "idle_closed": ("aioaccess_connections_idle_closed", "Connections closed by the idle timeout"),
    "protocol_errors": ("aioaccess_protocol_errors", "Connections closed on bytes that are not framed Thrift"),
}


def multiprocess_enabled() -> bool:
    """Whether this process records into ``PROMETHEUS_MULTIPROC_DIR`` (a supervised worker)."""
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def multiprocess_registry(path: str) -> CollectorRegistry:
    """A registry summing what every worker recorded under ``path``."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return registry


class ServerMetrics:
    """The metrics of one server process, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.calls = Counter("aioaccess_calls", "Thrift calls answered, by service, method and outcome "
                             "(ok, exception = a declared Thrift exception, error = an internal error)",
                             ["service", "method", "outcome"], registry=r)
        self.latency = Histogram("aioaccess_call_duration_seconds", "Time from a call's frame to its reply",
                                 ["service", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.bytes_out = Counter("aioaccess_reply_bytes", "Bytes of replies sent, by service and method",
                                 ["service", "method"], registry=r)
        self.backend_errors = Counter("aioaccess_backend_errors", "Calls that failed inside a handler or "
                                      "its backend with an undeclared error", ["service", "method"], registry=r)
        self.connections = Gauge("aioaccess_open_connections", "Client connections open now",
                                 multiprocess_mode="livesum", registry=r)
        self.state_counters = {attr: Counter(name, text, registry=r) for attr, (name, text) in _STATE_COUNTERS.items()}
        self.states: list[ServerState] = []
        self._seen: dict[tuple[int, str], int] = {}
        self._refresher: asyncio.Task[None] | None = None

    def observer(self, service: str) -> CallObserver:
        """A ``Processor`` observer recording calls under the label ``service``."""
        children: dict[tuple[str, str], tuple[Any, Any, Any, Any]] = {}  # labels() once per method/outcome

        def observe(method: str, outcome: str, seconds: float, reply_bytes: int) -> None:
            try:
                calls, latency, bytes_out, errors = children[(method, outcome)]
            except KeyError:
                calls, latency, bytes_out, errors = children[(method, outcome)] = (
                    self.calls.labels(service, method, outcome), self.latency.labels(service, method),
                    self.bytes_out.labels(service, method),
                    self.backend_errors.labels(service, method) if outcome == "error" else None)
            calls.inc()
            latency.observe(seconds)
            bytes_out.inc(reply_bytes)
            if errors is not None:
                errors.inc()

        return observe

    def aiohttp_middleware(self, service: str) -> Any:
        """An aiohttp middleware recording TJSON calls (method and outcome read from the reply) like Thrift ones."""
        from aiohttp import web

        observe = self.observer(service)

        @web.middleware
        async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
            started = time.perf_counter()
            response = await handler(request)
            body = getattr(response, "body", None)
            if isinstance(body, bytes) and (call := _tjson_outcome(body)) is not None:
                observe(call[0], call[1], time.perf_counter() - started, len(body))
            return response

        return middleware

    def track(self, state: ServerState) -> None:
        """Export the open connections and connection counters of ``state``."""
        self.states.append(state)

    def refresh(self) -> None:
        """Copy the tracked servers' connection numbers into the metrics."""
        self.connections.set(sum(len(s.connections) for s in self.states))
        for state in self.states:
            for attr, counter in self.state_counters.items():
                key = (id(state), attr)
                value = getattr(state, attr)
                delta = value - self._seen.get(key, 0)
                if delta > 0:
                    counter.inc(delta)
                self._seen[key] = value

    def render(self) -> bytes:
        """The current metrics in the Prometheus text format."""
        self.refresh()
        return generate_latest(self.registry)

    def start_refreshing(self, interval: float = 1.0) -> None:
        """Refresh on the running loop every ``interval`` s (for a supervisor's scrapes of workers)."""
        async def loop() -> None:
            while True:
                self.refresh()
                await asyncio.sleep(interval)

        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(loop())

    async def aclose(self) -> None:
        """Stop refreshing."""
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        self.refresh()

    async def start_http(self, host: str = "127.0.0.1", port: int = 9100) -> web.AppRunner:
        """Serve ``GET /metrics`` on the running loop (text format, or OpenMetrics when the
        scraper asks for it); ``await runner.cleanup()`` stops it."""
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
            self.refresh()
            return web.Response(body=encoder(self.registry), headers={"Content-Type": content_type})

        app = web.Application()
        app.router.add_get("/metrics", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        logger.info("Serving metrics on http://%s:%d/metrics", host, runner.addresses[0][1])
        return runner


def _tjson_outcome(body: bytes) -> tuple[str, str] | None:
    """(method, outcome) of a TJSON reply ``[1,"name",type,seqid,{...}]``, or None if it is not one."""
    if not body.startswith(b'[1,"'):
        return None
    end = body.find(b'"', 4)
    if end < 0:
        return None
    name = body[4:end].decode("utf-8", "replace")
    if body[end + 1:end + 3] == b",3":
        return name, "error"  # TApplicationException
    start = body.find(b",{", end)
    if start < 0:
        return None
    struct = body[start + 1:start + 6]
    return name, "ok" if struct.startswith((b'{"0":', b"{}")) else "exception"
