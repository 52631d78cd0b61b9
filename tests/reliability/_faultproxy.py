"""A fault-injecting HTTP proxy for S3 tests: forwards to moto's server, or fails on purpose.

``FaultProxy(upstream)`` listens on 127.0.0.1; set ``fault_rate`` (0..1) and
``fault`` at any time:

``"503"``       503 ``ServiceUnavailable`` (S3 error XML)
``"slowdown"``  503 ``SlowDown``
``"500"``       500 ``InternalError``
``"stall"``     hold the request ``stall_seconds`` (or until ``aclose``), then 503; never forwarded
``"reset"``     drop the connection without an answer
``"lost-ack"``  forward the request, then answer 500 anyway (the write landed; the client cannot know)
``"mix"``       one of 503 / SlowDown / 500 / lost-ack at random

Counters: ``requests``, ``forwarded``, ``faults`` (by kind).  Loopback only.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["FaultProxy"]

_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "expect", "keep-alive",
               "content-encoding"}

_ERRORS = {
    "503": (503, "ServiceUnavailable", "Please reduce your request rate."),
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
}


def _error_xml(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"<RequestId>faultproxy</RequestId><HostId>faultproxy</HostId></Error>").encode()


class FaultProxy:
    """Forward HTTP requests to ``upstream``, injecting faults into a fraction of them."""

    def __init__(self, upstream: str, *, fault_rate: float = 0.0, fault: str = "mix", stall_seconds: float = 30.0,
                 seed: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.fault_rate = fault_rate
        self.fault = fault
        self.stall_seconds = stall_seconds
        self.rng = random.Random(seed)
        self.requests = 0
        self.forwarded = 0
        self.faults: Counter[str] = Counter()
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closing = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, fault_rate: float, fault: str | None = None) -> None:
        """Change the fault rate (and kind) for the requests that follow."""
        self.fault_rate = fault_rate
        if fault is not None:
            self.fault = fault

    async def start(self) -> FaultProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False,
                                              timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        return self

    async def aclose(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await request.read()
        if self.fault_rate > 0 and self.rng.random() < self.fault_rate:
            return await self._inject(request, body)
        return await self._forward(request, body)

    async def _forward(self, request: web.Request, body: bytes) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=body, allow_redirects=False) as upstream:
            payload = await upstream.read()
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            self.forwarded += 1
            return web.Response(status=upstream.status, headers=out_headers, body=payload)

    async def _inject(self, request: web.Request, body: bytes) -> web.StreamResponse:
        kind = self.fault
        if kind == "mix":
            kind = self.rng.choice([*sorted(_ERRORS), "lost-ack"])
        self.faults[kind] += 1
        if kind == "lost-ack":
            await self._forward(request, body)
            kind = "500"
        if kind == "stall":
            try:
                await asyncio.wait_for(self._closing.wait(), self.stall_seconds)
            except TimeoutError:
                pass
            kind = "503"
        if kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()  # never delivered: the connection is gone
        status, code, message = _ERRORS[kind]
        return web.Response(status=status, body=_error_xml(code, message), content_type="application/xml")

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "forwarded": self.forwarded, "faults": dict(self.faults)}
