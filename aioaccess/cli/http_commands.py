"""relay-server and http-server: flags -> an AppConfig of one service, served by :mod:`aioaccess.app`."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..app.config import AppConfig, BackendOptions, RelayOptions, ServiceSpec
from ..app.sources import parse_fetch_url
from ..handlers.relay import DEFAULT_RELAY_TIMEOUT
from ..http.settings import DEFAULT_CLIENT_MAX_SIZE, FETCH_PATH, STORE_PATH, cors_origins
from ..server.config import ServerConfig
from .commands import serve_one
from .errors import UsageError
from .http_options import add_http_limit_options, http_limits
from .options import add_server_options
from .sources import add_backend_options
from .tls_options import add_client_tls_options, add_server_tls_options, server_tls

__all__ = ["register"]


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


def _relay_options(port: int, args: argparse.Namespace) -> RelayOptions:
    """The upstream pool the flags describe (UsageError naming the flag out of range)."""
    if args.upstream_connections < 1:
        raise UsageError(f"--upstream-connections must be >= 1, not {args.upstream_connections}")
    if args.upstream_timeout <= 0:
        raise UsageError(f"--upstream-timeout must be > 0, not {args.upstream_timeout}")
    if not 0 < port < 65536:
        raise UsageError(f"upstream port {port} is out of range")
    return RelayOptions(args.upstream_connections, args.upstream_timeout, args.pipelined)


def relay_server(args: argparse.Namespace) -> int:
    relay = _relay_options(args.upstream_port, args)
    return serve_one(args, "relay", {"upstream": f"{args.upstream_host}:{args.upstream_port}"}, relay, name="fetch")


def http_server(args: argparse.Namespace) -> int:
    from ..app.run import run_app

    return run_app(_http_config(args))


def _http_config(args: argparse.Namespace) -> AppConfig:
    """The AppConfig of http-server's flags, checked before any backend opens."""
    if args.client_max_size < 1:
        raise UsageError(f"--client-max-size must be >= 1, not {args.client_max_size}")
    try:
        http_limits(vars(args), flags=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.static_path is not None and not os.path.isdir(args.static_path):
        raise UsageError(f"static path {args.static_path} is not a directory")
    try:
        cors_origins([*args.cors_origins, *(["*"] if args.cors else [])], args.cors_store)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    tls = server_tls(args)
    relay = None
    if args.fetch_source.startswith("fetch://"):
        relay = _relay_options(parse_fetch_url(args.fetch_source)[1], args)
    options: dict[str, Any] = {
        "source": args.fetch_source, "cors": args.cors, "cors_origins": args.cors_origins,
        "cors_store": args.cors_store, "client_max_size": args.client_max_size,
        **{key: getattr(args, key) for key in ("header_timeout", "keepalive_timeout", "body_timeout",
                                               "max_connections")}}
    if args.store_path is not None:
        options["target"] = args.store_path
    if args.static_path is not None:
        options["static"] = args.static_path
    spec = ServiceSpec("http", "http", args.host, args.port, options, BackendOptions.from_args(args), tls, relay)
    return AppConfig([spec], ServerConfig(graceful_timeout=args.graceful_timeout), args.loop)
