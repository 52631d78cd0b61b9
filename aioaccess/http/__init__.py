"""The HTTP/TJSON endpoint for browser clients (aiohttp)."""

from __future__ import annotations

from .app import (
    CONTENT_TYPE,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_CLIENT_MAX_SIZE,
    FETCH_PATH,
    STORE_PATH,
    HTTPServer,
    TJSONEndpoint,
    create_app,
    serve_http,
)
from .limits import HTTPLimits

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
