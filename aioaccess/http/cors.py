"""Which requests the HTTP/TJSON endpoint takes from whom: content types and CORS, per route.

The rule (README, "Browsers and CORS"):

* **fetch** takes any ``Content-Type``, or none: Apache Thrift's JavaScript
  library sends none by default.  Fetching is reading; which pages may read
  the answers is decided by CORS.
* **store** takes only a ``Content-Type`` that a page of another origin cannot
  send without a CORS preflight: present, and not one of the three
  "CORS-safelisted" types (``text/plain``, ``application/x-www-form-urlencoded``,
  ``multipart/form-data``).  ``application/x-thrift``,
  ``application/vnd.apache.thrift.json`` and an explicit
  ``application/octet-stream`` all count.  So a page the user visits cannot
  store without passing the preflight, which only origins allowed with
  ``cors_store`` pass.
* CORS: ``cors_origins`` (``"*"`` or exact origins such as
  ``https://app.example.org``) may read fetch answers (and static files);
  they may call store only with ``cors_store``.  The preflight allows
  ``POST`` and the one request header the endpoint uses, ``Content-Type``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import hdrs, web

from .settings import cors_origins

__all__ = ["CORSPolicy", "SAFELISTED_CONTENT_TYPES", "store_content_type_problem"]

#: Content types a cross-origin page may POST without a preflight (Fetch standard, CORS-safelisted).
SAFELISTED_CONTENT_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})


def store_content_type_problem(request: web.Request) -> str | None:
    """Why ``request`` may not store (its content type needs no preflight), or None when it may."""
    if hdrs.CONTENT_TYPE not in request.headers:
        return ("store needs a Content-Type header that forces a CORS preflight, e.g. application/x-thrift; "
                "the request has none")
    if request.content_type in SAFELISTED_CONTENT_TYPES:
        return (f"store refuses content type {request.content_type!r} (a page of any origin may send it without "
                "a CORS preflight); send application/x-thrift")
    return None


class CORSPolicy:
    """Which origins may call fetch (``origins``) and store (the same, if ``store``)."""

    def __init__(self, origins: Iterable[str] = (), *, store: bool = False) -> None:
        self.origins = cors_origins(origins, store)
        self.store = store

    def __bool__(self) -> bool:
        return bool(self.origins)

    def allowed(self, request: web.Request, store_path: str) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``request``, or None (no CORS headers)."""
        origin = request.headers.get(hdrs.ORIGIN)
        if request.path == store_path and not self.store:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def headers(self, request: web.Request, store_path: str) -> dict[str, str]:
        allow = self.allowed(request, store_path)
        headers = {} if "*" in self.origins else {hdrs.VARY: "Origin"}
        if allow is not None:
            headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = allow
        return headers

    def middleware(self, store_path: str) -> Any:
        """An aiohttp middleware adding the CORS headers each answer may carry."""

        @web.middleware
        async def cors(request: web.Request, handler: Any) -> web.StreamResponse:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                exc.headers.update(self.headers(request, store_path))
                raise
            response.headers.update(self.headers(request, store_path))
            return response

        return cors

    def preflight(self, store_path: str) -> Any:
        """The OPTIONS handler: 204 with the allowed method and header, or 403 for an origin not allowed."""

        async def preflight(request: web.Request) -> web.Response:
            if self.allowed(request, store_path) is None:
                what = "store" if request.path == store_path else "this endpoint"
                return web.Response(status=403, text=f"cross-origin calls of {what} are not allowed "
                                    f"from {request.headers.get(hdrs.ORIGIN, 'an unknown origin')}\n")
            return web.Response(status=204, headers={
                hdrs.ACCESS_CONTROL_ALLOW_METHODS: "POST",
                hdrs.ACCESS_CONTROL_ALLOW_HEADERS: "Content-Type",
                hdrs.ACCESS_CONTROL_MAX_AGE: "86400",
            })

        return preflight
