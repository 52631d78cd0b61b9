"""The connection and body limits of an HTTP/TJSON service, from ``http-server`` flags or ``serve`` keys.

A timeout of 0 means never, as for the Thrift servers' ``--idle-timeout``.
"""

from __future__ import annotations

from typing import Any

from ..http.settings import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT, HTTPLimits

__all__ = ["CONFIG_KEYS", "http_limits"]

#: ``serve`` keys of an http service, with their types.
CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "header_timeout": (int, float), "keepalive_timeout": (int, float), "body_timeout": (int, float),
    "max_connections": int,
}


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
