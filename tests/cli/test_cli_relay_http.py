"""``aioaccess relay-server`` and ``aioaccess http-server`` as subprocesses, driven by concrete-python's clients."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from _procs import aioaccess_server, server_process
from concrete.access.ttypes import FetchRequest
from concrete.services.ttypes import ServicesException
from concrete.util import create_comm, write_communication_to_buffer
from concrete.util.access_wrapper import (
    FetchCommunicationClientWrapper,
    HTTPFetchCommunicationClientWrapper,
    HTTPStoreCommunicationClientWrapper,
)
from conftest import unused_port

pytestmark = pytest.mark.interop

CONCRETE_FETCH_SERVER = os.path.join(os.path.dirname(sys.executable), "fetch-server.py")


def concrete_fetch_server(tmp_path: Any, source: str) -> Any:
    port = unused_port()
    argv = [sys.executable, CONCRETE_FETCH_SERVER, "--host", "127.0.0.1", "-p", str(port), "-l", "warning", source]
    return server_process(tmp_path, argv, port, clean_exit=False)  # its threaded server dies on SIGTERM


def _stored(path: str, comm_id: str) -> bytes:
    with open(os.path.join(path, f"{comm_id}.comm"), "rb") as f:
        return f.read()


def _fetch_through(port: int, ids: list[str]) -> tuple[list[bytes], int, list[str]]:
    with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
        comms = client.fetch(FetchRequest(communicationIds=ids)).communications
        return [write_communication_to_buffer(c) for c in comms], client.getCommunicationCount(), \
            client.getCommunicationIDs(0, 100)


@pytest.mark.parametrize("upstream", ["concrete-python", "aioaccess"])
def test_relay_server_in_front_of_a_fetch_server(tmp_path: Any, comm_dir: str, cp_comms: list[Any],
                                                 upstream: str) -> None:
    ids = [c.id for c in cp_comms]
    serve = concrete_fetch_server(tmp_path, comm_dir) if upstream == "concrete-python" else \
        aioaccess_server(tmp_path, "fetch-server", comm_dir)
    with serve as upstream_port, aioaccess_server(tmp_path, "relay-server", "127.0.0.1", str(upstream_port),
                                           "--upstream-connections", "4") as relay_port:
        raws, count, listed = _fetch_through(relay_port, [*ids[::-1], "no-such-id"])
        direct = _fetch_through(upstream_port, [*ids[::-1], "no-such-id"])
    assert raws == [_stored(comm_dir, i) for i in ids[::-1]]
    assert (raws, count, listed) == direct
    assert count == len(ids)


def test_relay_server_reports_and_survives_a_missing_upstream(tmp_path: Any, comm_dir: str,
                                                              cp_comms: list[Any]) -> None:
    upstream_port = unused_port()
    with aioaccess_server(tmp_path, "relay-server", "127.0.0.1", str(upstream_port), "--upstream-timeout", "5") as port:
        with FetchCommunicationClientWrapper("127.0.0.1", port) as client, \
                pytest.raises(ServicesException, match=f"127.0.0.1:{upstream_port} unavailable"):
            client.fetch(FetchRequest(communicationIds=["x"]))
        argv = [sys.executable, "-m", "aioaccess", "fetch-server", comm_dir, "--port", str(upstream_port)]
        with server_process(tmp_path, argv, upstream_port):
            raws, count, _ = _fetch_through(port, [cp_comms[0].id])
    assert raws == [_stored(comm_dir, cp_comms[0].id)]
    assert count == len(cp_comms)


@pytest.mark.parametrize("via_relay", [False, True], ids=["directory", "fetch-url"])
def test_http_server(tmp_path: Any, comm_dir: str, cp_comms: list[Any], store_dir: str, via_relay: bool) -> None:
    ids = [c.id for c in cp_comms]
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("hello")
    upstream = aioaccess_server(tmp_path, "fetch-server", comm_dir)
    with upstream as upstream_port:
        source = f"fetch://127.0.0.1:{upstream_port}" if via_relay else comm_dir
        with aioaccess_server(tmp_path, "http-server", source, "--store-path", store_dir, "--static-path",
                       os.fspath(static), "--cors") as port:
            url = f"http://127.0.0.1:{port}"
            with HTTPFetchCommunicationClientWrapper(url + "/fetch_http_endpoint/") as client:
                comms = client.fetch(FetchRequest(communicationIds=ids)).communications
                count = client.getCommunicationCount()
            new = create_comm("new-comm", "stored über HTTP")
            with HTTPStoreCommunicationClientWrapper(url + "/store_http_endpoint/") as store:
                store.store(new)
            import urllib.request

            with urllib.request.urlopen(url + "/index.html") as resp:
                assert resp.read() == b"hello"
                assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert [write_communication_to_buffer(c) for c in comms] == [_stored(comm_dir, i) for i in ids]
    assert count == len(ids)
    assert _stored(store_dir, "new-comm") == write_communication_to_buffer(new)


def test_http_server_bad_flags_fail_in_one_line(tmp_path: Any, comm_dir: str) -> None:
    for argv, words in ((["http-server", os.fspath(tmp_path / "missing")], "does not exist"),
                        (["http-server", comm_dir, "--static-path", os.fspath(tmp_path / "nope")], "static path"),
                        (["http-server", "fetch://nohostport"], "fetch://HOST:PORT"),
                        (["relay-server", "127.0.0.1", "1", "--upstream-connections", "0"], "upstream-connections")):
        proc = subprocess.run([sys.executable, "-m", "aioaccess", *argv, "-l", "WARNING", "--port", str(unused_port())],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert words in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
