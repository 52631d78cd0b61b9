"""ConnectionGuard in process: the cap makes room one idle connection per newcomer, never the same one twice."""

from __future__ import annotations

import asyncio

from aioaccess import CommunicationContainerFetchHandler
from aioaccess.http import HTTPServer, create_app
from aioaccess.http.limits import HTTPLimits

COUNT = b'[1,"getCommunicationCount",1,1,{}]'


def _request() -> bytes:
    return (b"POST /fetch_http_endpoint/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-thrift\r\n"
            b"Content-Length: %d\r\n\r\n" % len(COUNT) + COUNT)


async def test_newcomers_at_the_cap_each_close_a_different_idle_connection() -> None:
    handler = CommunicationContainerFetchHandler({"a": b"\x0b\x00\x01\x00\x00\x00\x01a\x00"})
    server = HTTPServer(create_app(handler), "127.0.0.1", 0, limits=HTTPLimits(max_connections=2))
    async with server:
        old = [await asyncio.open_connection("127.0.0.1", server.bound_port) for _ in range(2)]
        async with asyncio.timeout(5):
            while len(server.guard.open) < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(1.1)  # idle longer than MIN_IDLE
        new = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", server.bound_port) for _ in range(2)))
        for reader, writer in new:
            writer.write(_request())
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        async with asyncio.timeout(5):
            for reader, _ in old:
                assert await reader.read() == b""  # both old ones were closed to make room
        assert server.guard.evicted == 2 and server.guard.refused == 0
        assert len(server.guard.open) == 2
        for _, writer in old + list(new):
            writer.close()
