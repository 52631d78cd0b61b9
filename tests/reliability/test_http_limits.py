"""The HTTP/TJSON endpoint under hostile bodies and connections: memory stays bounded, slow and idle clients are cut,
the connection cap refuses clearly, and a good client is served throughout.

Every test runs ``python -m aioaccess http-server`` as a subprocess and reads its RSS from /proc.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import resource
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from _reliability import AioaccessProcess, raise_nofile, rss_kb, set_figure

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


async def test_bombs_and_oversized_bodies_leave_memory_where_it_was(comm_dir: str, store_dir: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """gzip bombs, chunked bodies over the limit and unparseable bodies just under it, one after another and at
    once, on both endpoints: each gets its 413 or 400, and the server's RSS comes back to within a few MB."""
    # Buffers over 1 MiB always mmap'd, so freeing one returns it to the system at once: RSS then shows what
    # the server still holds, not how glibc's adaptive threshold happened to place the big buffers.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(1 << 20))
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
                for _ in range(5):  # one after another
                    for url in urls:
                        assert (await _post(session, url, data(), headers))[0] == status, name
                sequential = rss_kb(server.pid)
                got = await asyncio.gather(*(_post(session, urls[i % 2], data(), headers) for i in range(16)))
                assert [s for s, _ in got] == [status] * 16, name
                concurrent = rss_kb(server.pid)
                figures[name] = {"after_10_in_a_row_mb": sequential >> 10, "after_16_at_once_mb": concurrent >> 10}
                for after in (sequential, concurrent):
                    assert after - before < 40 << 10, f"{name}: RSS {before} KiB -> {after} KiB"
            figures["peak_mb"] = _vm_hwm_kb(server.pid) >> 10
            status, body = await _post(session, urls[0], COUNT, CT)
            assert (status, json.loads(body)[2]) == (200, 2)
    set_figure("http_body_memory", figures)


async def _open(port: int, data: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if data:
        writer.write(data)
        await writer.drain()
    return reader, writer


async def _close_all(writers: list[asyncio.StreamWriter]) -> None:
    """Close our ends for real before the server is stopped (stopping it blocks this loop)."""
    for writer in writers:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


async def _closed_after(reader: asyncio.StreamReader, started: float, limit: float) -> float:
    """Seconds from ``started`` until the server closes the connection (fails beyond ``limit``)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(limit):
        try:
            while await reader.read(65536):
                pass
        except ConnectionResetError:
            pass
    return loop.time() - started


HEAD = b"POST /fetch_http_endpoint/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-thrift\r\n"


def _request(body: bytes = COUNT) -> bytes:
    return HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def test_slow_headers_and_idle_clients_are_cut_while_a_steady_client_is_not(comm_dir: str) -> None:
    with AioaccessProcess("http-server", comm_dir, "--header-timeout", "1", "--keepalive-timeout", "4") as server:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        idle_r, idle_w = await _open(server.port)  # never sends a byte
        slow_r, slow_w = await _open(server.port, HEAD[:20])  # a request head, one byte every 0.2 s
        served_r, served_w = await _open(server.port, _request())  # one request, then nothing
        steady_r, steady_w = await _open(server.port)

        async def trickle() -> None:
            for byte in HEAD[20:]:
                await asyncio.sleep(0.2)
                slow_w.write(bytes((byte,)))

        async def steady() -> int:
            n = 0
            while loop.time() - t0 < 6.5:
                steady_w.write(_request())
                status = await steady_r.readline()
                assert status.startswith(b"HTTP/1.1 200"), status
                while (await steady_r.readline()) != b"\r\n":
                    pass
                await steady_r.read(200)  # the small TJSON body
                n += 1
                await asyncio.sleep(0.4)
            return n

        trickling = asyncio.create_task(trickle())
        steady_calls = asyncio.create_task(steady())
        slow = await _closed_after(slow_r, t0, 8)
        trickling.cancel()
        idle = await _closed_after(idle_r, t0, 10)
        served = await _closed_after(served_r, t0, 10)
        assert await steady_calls >= 10  # ...and its connection was never cut
        await _close_all([idle_w, slow_w, served_w, steady_w])
    set_figure("http_cut_after_s", {"slow_header": round(slow, 1), "idle": round(idle, 1),
                                    "idle_after_a_request": round(served, 1)})
    assert 0.9 < slow < 3.5, slow  # the header timeout, well before the keep-alive timeout
    assert 3.8 < idle < 7.0, idle
    assert 3.8 < served < 7.0, served


async def test_good_client_is_served_while_eleven_hundred_half_sent_requests_are_held(comm_dir: str) -> None:
    """At --max-connections 1000, 1,100 connections stop halfway through their request heads; a good client
    connecting afterwards, 20 times over and staying, is served every time (the connection idle longest makes
    room), by a server started with a soft open-file limit of 1,024 (it raises its own)."""
    n, cap = 1100, 1000
    assert raise_nofile(2 * n + 200) >= n + 200, "RLIMIT_NOFILE too low for this test"
    with AioaccessProcess("http-server", comm_dir, "--max-connections", str(cap), "--header-timeout", "60",
                          nofile=(1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1])) as server:
        before = rss_kb(server.pid)
        held = [await _open(server.port, HEAD[:40]) for _ in range(n)]
        await asyncio.sleep(1.2)  # the held connections have been idle longer than MIN_IDLE
        peak = rss_kb(server.pid)
        statuses = []
        good = []  # kept open, so that each newcomer needs a slot of its own
        for _ in range(20):
            reader, writer = await _open(server.port, _request())
            good.append(writer)
            statuses.append(int((await reader.readline()).split()[1]))
        await asyncio.sleep(0.5)
        closed = sum(reader.at_eof() for reader, _ in held)  # by the server: the oldest made room
        await _close_all([writer for _, writer in held] + good)
    set_figure("http_half_sent_held", {"connections": n, "max_connections": cap,
                                       "good_requests_ok": statuses.count(200),
                                       "closed_by_server": closed, "rss_mb_before_peak": [before >> 10, peak >> 10]})
    assert statuses == [200] * 20
    assert closed >= 20


async def test_cap_answers_503_when_every_connection_is_busy(comm_dir: str) -> None:
    with AioaccessProcess("http-server", comm_dir, "--max-connections", "3") as server:
        # Three requests whose bodies are still on their way: busy, so none may be closed to make room.
        body = _request()
        busy = [await _open(server.port, body[:-5]) for _ in range(3)]
        await asyncio.sleep(1.2)
        reader, writer = await _open(server.port, _request())
        status = await reader.readline()
        headers = []
        while (line := await reader.readline()) != b"\r\n":
            headers.append(line.decode().strip().lower())
        text = (await reader.read()).decode()  # then the server closes
        assert status.startswith(b"HTTP/1.1 503"), status
        assert "connection: close" in headers
        assert text == "Server is at its limit of 3 connections; try again later\n"
        writer.close()
        # One busy request finishes: the next client is served.
        busy_r, busy_w = busy[0]
        busy_w.write(body[-5:])
        assert (await busy_r.readline()).startswith(b"HTTP/1.1 200")
        busy_w.close()
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as session:
            assert (await _post(session, f"http://127.0.0.1:{server.port}/fetch_http_endpoint/", COUNT, CT))[0] == 200
        await _close_all([w for _, w in busy[1:]])
