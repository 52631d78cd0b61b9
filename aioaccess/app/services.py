"""Handlers, processors and HTTP endpoints from :class:`ServiceSpec` s; what they open closes with a stack."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from ..server.supervisor import is_worker
from .config import AppConfig, RelayOptions, ServiceSpec
from .errors import SetupError
from .sources import open_source, open_target, parse_fetch_url
from .tls import client_tls

if TYPE_CHECKING:
    from ..handlers.relay import RelayFetchHandler
    from ..http.app import HTTPServer
    from ..server import Processor

__all__ = ["open_fetch_handler", "open_http", "open_processor", "open_relay", "open_store_handler"]

logger = logging.getLogger("aioaccess.cli")


async def open_relay(spec: ServiceSpec, host: str, port: int, stack: AsyncExitStack) -> RelayFetchHandler:
    """A relay to ``host:port`` with the spec's pool options (``backend_concurrency``/``backend_timeout``
    without them), closed with ``stack``; with ``check``, logs whether the upstream answers."""
    from ..handlers.relay import DEFAULT_RELAY_TIMEOUT, RelayFetchHandler

    if spec.relay is not None:
        opts = spec.relay
    else:
        opts = RelayOptions(spec.backend.backend_concurrency, spec.backend.backend_timeout, check=False)
    handler = RelayFetchHandler(host, port, max_connections=opts.connections,
                                timeout=DEFAULT_RELAY_TIMEOUT if opts.timeout is None else opts.timeout,
                                pipelined=opts.pipelined, ssl=client_tls(spec.backend, upstream=True))
    stack.push_async_callback(handler.aclose)
    if opts.check:
        try:
            await handler.alive()
        except Exception as exc:  # noqa: BLE001 - only logged: the relay starts either way and recovers
            logger.warning("Upstream %s does not answer yet (%s); relaying anyway", handler.upstream,
                           getattr(exc, "message", None) or exc)
        else:
            logger.info("Relaying to the fetch service at %s", handler.upstream)
    return handler


async def open_fetch_handler(spec: ServiceSpec, source: str, stack: AsyncExitStack) -> Any:
    """The fetch handler of SOURCE: a container's, or a relay for ``fetch://`` when the spec has relay options."""
    if spec.relay is not None and source.startswith("fetch://"):
        return await open_relay(spec, *parse_fetch_url(source), stack)
    from ..handlers import CommunicationContainerFetchHandler

    return CommunicationContainerFetchHandler(await open_source(source, spec.backend, stack))


async def open_store_handler(spec: ServiceSpec, target: str, stack: AsyncExitStack) -> Any:
    """The store handler of TARGET, closed with ``stack``."""
    handler = await open_target(target, spec.backend, stack)
    if callable(getattr(handler, "aclose", None)):
        stack.push_async_callback(handler.aclose)
    return handler


async def open_processor(spec: ServiceSpec, config: AppConfig, stack: AsyncExitStack,
                         observer: Any = None) -> tuple[Any, Processor]:
    """(handler, Processor) of a fetch, store or relay service."""
    from ..server import Processor

    if spec.kind == "fetch":
        from ..schema import FetchCommunicationService

        handler = await open_fetch_handler(spec, spec.options["source"], stack)
        return handler, Processor(FetchCommunicationService, handler, observer=observer,
                                  max_reply_size=config.max_reply_size)
    if spec.kind == "store":
        from ..schema import StoreCommunicationService

        handler = await open_store_handler(spec, spec.options["target"], stack)
        return handler, Processor(StoreCommunicationService, handler, observer=observer)
    if spec.kind == "relay":
        from ..handlers.relay import RelayProcessor

        host, _, port = spec.options["upstream"].rpartition(":")
        relay = await open_relay(spec, host, int(port), stack)
        return relay, RelayProcessor(relay, observer=observer)
    raise ValueError(f"{spec.name}: a {spec.kind} service has no Processor")


async def open_http(spec: ServiceSpec, config: AppConfig, handlers: dict[str, Any],
                    stack: AsyncExitStack) -> HTTPServer:
    """The (unstarted) HTTP/TJSON endpoint of an http service; ``fetch``/``store`` name ``handlers``."""
    from ..http.app import HTTPServer, create_app
    from .http_limits import http_limits

    opts = spec.options
    fetch = handlers[opts["fetch"]] if "fetch" in opts else None
    if "source" in opts:
        fetch = await open_fetch_handler(spec, opts["source"], stack)
    store = handlers[opts["store"]] if "store" in opts else None
    if "target" in opts:
        store = await open_store_handler(spec, opts["target"], stack)
    kwargs: dict[str, Any] = {"static_path": opts.get("static"), "cors": opts.get("cors", False),
                              "cors_origins": opts.get("cors_origins", ()), "cors_store": opts.get("cors_store", False)}
    if "client_max_size" in opts:
        kwargs["client_max_size"] = opts["client_max_size"]
    limits, kwargs["body_timeout"] = http_limits(opts, config.server.max_connections)
    try:
        app = create_app(fetch, store, **kwargs)
    except FileNotFoundError as exc:
        raise SetupError(str(exc)) from exc
    return HTTPServer(app, spec.host, spec.port, shutdown_timeout=config.server.graceful_timeout,
                      reuse_port=is_worker(), limits=limits, ssl_context=spec.ssl)
