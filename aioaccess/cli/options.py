"""Flags shared by every server command, and the ServerConfig they build."""

from __future__ import annotations

import argparse

from ..server import ServerConfig
from ..server.supervisor import is_worker
from ..wire.framing import DEFAULT_MAX_FRAME_SIZE
from .errors import UsageError

__all__ = ["add_server_options", "server_config"]


def add_server_options(parser: argparse.ArgumentParser, default_port: int = 9090) -> None:
    group = parser.add_argument_group("server options")
    group.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    group.add_argument("-p", "--port", type=int, default=default_port,
                       help=f"port to listen on (default: {default_port})")
    group.add_argument("--idle-timeout", type=float, default=300.0,
                       help="close a connection idle this many seconds; 0 never (default: 300)")
    group.add_argument("--max-frame-size", type=int, default=DEFAULT_MAX_FRAME_SIZE,
                       help=f"largest request frame in bytes (default: {DEFAULT_MAX_FRAME_SIZE})")
    group.add_argument("--max-connections", type=int, default=10_000,
                       help="refuse connections beyond this many (default: 10000)")
    group.add_argument("--graceful-timeout", type=float, default=30.0,
                       help="seconds shutdown waits for in-flight calls (default: 30)")
    group.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                       help="event loop implementation (default: auto = uvloop when installed)")
    group.add_argument("--workers", type=int, default=1,
                       help="server processes sharing the port with SO_REUSEPORT (default: 1)")
    group.add_argument("--metrics-port", type=int, default=None,
                       help="serve Prometheus metrics on http://METRICS_HOST:PORT/metrics (default: off)")
    group.add_argument("--metrics-host", default="127.0.0.1",
                       help="address of the metrics endpoint (default: 127.0.0.1)")


def server_config(args: argparse.Namespace) -> ServerConfig:
    config = ServerConfig(
        max_frame_size=args.max_frame_size,
        idle_timeout=args.idle_timeout or None,
        max_connections=args.max_connections,
        graceful_timeout=args.graceful_timeout,
        reuse_port=is_worker(),
    )
    try:
        config.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, not {args.workers}")
    return config
