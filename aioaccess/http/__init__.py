"""The HTTP/TJSON endpoint for browser clients (aiohttp: the ``http`` extra).

Names load on first use, so :mod:`aioaccess.http.settings` (paths, defaults,
limits, CORS origins) is usable without aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._extras import lazy_attributes

if TYPE_CHECKING:
    from .app import TJSONEndpoint, create_app
    from .server import HTTPServer, serve_http
    from .settings import (
        CONTENT_TYPE,
        DEFAULT_BODY_TIMEOUT,
        DEFAULT_CLIENT_MAX_SIZE,
        FETCH_PATH,
        STORE_PATH,
        HTTPLimits,
    )

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_CLIENT_MAX_SIZE",
    "FETCH_PATH",
    "STORE_PATH",
    "HTTPLimits",
    "HTTPServer",
    "TJSONEndpoint",
    "create_app",
    "serve_http",
]

__getattr__ = lazy_attributes(globals(), {
    "CONTENT_TYPE": ".settings", "DEFAULT_BODY_TIMEOUT": ".settings", "DEFAULT_CLIENT_MAX_SIZE": ".settings",
    "FETCH_PATH": ".settings", "STORE_PATH": ".settings", "HTTPLimits": ".settings",
    "HTTPServer": ".server", "serve_http": ".server", "TJSONEndpoint": ".app", "create_app": ".app",
})
