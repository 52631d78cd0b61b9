"""``aioaccess bench`` against real servers: moto's S3, aioaccess fetch/store servers.

Reports are checked for their fields and their accounting (every issued op
ends as ok or as an error), never for speed.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

import pytest

from aioaccess.cli.main import main

ROW_FIELDS = {"op", "phase", "concurrency", "issued", "ok", "error_count", "errors", "seconds", "ops_per_s",
              "bytes", "mb_per_s", "latency_ms", "cpu_s", "cpu_s_per_1000_ops"}


def _bucket(endpoint: str) -> tuple[Any, str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    name = f"bench-{uuid.uuid4().hex}"
    client.create_bucket(Bucket=name)
    return client, name


def _keys(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", ())]


def _check_rows(report: dict[str, Any]) -> None:
    for row in report["results"]:
        assert ROW_FIELDS <= set(row), row
        assert row["ok"] + row["error_count"] == row["issued"], row
        assert sum(row["errors"].values()) == row["error_count"]
        assert set(row["latency_ms"]) == {"p50", "p90", "p99", "max", "mean"}
        if row["ok"]:
            lat = row["latency_ms"]
            assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]


@pytest.mark.s3
def test_bench_s3_counts_report_and_cleanup(s3_server: str, tmp_path: Any) -> None:
    client, bucket = _bucket(s3_server)
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    status = main(["bench", "s3", f"s3://{bucket}", "--endpoint-url", s3_server, "--ops", "put,get,list",
                   "-c", "1,4", "-n", "12", "--payloads", "3", "--size", "3000", "--loop", "asyncio",
                   "--list-max-keys", "5", "--json", str(out), "--plot", str(plot)])
    assert status == 0
    report = json.loads(out.read_text())
    assert report["kind"] == "s3" and report["target"] == f"s3://{bucket}"
    assert {(r["op"], r["concurrency"]) for r in report["results"]} == {
        (op, c) for op in ("put", "get", "list") for c in (1, 4)}
    _check_rows(report)
    for row in report["results"]:
        assert row["issued"] == 12
        assert row["ok"] == 12, row["errors"]
        if row["op"] in ("put", "get"):
            assert row["bytes"] > 12 * 1000
    assert report["payloads"]["count"] == 3
    # 3 seed objects for the GETs, then 12 PUTs per level; all deleted again
    assert report["cleanup"] == {"written": 3 + 2 * 12, "deleted": 3 + 2 * 12, "failed": 0}
    assert _keys(client, bucket) == []
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.s3
def test_bench_s3_mix_duration_keep_obstore_client(s3_server: str, tmp_path: Any) -> None:
    client, bucket = _bucket(s3_server)
    out = tmp_path / "r.json"
    status = main(["bench", "s3", f"s3://{bucket}", "--endpoint-url", s3_server, "--ops", "put=1,get=2", "--mix",
                   "-c", "2", "--duration", "0.4", "--payloads", "2", "--size", "3000", "--keep", "--client", "obstore",
                   "--prefix-len", "0", "--loop", "asyncio", "--json", str(out)])
    assert status == 0
    report = json.loads(out.read_text())
    _check_rows(report)
    rows = {r["op"]: r for r in report["results"]}
    assert set(rows) == {"put", "get"} and {r["phase"] for r in rows.values()} == {"mix"}
    assert rows["put"]["issued"] > 0 and rows["get"]["issued"] > 0
    keys = _keys(client, bucket)
    assert report["cleanup"] == {"written": len(keys), "kept": True}
    assert all(k.startswith("aioaccess-bench-") for k in keys)  # --prefix-len 0: no hash prefix


def test_bench_s3_usage_errors(tmp_path: Any, capsys: Any) -> None:
    assert main(["bench", "s3", "s3://b/extra", "-n", "1"]) == 2
    assert main(["bench", "s3", "s3://b", "--ops", "put,delete", "-n", "1"]) == 2
    assert main(["bench", "s3", "s3://b", "--latency-ms", "5", "-n", "1"]) == 2
    err = capsys.readouterr().err
    assert "expected s3://BUCKET" in err and "unknown op 'delete'" in err and "--latency-ms needs" in err


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
    from aioaccess.bench.stats import percentile, run_phase

    async def flaky(index: int) -> int:
        await asyncio.sleep(0)
        if index % 3 == 0:
            raise KeyError(index)
        return 10

    result = await run_phase({"a": flaky, "b": flaky}, 4, count=60, weights={"a": 1, "b": 3}, seed=1)
    rows = {r["op"]: r for r in result.rows()}
    assert sum(r["issued"] for r in rows.values()) == 60
    for r in rows.values():
        assert r["ok"] + r["error_count"] == r["issued"]
        assert r["errors"] == {"KeyError": (r["issued"] + 2) // 3}
        assert r["bytes"] == 10 * r["ok"]
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0 and percentile([1.0, 2.0], 99) == 2.0
    assert percentile([], 50) == 0.0


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
