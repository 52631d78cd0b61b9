"""The connection and body limits of an HTTP/TJSON service: ``http-server`` flags and ``serve`` keys.

A timeout of 0 means never, as for the Thrift servers' ``--idle-timeout``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..http.app import DEFAULT_BODY_TIMEOUT
from ..http.limits import DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, HTTPLimits

__all__ = ["CONFIG_KEYS", "add_http_limit_options", "http_limits"]

#: ``serve`` keys of an http service, with their types.
CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "header_timeout": (int, float), "keepalive_timeout": (int, float), "body_timeout": (int, float),
    "max_connections": int,
}


def add_http_limit_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection limits")
    group.add_argument("--header-timeout", type=float, default=DEFAULT_HEADER_TIMEOUT,
                       help="close a connection whose request head has not arrived this many seconds after its "
                       f"first byte; 0 never (default: {DEFAULT_HEADER_TIMEOUT:g})")
    group.add_argument("--keepalive-timeout", type=float, default=DEFAULT_KEEPALIVE_TIMEOUT,
                       help="close a connection without a request for this many seconds; 0 never "
                       f"(default: {DEFAULT_KEEPALIVE_TIMEOUT:g})")
    group.add_argument("--body-timeout", type=float, default=DEFAULT_BODY_TIMEOUT,
                       help="answer 408 to a request body not received in full this many seconds after its head; "
                       f"0 never (default: {DEFAULT_BODY_TIMEOUT:g})")
    group.add_argument("--max-connections", type=int, default=HTTPLimits.max_connections,
                       help="at this many open connections, close the one idle longest, or answer 503 when all are "
                       f"busy (default: {HTTPLimits.max_connections})")


def http_limits(values: dict[str, Any], max_connections: int = HTTPLimits.max_connections, *,
                flags: bool = False) -> tuple[HTTPLimits, float | None]:
    """The HTTPLimits and body timeout of ``values`` (flag dests / config keys; missing ones get defaults).

    Raises ValueError naming the setting out of range (as a ``--flag`` with ``flags``).
    """
    def named(key: str) -> str:
        return "--" + key.replace("_", "-") if flags else key

    def seconds(key: str, default: float) -> float | None:
        value = float(values.get(key, default))
        if value < 0:
            raise ValueError(f"{named(key)} must be >= 0 (0: never), not {value:g}")
        return value or None

    conns = values.get("max_connections", max_connections)
    if conns < 1:
        raise ValueError(f"{named('max_connections')} must be >= 1, not {conns}")
    limits = HTTPLimits(header_timeout=seconds("header_timeout", DEFAULT_HEADER_TIMEOUT),
                        keepalive_timeout=seconds("keepalive_timeout", DEFAULT_KEEPALIVE_TIMEOUT),
                        max_connections=conns)
    return limits, seconds("body_timeout", DEFAULT_BODY_TIMEOUT)
