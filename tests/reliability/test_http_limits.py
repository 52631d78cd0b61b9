"""The HTTP/TJSON endpoint under hostile bodies and connections: memory stays bounded, slow and idle clients are cut,
the connection cap refuses clearly, and a good client is served throughout.

Every test runs ``python -m aioaccess http-server`` as a subprocess and reads its RSS from /proc.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from _reliability import AioaccessProcess, rss_kb, set_figure

LIMIT = 8 << 20  # --client-max-size of the memory test
CT = {"Content-Type": "application/x-thrift"}
COUNT = b'[1,"getCommunicationCount",1,1,{}]'


def _vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


async def _post(session: aiohttp.ClientSession, url: str, data: Any, headers: dict[str, str]) -> tuple[int, bytes]:
    async with session.post(url, data=data, headers=headers) as resp:
        return resp.status, await resp.read()


async def _chunked(size: int) -> AsyncIterator[bytes]:
    piece = b" " * (1 << 20)
    for _ in range(size >> 20):
        yield piece


async def test_bombs_and_oversized_bodies_leave_memory_where_it_was(comm_dir: str, store_dir: str) -> None:
    """gzip bombs, chunked bodies over the limit and unparseable bodies just under it, one after another and at
    once, on both endpoints: each gets its 413 or 400, and the server's RSS comes back to within a few MB."""
    bomb = gzip.compress(b" " * (8 * LIMIT))  # 64 KB that inflate to 64 MiB
    garbage = b"[" * (LIMIT - 1024)  # not TJSON: a 400 after the whole body was read
    with AioaccessProcess("http-server", comm_dir, "--store-path", store_dir,
                          "--client-max-size", str(LIMIT)) as server:
        base = f"http://127.0.0.1:{server.port}"
        urls = [f"{base}/fetch_http_endpoint/", f"{base}/store_http_endpoint/"]
        connector = aiohttp.TCPConnector(force_close=True, limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
            gz = {**CT, "Content-Encoding": "gzip"}
            kinds = {
                "gzip bomb": (lambda: bomb, gz, 413),
                "chunked over the limit": (lambda: _chunked(LIMIT + (2 << 20)), CT, 413),
                "unparseable, under the limit": (lambda: io.BytesIO(garbage), CT, 400),
            }
            # Warm up: every kind once, so the allocator's arenas exist before the baseline.
            for data, headers, status in kinds.values():
                assert (await _post(session, urls[0], data(), headers))[0] == status
            before = rss_kb(server.pid)
            figures: dict[str, Any] = {"limit_mb": LIMIT >> 20, "rss_before_mb": before >> 10}
            for name, (data, headers, status) in kinds.items():
                for _ in range(10):  # one after another
                    for url in urls:
                        assert (await _post(session, url, data(), headers))[0] == status, name
                sequential = rss_kb(server.pid)
                got = await asyncio.gather(*(_post(session, urls[i % 2], data(), headers) for i in range(16)))
                assert [s for s, _ in got] == [status] * 16, name
                concurrent = rss_kb(server.pid)
                figures[name] = {"after_20_in_a_row_mb": sequential >> 10, "after_16_at_once_mb": concurrent >> 10}
                for after in (sequential, concurrent):
                    assert after - before < 40 << 10, f"{name}: RSS {before} KiB -> {after} KiB"
            figures["peak_mb"] = _vm_hwm_kb(server.pid) >> 10
            status, body = await _post(session, urls[0], COUNT, CT)
            assert (status, json.loads(body)[2]) == (200, 2)
    set_figure("http_body_memory", figures)
