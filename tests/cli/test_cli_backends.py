"""``aioaccess store-server`` / ``fetch-server`` end to end, per backend, driven by concrete-python's clients."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from _procs import aioaccess_server
from concrete.access.ttypes import FetchRequest
from concrete.util import write_communication_to_buffer
from concrete.util.access_wrapper import FetchCommunicationClientWrapper, StoreCommunicationClientWrapper
from conftest import concrete_comms, unused_port

pytestmark = pytest.mark.interop

N = 15


@pytest.fixture(params=["directory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("s3", marks=pytest.mark.s3), pytest.param("s3-aiobotocore", marks=pytest.mark.s3),
                        pytest.param("s3-rclone", marks=pytest.mark.s3)])
def backend_spec(request: pytest.FixtureRequest, tmp_path: Any) -> list[str]:
    """SOURCE/TARGET plus options for one backend, empty and ready."""
    if request.param == "directory":
        path = tmp_path / "store"
        path.mkdir()
        return [os.fspath(path)]
    if request.param == "redis":
        return [request.getfixturevalue("redis_server"), "--redis-key", f"cli-{uuid.uuid4().hex}"]
    import boto3

    endpoint = request.getfixturevalue("rclone_server" if request.param == "s3-rclone" else "s3_server")
    bucket = f"cli-{uuid.uuid4().hex}"
    s3 = boto3.client("s3", endpoint_url=endpoint)
    try:
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="beside-the-corpus", Body=b"not under the prefix")
    finally:
        s3.close()
    client = ["--s3-client", "aiobotocore"] if request.param == "s3-aiobotocore" else []
    return [f"s3://{bucket}/corpus/v1/", "--endpoint-url", endpoint, "--prefix-len", "2", *client]


def test_store_then_fetch_through_the_cli(tmp_path: Any, backend_spec: list[str]) -> None:
    comms = concrete_comms(N, prefix=f"cli-{uuid.uuid4().hex[:6]}")
    expected = {c.id: write_communication_to_buffer(c) for c in comms}
    with aioaccess_server(tmp_path, "store-server", *backend_spec) as port:
        with StoreCommunicationClientWrapper("127.0.0.1", port) as client:
            for comm in comms:
                client.store(comm)
    with aioaccess_server(tmp_path, "fetch-server", *backend_spec) as port:
        with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
            ids = list(expected)
            result = client.fetch(FetchRequest(communicationIds=[*reversed(ids), "absent"]))
            assert [write_communication_to_buffer(c) for c in result.communications] == \
                [expected[i] for i in reversed(ids)]
            assert client.getCommunicationCount() == N
            listed = client.getCommunicationIDs(0, N + 5)
            assert sorted(listed) == sorted(ids)
            assert client.getCommunicationIDs(3, 4) == listed[3:7]


def _run_cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aioaccess", *argv, "--port", str(unused_port())],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0]


def test_missing_source(tmp_path: Any) -> None:
    missing = os.fspath(tmp_path / "nope")
    _assert_one_line_error(_run_cli("fetch-server", missing), missing, "does not exist")


@pytest.mark.redis
def test_unreachable_redis() -> None:
    url = f"redis://127.0.0.1:{unused_port()}/0"
    _assert_one_line_error(_run_cli("fetch-server", url, "--redis-key", "k"), "Redis", url)
    _assert_one_line_error(_run_cli("store-server", url, "--redis-key", "k"), "Redis", url)


def test_redis_key_is_required() -> None:
    _assert_one_line_error(_run_cli("store-server", "redis://127.0.0.1:6379/0"), "--redis-key")


@pytest.mark.s3
def test_missing_bucket(s3_server: str) -> None:
    _assert_one_line_error(_run_cli("fetch-server", "s3://no-such-bucket", "--endpoint-url", s3_server),
                           "no-such-bucket", "does not exist")
    _assert_one_line_error(_run_cli("store-server", "s3://no-such-bucket", "--endpoint-url", s3_server),
                           "no-such-bucket", "does not exist")


@pytest.mark.s3
def test_unreachable_s3_endpoint(s3_server: str) -> None:
    endpoint = f"http://127.0.0.1:{unused_port()}"
    _assert_one_line_error(_run_cli("fetch-server", "s3://bucket", "--endpoint-url", endpoint,
                                    "--backend-timeout", "2"), endpoint)


def test_unreachable_fetch_upstream() -> None:
    _assert_one_line_error(_run_cli("fetch-server", f"fetch://127.0.0.1:{unused_port()}"), "fetch service")


def test_fetch_source_relays_another_aioaccess_server(tmp_path: Any, comm_dir: str, cp_comms: list[Any]) -> None:
    with aioaccess_server(tmp_path, "fetch-server", comm_dir) as upstream:
        with aioaccess_server(tmp_path, "fetch-server", f"fetch://127.0.0.1:{upstream}") as port:
            with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
                result = client.fetch(FetchRequest(communicationIds=[cp_comms[2].id, cp_comms[7].id]))
                assert [write_communication_to_buffer(c) for c in result.communications] == \
                    [write_communication_to_buffer(cp_comms[2]), write_communication_to_buffer(cp_comms[7])]
                assert client.getCommunicationCount() == len(cp_comms)


@pytest.mark.parametrize("kind", ["tgz", "zip-without-extension"])
def test_file_sources_are_detected_by_content(tmp_path: Any, kind: str) -> None:
    from concrete.util.file_io import CommunicationWriterTGZ, CommunicationWriterZip

    comms = concrete_comms(4, prefix=f"file-{kind}")
    path = os.fspath(tmp_path / ("comms.tgz" if kind == "tgz" else "comms.data"))
    writer = CommunicationWriterTGZ(path) if kind == "tgz" else CommunicationWriterZip(path)
    with writer:
        for comm in comms:
            writer.write(comm, f"{comm.id}.comm")
    with aioaccess_server(tmp_path, "fetch-server", path) as port:
        with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
            assert client.getCommunicationIDs(0, 10) == [c.id for c in comms]
            result = client.fetch(FetchRequest(communicationIds=[comms[1].id]))
            assert write_communication_to_buffer(result.communications[0]) == write_communication_to_buffer(comms[1])


def test_a_file_over_max_file_size_is_refused_in_one_line(tmp_path: Any) -> None:
    path = tmp_path / "big.comm"
    path.write_bytes(write_communication_to_buffer(concrete_comms(1)[0]))
    size = path.stat().st_size
    _assert_one_line_error(_run_cli("fetch-server", os.fspath(path), "--max-file-size", "100"),
                           f"{size} bytes", "100 bytes")


def test_a_corrupt_file_is_refused_in_one_line(tmp_path: Any) -> None:
    path = tmp_path / "cut.comm"
    path.write_bytes(write_communication_to_buffer(concrete_comms(1)[0])[:-7])
    _assert_one_line_error(_run_cli("fetch-server", os.fspath(path)), "cut.comm", "corrupt")


@pytest.mark.s3
def test_s3_client_and_location_errors(s3_server: str, tmp_path: Any) -> None:
    proc = _run_cli("fetch-server", "s3://bucket", "--endpoint-url", s3_server, "--s3-client", "fast")
    assert proc.returncode == 2 and "invalid choice: 'fast'" in proc.stderr and "Traceback" not in proc.stderr
    _assert_one_line_error(_run_cli("store-server", "s3://bucket/a//b/", "--endpoint-url", s3_server),
                           "bad key prefix")
    config = tmp_path / "serve.toml"
    config.write_text(f'[[services]]\nkind = "fetch"\nport = 0\nsource = "s3://bucket/corpus/"\n'
                      f'endpoint_url = "{s3_server}"\ns3_client = "fast"\n')
    proc = subprocess.run([sys.executable, "-m", "aioaccess", "serve", str(config), "--check"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    _assert_one_line_error(proc, "unknown S3 client 'fast'")
