"""``aioaccess bench fetch|store`` against real servers, the load driver and analysis.

Reports are checked for their fields and their accounting (every issued op
ends as ok or as an error), never for speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

import pytest

from aioaccess.cli.main import main

ROW_FIELDS = {"op", "phase", "concurrency", "issued", "ok", "error_count", "errors", "seconds", "ops_per_s",
              "bytes", "mb_per_s", "latency_ms", "cpu_s", "cpu_s_per_1000_ops"}


def _check_rows(report: dict[str, Any]) -> None:
    for row in report["results"]:
        assert ROW_FIELDS <= set(row), row
        assert row["ok"] + row["error_count"] == row["issued"], row
        assert sum(row["errors"].values()) == row["error_count"]
        assert set(row["latency_ms"]) == {"p50", "p90", "p99", "max", "mean"}
        if row["ok"]:
            lat = row["latency_ms"]
            assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]


async def test_bench_fetch_through_latency_proxy(fetch_server: Any, tmp_path: Any) -> None:
    out = tmp_path / "r.json"
    argv = ["bench", "fetch", f"127.0.0.1:{fetch_server.bound_port}", "-c", "1,3", "-n", "15", "--batch", "2",
            "--latency-ms", "2", "--loop", "asyncio", "--json", str(out), "--server-pid", str(os.getpid())]
    assert await asyncio.to_thread(main, argv) == 0
    report = json.loads(out.read_text())
    _check_rows(report)
    assert report["ids"] == 10
    assert [(r["op"], r["concurrency"], r["issued"], r["ok"]) for r in report["results"]] == [
        ("fetch", 1, 15, 15), ("fetch", 3, 15, 15)]
    assert all(r["bytes"] > 15 * 2 * 100 for r in report["results"])
    assert all("server_cpu_s_per_1000_ops" in r for r in report["results"])


async def test_bench_store_writes_every_payload(store_server: Any, store_dir: str, tmp_path: Any) -> None:
    out = tmp_path / "r.json"
    argv = ["bench", "store", f"127.0.0.1:{store_server.bound_port}", "-c", "4", "-n", "10", "--payloads", "5",
            "--size", "3000", "--loop", "asyncio", "--json", str(out)]
    assert await asyncio.to_thread(main, argv) == 0
    report = json.loads(out.read_text())
    _check_rows(report)
    [row] = report["results"]
    assert (row["issued"], row["ok"]) == (10, 10)
    assert sorted(os.listdir(store_dir)) == [f"bench-{i:06d}.comm" for i in range(5)]


async def test_bench_store_payloads_from_a_corpus_source(store_server: Any, store_dir: str, comm_dir: str,
                                                         cp_comms: list[Any]) -> None:
    """--corpus takes any fetch-server SOURCE; its Communications are stored byte for byte."""
    argv = ["bench", "store", f"127.0.0.1:{store_server.bound_port}", "-c", "2", "-n", "10", "--corpus", comm_dir,
            "--loop", "asyncio", "--no-progress"]
    assert await asyncio.to_thread(main, argv) == 0
    assert sorted(os.listdir(store_dir)) == sorted(f"{c.id}.comm" for c in cp_comms)
    for comm in cp_comms:
        with open(os.path.join(comm_dir, f"{comm.id}.comm"), "rb") as a, \
                open(os.path.join(store_dir, f"{comm.id}.comm"), "rb") as b:
            assert a.read() == b.read()


async def test_bench_fetch_counts_errors_from_a_store_server(store_server: Any, tmp_path: Any) -> None:
    """fetch calls to a store server fail, and each one is counted by kind."""
    ids = tmp_path / "ids.txt"
    ids.write_text("a\nb\n")
    out = tmp_path / "r.json"
    argv = ["bench", "fetch", f"127.0.0.1:{store_server.bound_port}", "-c", "2", "-n", "6",
            "--ids-from", str(ids), "--loop", "asyncio", "--json", str(out)]
    assert await asyncio.to_thread(main, argv) == 1  # every op failed
    [row] = json.loads(out.read_text())["results"]
    assert (row["issued"], row["ok"], row["error_count"]) == (6, 0, 6)
    assert row["errors"] == {"TApplicationException": 6}


async def test_run_phase_accounts_for_every_op() -> None:
    from aioaccess.bench import percentile, run_phase, summarize

    async def flaky(index: int) -> int:
        await asyncio.sleep(0)
        if index % 3 == 0:
            raise KeyError(index)
        return 10

    records = await run_phase({"a": flaky, "b": flaky}, 4, count=60, weights={"a": 1, "b": 3}, seed=1)
    rows = {r["op"]: r for r in summarize(records, "mix", 4)}
    assert sum(r["issued"] for r in rows.values()) == 60 == len(records)
    assert len(records.workers) == 4 and len(records.cpu) == 1
    for r in rows.values():
        assert r["ok"] + r["error_count"] == r["issued"]
        assert r["errors"] == {"KeyError": (r["issued"] + 2) // 3}
        assert r["bytes"] == 10 * r["ok"]
        assert sum(p["ops"] for p in r["series"]) == r["ok"] and sum(p["errors"] for p in r["series"]) == \
            r["error_count"]
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0 and percentile([1.0, 2.0], 99) == 2.0
    assert percentile([], 50) == 0.0


async def test_run_phase_out_of_work_stops_the_worker_uncounted() -> None:
    from aioaccess.bench import run_phase
    from aioaccess.bench.stats import OutOfWork

    left = list(range(7))

    async def take(index: int) -> int:
        await asyncio.sleep(0)
        if not left:
            raise OutOfWork
        left.pop()
        return 1

    records = await run_phase({"take": take}, 3, count=100)
    assert len(records) == 7 and not records.errors


async def test_run_phase_for_a_duration_ends_by_itself() -> None:
    """No count: the phase stops claiming ops once the duration is over, and every worker is recorded."""
    from aioaccess.bench import run_phase

    async def op(index: int) -> int:
        await asyncio.sleep(0.001)
        return 1

    records = await run_phase({"op": op}, 3, duration=0.2)
    assert len(records) > 0 and len(records.workers) == 3 and not records.errors
    assert sorted(records.moved) == [1] * len(records)


async def test_open_loop_keeps_the_schedule_and_times_from_it() -> None:
    """--rate: op i is scheduled at start + i/rate whatever the server does; waiting for a slot is latency."""
    from aioaccess.bench import run_phase

    in_flight = peak = 0

    async def slow(index: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)  # 2 slots x 20 ms: 100 ops/s at most, 200 scheduled
        in_flight -= 1
        return 0

    records = await run_phase({"slow": slow}, 2, count=20, rate=200.0)
    assert len(records) == 20 and peak == 2 and records.rate == 200.0
    order = sorted(range(20), key=lambda i: records.scheduled[i])
    gaps = [records.scheduled[b] - records.scheduled[a] for a, b in zip(order, order[1:], strict=False)]
    assert gaps == pytest.approx([1 / 200.0] * 19)
    for i in range(20):
        assert records.started[i] >= records.scheduled[i] - 1e-9
        assert records.ended[i] - records.scheduled[i] >= records.ended[i] - records.started[i]
    last = order[-1]  # scheduled at +95 ms, but no slot is free before +180 ms
    assert records.ended[last] - records.scheduled[last] >= 0.09


def test_window_leaves_out_ramp_up_and_down() -> None:
    """Only the time every worker ran counts; merged records of two processes share one window."""
    from aioaccess.bench import Records, summarize
    from aioaccess.bench.analyze import window

    def part(worker: tuple[float, float], ops: list[tuple[float, float]]) -> Records:
        rec = Records(["get"])
        for start, end in ops:
            rec.add(0, start, start, 0.0, end, 100, None)
        rec.workers.append(worker)
        rec.cpu.append([(0.0, 0.0, 0.0), (10.0, 5.0, 4.0)])  # half a core, 0.4 of it on the loop's thread
        return rec

    a = part((0.0, 10.0), [(0.0, 1.0), (1.0, 3.0), (3.0, 5.0), (5.0, 9.0), (9.0, 10.0)])
    b = part((2.0, 8.0), [(2.0, 4.0), (4.0, 6.0), (6.0, 8.0)])
    merged = Records.merge([a, b])
    assert merged.procs == 2 and len(merged) == 8 and len(merged.cpu) == 2
    assert window(merged) == (2.0, 8.0, True)
    [row] = summarize(merged, "get", 2)
    assert (row["issued"], row["ok"], row["bytes"]) == (8, 8, 800)
    assert row["window"] == {"seconds": 6.0, "ops": 4, "all_workers": True, "start_s": 2.0, "end_s": 8.0}
    assert row["ops_per_s"] == pytest.approx(4 / 6.0)  # (3,5) (2,4) (4,6) (6,8)
    assert row["cpu_s"] == pytest.approx(2 * 0.5 * 6.0) and row["client_cpu_cores"] == pytest.approx(0.5)
    assert row["loop_cpu_cores"] == pytest.approx(0.4) and not row["client_bound"]
    assert [p["ops"] for p in row["series"]] == [0, 1, 0, 1, 1, 1, 1, 0, 1, 2]  # by end time; 10.0 in the last
    assert sum(p["ops"] for p in row["series"]) == 8


def test_size_ranges_and_synthetic_sizes() -> None:
    from aioaccess.bench.payloads import parse_size, synthetic

    assert parse_size("6000") == (6000, 6000) and parse_size("6KB") == (6000, 6000)
    assert parse_size("4KiB-64KiB") == (4096, 65536) and parse_size("1.5MiB") == (1572864, 1572864)
    for bad in ("", "x", "4KiB-1KiB", "0", "5QB"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
    sizes = [len(raw) for _, raw in synthetic(12, (2000, 40000), seed=3)]
    assert max(sizes) > 3 * min(sizes)
    assert [len(raw) for _, raw in synthetic(3, (3000, 40000), seed=3)] == sizes[:3]  # deterministic


async def test_latency_proxy_relays_both_ways_and_half_close() -> None:
    from aioaccess.bench.proxy import latency_proxy

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's EOF
        writer.write(data[::-1])
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    payload = os.urandom(1 << 20)
    async with server, latency_proxy("127.0.0.1", port, 0.002) as proxy:
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        writer.write(payload)
        writer.write_eof()
        assert await reader.read() == payload[::-1]
        writer.close()


async def test_make_s3_client_puts_without_expect_continue(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiobotocore adds ``Expect: 100-continue`` to every PutObject (an extra round trip); make_s3_client drops it."""
    from aioaccess.backends.s3 import make_s3_client

    heads: list[bytes] = []

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            heads.append(head.lower())
            if b"expect: 100-continue" in head.lower():
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                           if line.startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nETag: "x"\r\n\r\n')
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    async with server, make_s3_client(f"http://127.0.0.1:{port}", region_name="us-east-1",
                                         client="aiobotocore") as client:
        await client.put_object(Bucket="b", Key="k", Body=b"x" * 5000)
    [head] = heads
    assert head.startswith(b"put /b/k ") and b"expect:" not in head
