"""TLS on servers, clients, relays and the HTTP endpoint, with certificates made by ``trustme`` at test time.

Fetches over TLS are byte-identical to plaintext ones (and still answered by the fast path); under mutual
TLS only a client with a certificate signed by ``--tls-client-ca`` can store; a relay reaches a TLS
upstream; the HTTP/TJSON endpoint serves HTTPS.  Plaintext stays the default.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest
import trustme
import uvloop
from _procs import ManagedProcess, aioaccess_server, server_process, unused_port
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    FetchCommunicationClient,
    FetchCommunicationClientWrapper,
    FetchCommunicationServiceWrapper,
    StoreCommunicationClient,
    ZipFileBackedCommunicationContainer,
)
from aioaccess.server import ServerConfig, protocol
from aioaccess.tls import TLSConfigError, client_context, server_context


class Certs:
    """PEM files: a CA, a server certificate for 127.0.0.1, a client certificate from the CA and one from a
    CA the server does not know."""

    def __init__(self, root: str) -> None:
        ca, stranger = trustme.CA(), trustme.CA()
        self.ca = os.path.join(root, "ca.pem")
        self.server = os.path.join(root, "server.pem")
        self.client = os.path.join(root, "client.pem")
        self.stranger = os.path.join(root, "stranger.pem")
        ca.cert_pem.write_to_path(self.ca)
        ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(self.server)
        ca.issue_cert("storer@example.org").private_key_and_cert_chain_pem.write_to_path(self.client)
        stranger.issue_cert("intruder@example.org").private_key_and_cert_chain_pem.write_to_path(self.stranger)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(os.fspath(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def comms_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, bytes]]]:
    root = tmp_path_factory.mktemp("tls-comms")
    raws = {c.id: bytes(cp_write(c)) for c in concrete_comms(6, prefix="tls")}
    for comm_id, raw in raws.items():
        (root / f"{comm_id}.comm").write_bytes(raw)
    yield os.fspath(root), raws


def _cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return _clis(argv, timeout=timeout)[0]


def _clis(*argvs: tuple[str, ...] | list[str], timeout: float = 60) -> list[subprocess.CompletedProcess[bytes]]:
    """Run several ``python -m aioaccess ARGV`` at once (a process start is seconds on a loaded machine)."""
    with ThreadPoolExecutor(len(argvs)) as pool:
        return list(pool.map(lambda argv: subprocess.run([sys.executable, "-m", "aioaccess", *argv],
                                                         capture_output=True, timeout=timeout,
                                                         stdin=subprocess.DEVNULL), argvs))


@contextmanager
def _servers(tmp_path: Any, *servers: tuple[int, tuple[str, ...]]) -> Iterator[None]:
    """Start ``python -m aioaccess ARGV --port PORT`` for each (PORT, ARGV) at once."""
    procs = [ManagedProcess([sys.executable, "-m", "aioaccess", *argv, "--port", str(port)], port,
                            os.fspath(tmp_path / f"server-{port}.log")) for port, argv in servers]
    try:
        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(ManagedProcess.start, procs))
        yield
    finally:
        for proc in procs:
            proc.stop()


# -- in-process: byte-identical, and the fast path still answers ----------------------
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_fetch_over_tls_is_byte_identical_and_takes_the_fast_path(
        certs: Certs, comms_dir: tuple[str, dict[str, bytes]], loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    root, raws = comms_dir
    archive = os.path.join(os.path.dirname(root), "tls-comms.zip")  # a zip: its table needs no inotify
    with zipfile.ZipFile(archive, "w") as zf:
        for comm_id, raw in raws.items():
            zf.writestr(f"{comm_id}.comm", raw)
    answered = []

    def counting(*args: Any) -> Any:
        reply = fast(*args)
        answered.append(reply is not None)
        return reply

    fast = protocol.fetch_reply_now
    monkeypatch.setattr(protocol, "fetch_reply_now", counting)
    ids = sorted(raws)

    async def main() -> None:
        handler = CommunicationContainerFetchHandler(ZipFileBackedCommunicationContainer(archive))
        plain = FetchCommunicationServiceWrapper(handler)
        tls = FetchCommunicationServiceWrapper(handler, ssl=server_context(certs.server))
        async with plain.serving() as plain_ls, tls.serving() as tls_ls:
            async with FetchCommunicationClient.connect("127.0.0.1", plain_ls.bound_port) as client:
                over_plain = [await client.fetch_raw([i]) for i in ids] + [await client.fetch_raw(ids)]
            async with FetchCommunicationClientWrapper("127.0.0.1", tls_ls.bound_port,
                                                       ssl=client_context(certs.ca)) as client:
                over_tls = [await client.fetch_raw([i]) for i in ids] + [await client.fetch_raw(ids)]
                answered.clear()
                for i in ids:  # each is answered inside data_received
                    assert await client.fetch_raw([i]) == [raws[i]]
            assert over_tls == over_plain == [[raws[i]] for i in ids] + [[raws[i] for i in ids]]
            assert answered == [True] * len(ids)
            with pytest.raises(ConnectionError, match="if it serves TLS, connect over TLS"):
                async with FetchCommunicationClient.connect("127.0.0.1", tls_ls.bound_port, timeout=10) as client:
                    await client.fetch_raw(ids[:1])

    (uvloop.run if loop == "uvloop" else asyncio.run)(main())


def test_bad_tls_files_are_clear_errors(certs: Certs, tmp_path: Any) -> None:
    with pytest.raises(TLSConfigError, match="no such file"):
        server_context(os.fspath(tmp_path / "missing.pem"))
    with pytest.raises(TLSConfigError, match="cannot be used"):
        server_context(certs.ca)  # a certificate without its key
    with pytest.raises(TLSConfigError, match="needs its certificate"):
        client_context(certs.ca, key=certs.client)
    done = _cli("fetch-server", "sample", "--tls-key", certs.server)
    assert done.returncode == 2 and b"--tls-key need --tls-cert" in done.stderr, done.stderr


# -- mutual TLS: who may store ---------------------------------------------------------
def test_under_mutual_tls_only_a_client_with_a_trusted_certificate_can_store(certs: Certs, tmp_path: Any) -> None:
    store = tmp_path / "store"
    store.mkdir()
    comms = {c.id: bytes(cp_write(c)) for c in concrete_comms(3, prefix="mtls")}

    async def store_as(port: int, comm_id: str, **tls: Any) -> None:
        async with StoreCommunicationClient.connect("127.0.0.1", port, timeout=10, **tls) as client:
            await client.store_raw(comms[comm_id])

    with aioaccess_server(tmp_path, "store-server", os.fspath(store), "--no-fsync", "--tls-cert", certs.server,
                          "--tls-client-ca", certs.ca) as port:
        for comm_id, tls in (("mtls-0", {"ssl": client_context(certs.ca)}),  # no client certificate
                             ("mtls-1", {"ssl": client_context(certs.ca, certs.stranger)}),  # not signed by the CA
                             ("mtls-2", {})):  # plaintext
            with pytest.raises(ConnectionError, match="closed the connection before answering"):
                asyncio.run(store_as(port, comm_id, **tls))
        assert os.listdir(store) == []
        asyncio.run(store_as(port, "mtls-0", ssl=client_context(certs.ca, certs.client)))
        assert (store / "mtls-0.comm").read_bytes() == comms["mtls-0"]
        # the CLI: store-client with and without a client certificate, wait-service
        (tmp_path / "in").mkdir()
        (tmp_path / "in" / "mtls-1.comm").write_bytes(comms["mtls-1"])
        store_client = ("store-client", os.fspath(tmp_path / "in"), "-p", str(port), "--host", "127.0.0.1",
                        "--no-progress", "--tls-ca", certs.ca)
        refused, stored, up = _clis(
            store_client, (*store_client, "--tls-cert", certs.client),
            ("wait-service", "StoreCommunication", "--host", "127.0.0.1", "-p", str(port), "--timeout", "20",
             "--sleep-interval", "0.2", "--tls-ca", certs.ca, "--tls-cert", certs.client))
        assert refused.returncode == 2 and b"client certificate" in refused.stderr, refused.stderr
        assert stored.returncode == 0 and b"stored 1, failed 0" in stored.stdout + stored.stderr, stored
        assert (store / "mtls-1.comm").read_bytes() == comms["mtls-1"]
        assert up.returncode == 0, up.stderr
    assert sorted(os.listdir(store)) == ["mtls-0.comm", "mtls-1.comm"]


# -- a relay, a fetch:// source and the HTTP endpoint over TLS ------------------------------
def _tgz_members(path: str) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {os.path.splitext(m.name)[0]: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_relay_fetch_source_and_http_endpoint_over_tls(certs: Certs, comms_dir: tuple[str, dict[str, bytes]],
                                                       tmp_path: Any) -> None:
    root, raws = comms_dir
    ids = sorted(raws)
    server_tls = ("--tls-cert", certs.server, "--tls-client-ca", certs.ca)
    upstream_tls = ("--upstream-tls-ca", certs.ca, "--upstream-tls-cert", certs.client)
    upstream, relay, https = (unused_port() for _ in range(3))
    store = tmp_path / "http-store"
    store.mkdir()
    with _servers(tmp_path, (upstream, ("fetch-server", root, *server_tls)),
                  (relay, ("relay-server", "127.0.0.1", str(upstream), *upstream_tls, *server_tls)),
                  (https, ("http-server", f"fetch://127.0.0.1:{upstream}", *upstream_tls,  # a fetch:// source
                           "--store-path", os.fspath(store), *server_tls))):
        uri = f"https://127.0.0.1:{https}/fetch_http_endpoint/"
        via_relay, via_https = tmp_path / "via-relay.tgz", tmp_path / "via-https.tgz"
        for done in _clis(("fetch-client", "-p", str(relay), *ids, "--tls-ca", certs.ca, "--tls-cert", certs.client,
                           "--save-as-tgz", os.fspath(via_relay)),
                          ("fetch-client", "--uri", uri, *ids, "--tls-ca", certs.ca, "--tls-cert", certs.client,
                           "--save-as-tgz", os.fspath(via_https))):
            assert done.returncode == 0, done.stderr
        assert _tgz_members(os.fspath(via_relay)) == _tgz_members(os.fspath(via_https)) == raws

        async def refused_clients() -> None:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await session.post(uri, data=b"")  # the system's CAs do not know ours
                with pytest.raises(aiohttp.ClientError):
                    await session.post(uri.replace("https", "http"), data=b"")
                for path in ("fetch_http_endpoint", "store_http_endpoint"):  # no client certificate: no request
                    with pytest.raises(aiohttp.ClientError):
                        async with session.post(uri.replace("fetch_http_endpoint", path), data=b"{}",
                                                ssl=client_context(certs.ca)) as resp:
                            await resp.read()

        asyncio.run(refused_clients())
        assert os.listdir(store) == []


def test_serve_config_with_tls(certs: Certs, comms_dir: tuple[str, dict[str, bytes]], tmp_path: Any) -> None:
    root, raws = comms_dir
    port = unused_port()
    config = tmp_path / "serve.toml"
    config.write_text(f'[[services]]\nkind = "fetch"\nport = {port}\nsource = "{root}"\n'
                      f'tls_cert = "{certs.server}"\ntls_client_ca = "{certs.ca}"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[[services]]\nkind = "fetch"\nport = {port}\nsource = "{root}"\ntls_key = "{certs.server}"\n')
    done = _cli("serve", os.fspath(bad), "--check")
    assert done.returncode == 2 and b"tls_key need tls_cert" in done.stderr, done.stderr
    with server_process(tmp_path, [sys.executable, "-m", "aioaccess", "serve", os.fspath(config)], port):
        async def fetch() -> list[bytes]:
            async with FetchCommunicationClient.connect("127.0.0.1", port,
                                                        ssl=client_context(certs.ca, certs.client)) as client:
                return await client.fetch_raw(sorted(raws))

        assert asyncio.run(fetch()) == [raws[i] for i in sorted(raws)]


async def test_bench_fetch_over_tls(certs: Certs, comms_dir: tuple[str, dict[str, bytes]], tmp_path: Any) -> None:
    import json

    from aioaccess.cli.main import main

    root, raws = comms_dir
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(root))
    wrapper = FetchCommunicationServiceWrapper(handler, ssl=server_context(certs.server, client_ca=certs.ca))
    out = tmp_path / "r.json"
    async with wrapper.serving() as listener:
        argv = ["bench", "fetch", f"127.0.0.1:{listener.bound_port}", "-c", "1,4", "-n", "20", "--loop", "asyncio",
                "--no-progress", "--json", str(out), "--tls-ca", certs.ca, "--tls-cert", certs.client]
        assert await asyncio.to_thread(main, argv) == 0
    report = json.loads(out.read_text())
    assert report["tls"] is True and report["ids"] == len(raws)
    assert [(r["concurrency"], r["ok"], r["error_count"]) for r in report["results"]] == [(1, 20, 0), (4, 20, 0)]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_client_that_never_finishes_its_handshake_is_cut(certs: Certs, loop: str) -> None:
    async def main() -> None:
        handler = CommunicationContainerFetchHandler({})
        wrapper = FetchCommunicationServiceWrapper(handler, ssl=server_context(certs.server),
                                                   config=ServerConfig(tls_handshake_timeout=0.5))
        async with wrapper.serving() as listener:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.bound_port)  # no TLS hello
            try:
                async with asyncio.timeout(20):
                    assert await reader.read() == b""  # closed by the server
            finally:
                writer.close()

    (uvloop.run if loop == "uvloop" else asyncio.run)(main())
