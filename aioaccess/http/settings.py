"""The HTTP/TJSON endpoint's paths, defaults, limits and CORS origins: plain values, no aiohttp.

``serve`` and ``http-server`` check their settings with these before any
backend opens; only building the endpoint itself needs the ``http`` extra.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["CONTENT_TYPE", "DEFAULT_BODY_TIMEOUT", "DEFAULT_CLIENT_MAX_SIZE", "DEFAULT_HEADER_TIMEOUT",
           "DEFAULT_KEEPALIVE_TIMEOUT", "FETCH_PATH", "HTTPLimits", "STORE_PATH", "cors_origins"]

FETCH_PATH = "/fetch_http_endpoint/"
STORE_PATH = "/store_http_endpoint/"
#: What Apache's THttpClient sends and what the endpoint answers with.
CONTENT_TYPE = "application/x-thrift"
#: Largest request body accepted by default, in bytes.
DEFAULT_CLIENT_MAX_SIZE = 64 * 1024 * 1024
#: Seconds a request body may take to arrive, by default (a client that stalls mid-body gets a 408).
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_HEADER_TIMEOUT = 30.0
DEFAULT_KEEPALIVE_TIMEOUT = 75.0
#: aiohttp's keep-alive timer needs a number: "never" is this many seconds.
_NEVER = 10.0 ** 9


@dataclass
class HTTPLimits:
    """``header_timeout``/``keepalive_timeout`` in seconds (None: never); ``max_connections`` open at once."""

    header_timeout: float | None = DEFAULT_HEADER_TIMEOUT
    keepalive_timeout: float | None = DEFAULT_KEEPALIVE_TIMEOUT
    max_connections: int = 10_000

    def validate(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        for name in ("header_timeout", "keepalive_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, not {value}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, not {self.max_connections}")

    def handler_args(self) -> dict[str, Any]:
        """Keyword arguments for aiohttp's RequestHandler (through ``AppRunner``)."""
        return {"keepalive_timeout": self.keepalive_timeout or _NEVER}


def cors_origins(origins: Iterable[str], store: bool) -> frozenset[str]:
    """The origins of a CORS policy, checked: ValueError names the first bad one (``store`` needs one)."""
    checked = frozenset(o.rstrip("/") if o != "*" else o for o in origins)
    if store and not checked:
        raise ValueError("cors_store needs at least one CORS origin")
    for origin in checked:
        if origin != "*" and "://" not in origin:
            raise ValueError(f"CORS origin {origin!r} is not '*' or SCHEME://HOST[:PORT]")
    return checked
