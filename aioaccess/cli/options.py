"""Flags shared by every server command, and the ServerConfig they build.

``--max-reply-size`` is only for commands whose Processor answers fetch from a
container (fetch-server): a relay forwards the upstream's replies verbatim, so
the limit would never apply there.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..server.config import ServerConfig
from ..server.supervisor import is_worker
from ..wire.framing import DEFAULT_MAX_FRAME_SIZE
from ..wire.messages import DEFAULT_MAX_REPLY_SIZE
from .errors import UsageError
from .tls_options import add_server_tls_options

if TYPE_CHECKING:
    from ..app.config import AppConfig, ServiceSpec

__all__ = ["MAX_REPLY_SIZE_LIMIT", "add_server_options", "app_config", "check_buffered_bytes", "check_reply_size",
           "server_config"]

#: Largest reply frame a Thrift client can read: framed transports read the length as a signed int32.
MAX_REPLY_SIZE_LIMIT = (1 << 31) - 1


def add_server_options(parser: argparse.ArgumentParser, default_port: int = 9090, *,
                       fetch_replies: bool = False) -> None:
    """The server flags; ``fetch_replies``: also ``--max-reply-size`` (commands that answer fetch themselves)."""
    group = parser.add_argument_group("server options")
    group.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    group.add_argument("-p", "--port", type=int, default=default_port,
                       help=f"port to listen on (default: {default_port})")
    group.add_argument("--idle-timeout", type=float, default=300.0,
                       help="close a connection idle this many seconds; 0 never (default: 300)")
    group.add_argument("--max-frame-size", type=int, default=DEFAULT_MAX_FRAME_SIZE,
                       help=f"largest request frame in bytes (default: {DEFAULT_MAX_FRAME_SIZE})")
    group.add_argument("--max-buffered-bytes", type=int, default=ServerConfig.max_buffered_bytes,
                       help="bytes of unfinished request frames all connections may hold together; a connection "
                       "whose partial frame would pass it is closed; must be >= --max-frame-size "
                       f"(default: {ServerConfig.max_buffered_bytes})")
    if fetch_replies:
        group.add_argument("--max-reply-size", type=int, default=DEFAULT_MAX_REPLY_SIZE,
                           help="a fetch of several Communications whose reply would pass this many bytes fails "
                           "with ServicesException (a single Communication is always sent); at most "
                           f"{MAX_REPLY_SIZE_LIMIT} (default: {DEFAULT_MAX_REPLY_SIZE})")
    group.add_argument("--max-connections", type=int, default=10_000,
                       help="at this many open connections, close the one idle longest for a new one, or refuse "
                       "it when none is idle (default: 10000)")
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
    add_server_tls_options(parser)


def check_reply_size(value: int, name: str = "--max-reply-size") -> str | None:
    """Why ``value`` cannot be a max_reply_size (the message names ``name``), or None."""
    if not 1 <= value <= MAX_REPLY_SIZE_LIMIT:
        return f"{name} must be 1..{MAX_REPLY_SIZE_LIMIT}, not {value}"
    return None


def check_buffered_bytes(value: int, max_frame_size: int, name: str = "--max-buffered-bytes",
                         frame_name: str = "--max-frame-size") -> str | None:
    """Why ``value`` cannot be a max_buffered_bytes next to ``max_frame_size``, or None.

    The server never budgets less than one largest frame, so a smaller value would silently do
    nothing: it is refused instead.
    """
    if value < 1:
        return f"{name} must be >= 1, not {value}"
    if value < max_frame_size:
        return (f"{name} ({value}) is below {frame_name} ({max_frame_size}) and would have no effect; "
                f"lower {frame_name} too")
    return None


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The checked ServerConfig of a server command's flags (UsageError naming the flag)."""
    problem = check_buffered_bytes(args.max_buffered_bytes, args.max_frame_size)
    if problem is None and getattr(args, "max_reply_size", None) is not None:
        problem = check_reply_size(args.max_reply_size)
    if problem is not None:
        raise UsageError(problem)
    config = ServerConfig(
        max_frame_size=args.max_frame_size,
        max_buffered_bytes=args.max_buffered_bytes,
        idle_timeout=args.idle_timeout or None,
        max_connections=args.max_connections,
        graceful_timeout=args.graceful_timeout,
        reuse_port=is_worker(),
        tls_handshake_timeout=args.tls_handshake_timeout,
    )
    try:
        config.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, not {args.workers}")
    return config


def app_config(args: argparse.Namespace, spec: ServiceSpec) -> AppConfig:
    """The AppConfig of a one-service server command: ``spec`` with the server flags."""
    from ..app.config import AppConfig

    config = AppConfig([spec], server_config(args), args.loop, args.workers, args.metrics_host, args.metrics_port)
    if getattr(args, "max_reply_size", None) is not None:
        config.max_reply_size = args.max_reply_size
    return config
