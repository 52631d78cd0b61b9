"""relay-server and http-server."""

from __future__ import annotations

import argparse
import logging
import os
from contextlib import AsyncExitStack
from typing import Any

from ..handlers import CommunicationContainerFetchHandler
from ..handlers.relay import DEFAULT_RELAY_TIMEOUT, RelayFetchHandler, RelayProcessor
from ..http.app import DEFAULT_CLIENT_MAX_SIZE, FETCH_PATH, STORE_PATH, HTTPServer, create_app
from ..http.cors import CORSPolicy
from ..schema import FetchCommunicationService
from ..server import Server
from .errors import UsageError
from .http_options import add_http_limit_options, http_limits
from .ops_commands import open_metrics, service_label, supervise
from .options import add_server_options, server_config
from .run import run, serve_until_signalled
from .sources import add_backend_options, open_source, open_target, parse_fetch_url
from .tls_options import add_client_tls_options, add_server_tls_options, client_tls, server_tls

__all__ = ["register"]

logger = logging.getLogger("aioaccess.cli")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("relay-server", help="relay FetchCommunicationService calls to an upstream fetch server",
                       description="Serve FetchCommunicationService (framed compact) by relaying every call, "
                       "verbatim, to the fetch server at UPSTREAM_HOST:UPSTREAM_PORT over a bounded pool of "
                       "persistent connections.  Upstream failures reach callers as ServicesException.")
    p.add_argument("upstream_host", metavar="UPSTREAM_HOST")
    p.add_argument("upstream_port", metavar="UPSTREAM_PORT", type=int)
    _add_upstream_options(p)
    add_server_options(p)
    p.set_defaults(func=relay_server)

    p = sub.add_parser("http-server", help="serve fetch/store over HTTP with TJSON (for browser clients)",
                       description=f"Serve FetchCommunicationService at POST {FETCH_PATH} and (with --store-path) "
                       f"StoreCommunicationService at POST {STORE_PATH}, in Apache Thrift's TJSONProtocol, plus "
                       "static files.  FETCH_SOURCE is anything fetch-server takes: a directory, a .zip, a "
                       "Communications file, redis://, s3://, fetch://HOST:PORT (relay) or 'sample'.")
    p.add_argument("fetch_source", metavar="FETCH_SOURCE")
    p.add_argument("--store-path", metavar="TARGET",
                   help="store Communications here (a directory, redis:// or s3://); no store endpoint without it")
    p.add_argument("--no-fsync", action="store_true", help="directory stores: do not fsync before acknowledging")
    p.add_argument("--static-path", metavar="DIR", help="serve the files in DIR (e.g. HTML and JavaScript)")
    p.add_argument("--cors", action="store_true",
                   help="deprecated: the same as --cors-origin '*' (pages of every origin may call fetch, not store)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN", dest="cors_origins",
                   help="pages of ORIGIN (e.g. https://app.example.org, or '*') may call fetch; repeatable")
    p.add_argument("--cors-store", action="store_true",
                   help="the --cors-origin origins may call store too (default: fetch only)")
    p.add_argument("--client-max-size", type=int, default=DEFAULT_CLIENT_MAX_SIZE,
                   help=f"largest request body in bytes (default: {DEFAULT_CLIENT_MAX_SIZE})")
    add_http_limit_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds shutdown waits for requests in flight (default: 30)")
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="event loop implementation (default: auto = uvloop when installed)")
    _add_upstream_options(p, relay_only=True)
    add_backend_options(p)
    add_server_tls_options(p, handshake_timeout=False)  # aiohttp keeps its own (60 s)
    p.set_defaults(func=http_server)


def _add_upstream_options(parser: argparse.ArgumentParser, relay_only: bool = False) -> None:
    group = parser.add_argument_group("upstream options" + (" (fetch:// sources)" if relay_only else ""))
    group.add_argument("--upstream-connections", type=int, default=64,
                       help="persistent connections to the upstream at most (default: 64)")
    group.add_argument("--no-pipelining", dest="pipelined", action="store_false",
                       help="one call at a time per upstream connection (default: pipeline calls on each)")
    group.add_argument("--upstream-timeout", type=float, default=DEFAULT_RELAY_TIMEOUT,
                       help="seconds a relayed call may take before it fails with ServicesException "
                       f"(default: {DEFAULT_RELAY_TIMEOUT:g})")
    add_client_tls_options(parser, upstream=True)


