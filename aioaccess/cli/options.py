"""Flags shared by every server command, and the ServerConfig they build."""

from __future__ import annotations

import argparse

from ..server import ServerConfig
from ..wire.framing import DEFAULT_MAX_FRAME_SIZE

__all__ = ["add_server_options", "server_config"]


def add_server_options(parser: argparse.ArgumentParser, default_port: int = 9090) -> None:
    group = parser.add_argument_group("server options")
    group.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    group.add_argument("--port", type=int, default=default_port, help=f"port to listen on (default: {default_port})")
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


def server_config(args: argparse.Namespace) -> ServerConfig:
    config = ServerConfig(
        max_frame_size=args.max_frame_size,
        idle_timeout=args.idle_timeout or None,
        max_connections=args.max_connections,
        graceful_timeout=args.graceful_timeout,
    )
    config.validate()
    return config
