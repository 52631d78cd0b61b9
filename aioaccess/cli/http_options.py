"""The ``http-server`` flags of an HTTP/TJSON service's connection and body limits (checked by
:func:`aioaccess.app.http_limits.http_limits`, which ``serve`` keys go through too)."""

from __future__ import annotations

import argparse

from ..app.http_limits import CONFIG_KEYS, http_limits
from ..http.settings import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, HTTPLimits

__all__ = ["CONFIG_KEYS", "add_http_limit_options", "http_limits"]

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