def _relay_handler(host: str, port: int, args: argparse.Namespace) -> RelayFetchHandler:
    if args.upstream_connections < 1:
        raise UsageError(f"--upstream-connections must be >= 1, not {args.upstream_connections}")
    if args.upstream_timeout <= 0:
        raise UsageError(f"--upstream-timeout must be > 0, not {args.upstream_timeout}")
    if not 0 < port < 65536:
        raise UsageError(f"upstream port {port} is out of range")
    return RelayFetchHandler(host, port, max_connections=args.upstream_connections, timeout=args.upstream_timeout,
                             pipelined=args.pipelined, ssl=client_tls(args, upstream=True))


async def _check_upstream(handler: RelayFetchHandler) -> None:
    """Log whether the upstream answers; the relay starts either way and recovers when it does."""
    try:
        await handler.alive()
    except Exception as exc:  # noqa: BLE001 - only logged
        logger.warning("Upstream %s does not answer yet (%s); relaying anyway", handler.upstream,
                       getattr(exc, "message", None) or exc)
    else:
        logger.info("Relaying to the fetch service at %s", handler.upstream)


def relay_server(args: argparse.Namespace) -> int:
    if (status := supervise(args)) is not None:  # --workers N: this process only supervises
        return status
    return run(_relay_server(args), args.loop)


async def _relay_server(args: argparse.Namespace) -> int:
    config = server_config(args)
    tls = server_tls(args)
    async with AsyncExitStack() as stack:
        handler = _relay_handler(args.upstream_host, args.upstream_port, args)
        stack.push_async_callback(handler.aclose)
        await _check_upstream(handler)
        server = Server(config)
        metrics = await open_metrics(args, server, stack)
        observer = metrics.observer(service_label(FetchCommunicationService)) if metrics is not None else None
        server.add_service(RelayProcessor(handler, observer=observer), args.host, args.port, ssl=tls)
        try:
            return await serve_until_signalled(server)
        except OSError as exc:
            if server.started.is_set():
                raise
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc


def http_server(args: argparse.Namespace) -> int:
    return run(_http_server(args), args.loop)


async def _open_fetch_handler(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> Any:
    if spec.startswith("fetch://"):
        handler = _relay_handler(*parse_fetch_url(spec), args)
        stack.push_async_callback(handler.aclose)
        await _check_upstream(handler)
        return handler
    return CommunicationContainerFetchHandler(await open_source(spec, args, stack))


async def _http_server(args: argparse.Namespace) -> int:
    if args.client_max_size < 1:
        raise UsageError(f"--client-max-size must be >= 1, not {args.client_max_size}")
    try:
        limits, body_timeout = http_limits(vars(args), flags=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.static_path is not None and not os.path.isdir(args.static_path):
        raise UsageError(f"static path {args.static_path} is not a directory")
    try:  # before any backend opens
        CORSPolicy([*args.cors_origins, *(["*"] if args.cors else [])], store=args.cors_store)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    tls = server_tls(args)
    async with AsyncExitStack() as stack:
        fetch_handler = await _open_fetch_handler(args.fetch_source, args, stack)
        store_handler = None
        if args.store_path is not None:
            store_handler = await open_target(args.store_path, args, stack)
            if callable(getattr(store_handler, "aclose", None)):
                stack.push_async_callback(store_handler.aclose)
        try:
            app = create_app(fetch_handler, store_handler, static_path=args.static_path, cors=args.cors,
                             client_max_size=args.client_max_size, body_timeout=body_timeout,
                             cors_origins=args.cors_origins, cors_store=args.cors_store)
        except FileNotFoundError as exc:
            raise UsageError(str(exc)) from exc
        http = HTTPServer(app, args.host, args.port, shutdown_timeout=args.graceful_timeout, limits=limits,
                          ssl_context=tls)
        try:
            await http.start()
        except OSError as exc:
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
        stack.push_async_callback(http.aclose)
        # A Thrift Server with no listeners gives the HTTP server the same signal handling and lifecycle.
        return await serve_until_signalled(Server())
