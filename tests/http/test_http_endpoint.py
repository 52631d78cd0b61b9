"""The HTTP/TJSON endpoint with concrete-python's HTTP clients (Apache THttpClient + TJSONProtocol)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    DirectoryBackedStoreHandler,
    FetchCommunicationServiceWrapper,
    RelayFetchHandler,
    Server,
    ServerConfig,
    codec,
)
from aioaccess.codec import compact, tjson
from aioaccess.handlers.relay import RelayProcessor
from aioaccess.http import HTTPServer, create_app, serve_http
from aioaccess.schema import Communication

pytestmark = pytest.mark.interop

UNICODE_TEXT = "Grüße aus Köln ☃ — 東京 🎉 \"quoted\" \\ back\\slash\ttab\nnew line\x01"


def _cp_comms() -> list[Any]:
    from concrete.util import create_comm
    from conftest import concrete_comms

    return [*concrete_comms(4), create_comm("unicode-é-☃", UNICODE_TEXT), create_comm("empty-text", "")]


@pytest.fixture
def http_comms() -> list[Any]:
    return _cp_comms()


@pytest.fixture
def http_comm_dir(tmp_path: Any, http_comms: list[Any]) -> str:
    from concrete.util import write_communication_to_file

    path = tmp_path / "http-comms"
    path.mkdir()
    for comm in http_comms:
        write_communication_to_file(comm, os.fspath(path / f"{comm.id}.comm"))
    return os.fspath(path)


@pytest.fixture
def static_dir(tmp_path: Any) -> str:
    path = tmp_path / "static"
    path.mkdir()
    (path / "index.html").write_text("<h1>hello</h1>")
    (tmp_path / "secret.txt").write_text("secret")
    return os.fspath(path)


@pytest.fixture
async def http_server(http_comm_dir: str, store_dir: str, static_dir: str) -> AsyncIterator[HTTPServer]:
    fetch = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(http_comm_dir))
    store = DirectoryBackedStoreHandler(store_dir, fsync=False)
    async with serve_http(fetch_handler=fetch, store_handler=store, static_path=static_dir, cors=True,
                          client_max_size=256 * 1024) as server:
        yield server


def _stored(path: str, comm_id: str) -> bytes:
    with open(os.path.join(path, f"{comm_id}.comm"), "rb") as f:
        return f.read()


def _http_fetch_all(url: str, ids: list[str]) -> tuple[Any, ...]:
    from concrete.access.ttypes import FetchRequest
    from concrete.util.access_wrapper import HTTPFetchCommunicationClientWrapper

    with HTTPFetchCommunicationClientWrapper(url + "/fetch_http_endpoint/") as client:
        return (client.fetch(FetchRequest(communicationIds=ids)), client.getCommunicationCount(),
                client.getCommunicationIDs(0, 100), client.getCommunicationIDs(1, 2), client.about(), client.alive())


async def test_concrete_http_fetch_client(http_server: HTTPServer, http_comm_dir: str, http_comms: list[Any]) -> None:
    from concrete.util import write_communication_to_buffer

    ids = [c.id for c in http_comms]
    wanted = [ids[4], "no-such-id", ids[0], ids[5], ids[2]]
    result, count, all_ids, some_ids, about, alive = await asyncio.to_thread(_http_fetch_all, http_server.url,
                                                                             wanted)
    got = result.communications
    assert [c.id for c in got] == [ids[4], ids[0], ids[5], ids[2]]
    assert got[0].text == UNICODE_TEXT
    assert [write_communication_to_buffer(c) for c in got] == [_stored(http_comm_dir, c.id) for c in got]
    assert count == len(ids)
    assert sorted(all_ids) == sorted(ids)
    assert some_ids == all_ids[1:3]
    assert "CommunicationContainerFetchHandler" in about.name
    assert alive is True


async def test_concrete_http_store_client(http_server: HTTPServer, store_dir: str) -> None:
    from concrete.services.ttypes import ServicesException
    from concrete.util import create_comm, write_communication_to_buffer
    from concrete.util.access_wrapper import HTTPStoreCommunicationClientWrapper

    comms = [create_comm("stored-1", UNICODE_TEXT), create_comm("stored-2", "plain text\n\nsecond section")]

    def store() -> tuple[Any, ...]:
        with HTTPStoreCommunicationClientWrapper(http_server.url + "/store_http_endpoint/") as client:
            for comm in comms:
                client.store(comm)
            with pytest.raises(ServicesException, match="path separator") as bad:
                client.store(create_comm("../escape", "x"))
            return client.about(), client.alive(), bad.value

    about, alive, _ = await asyncio.to_thread(store)
    for comm in comms:
        assert _stored(store_dir, comm.id) == write_communication_to_buffer(comm)
    assert sorted(os.listdir(store_dir)) == ["stored-1.comm", "stored-2.comm"]
    assert about.name == "DirectoryBackedStoreHandler" and alive is True


async def _post(url: str, body: bytes, content_type: str = "application/x-thrift") -> tuple[int, str, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body,
                                                                 headers={"Content-Type": content_type}) as resp:
        return resp.status, await resp.text(), resp.headers


@pytest.mark.parametrize(("body", "content_type", "status", "reason"), [
    (b'[1,"getCommunicationCount",1', "application/x-thrift", 400, "malformed JSON"),
    (b"\xff\xfe garbage", "application/x-thrift", 400, "malformed JSON"),
    (b'{"not": "a message"}', "application/x-thrift", 400, "not a TJSON message"),
    (b'[2,"getCommunicationCount",1,1,{}]', "application/x-thrift", 400, "unsupported TJSON version"),
    (b'[1,"getCommunicationCount",2,1,{}]', "application/x-thrift", 400, "is not a call"),
    (b" " * (256 * 1024 + 1), "application/x-thrift", 413, "exceeds the limit"),
])
async def test_bad_requests_get_a_4xx_with_a_one_line_reason(http_server: HTTPServer, body: bytes,
                                                             content_type: str, status: int, reason: str) -> None:
    url = http_server.url + "/fetch_http_endpoint/"
    got_status, text, headers = await _post(url, body, content_type)
    assert got_status == status
    assert reason in text
    assert text.count("\n") <= 1 and text.strip()
    assert headers["Access-Control-Allow-Origin"] == "*"
    # ...and the server keeps serving.
    got_status, text, _ = await _post(url, b'[1,"getCommunicationCount",1,9,{}]')
    assert (got_status, json.loads(text)) == (200, [1, "getCommunicationCount", 2, 9, {"0": {"i64": 6}}])


async def test_chunked_oversized_body_is_refused(http_server: HTTPServer) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b" " * 8192

    async with aiohttp.ClientSession() as session, session.post(
            http_server.url + "/store_http_endpoint/", data=chunks(),
            headers={"Content-Type": "application/x-thrift"}) as resp:
        assert resp.status == 413
        assert "exceeds the limit of 262144 bytes" in await resp.text()


async def test_unknown_method_and_bad_arguments_are_tapplicationexceptions(http_server: HTTPServer) -> None:
    url = http_server.url + "/fetch_http_endpoint/"
    status, text, _ = await _post(url, b'[1,"nosuch",1,7,{}]')
    assert status == 200
    assert json.loads(text) == [1, "nosuch", 3, 7, {"1": {"str": "Unknown method 'nosuch'"}, "2": {"i32": 1}}]
    status, text, _ = await _post(url, b'[1,"getCommunicationIDs",1,8,{"1":{"i64":"x"},"2":{"i64":2}}]')
    reply = json.loads(text)
    assert status == 200 and reply[:4] == [1, "getCommunicationIDs", 3, 8] and reply[4]["2"] == {"i32": 7}
    status, text, _ = await _post(url, b'[1,"store",1,9,{}]')  # a store method on the fetch endpoint
    assert json.loads(text)[2] == 3


async def test_cors_preflight_and_static_files(http_server: HTTPServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.options(http_server.url + "/fetch_http_endpoint/", headers={
                "Origin": "http://example.org", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"}) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            assert resp.headers["Access-Control-Allow-Headers"] == "Content-Type"  # only what it uses
        async with session.get(http_server.url + "/index.html") as resp:
            assert resp.status == 200 and await resp.text() == "<h1>hello</h1>"
        async with session.get(http_server.url + "/../secret.txt") as resp:
            assert resp.status in (403, 404)
        async with session.get(http_server.url + "/%2e%2e/secret.txt") as resp:
            assert resp.status in (403, 404)
        async with session.get(http_server.url + "/fetch_http_endpoint/") as resp:
            assert resp.status in (404, 405)


async def test_fetch_reply_is_apache_tjson(http_comm_dir: str, http_comms: list[Any]) -> None:
    """The spliced fetch reply is what Apache's TJSONProtocol writes, for either codec."""
    from concrete.access.FetchCommunicationService import fetch_result
    from concrete.access.ttypes import FetchResult
    from thrift.protocol.TJSONProtocol import TJSONProtocol
    from thrift.transport.TTransport import TMemoryBuffer

    raws = [_stored(http_comm_dir, c.id) for c in http_comms]
    out = TMemoryBuffer()
    proto = TJSONProtocol(out)
    proto.writeMessageBegin("fetch", 2, 5)
    fetch_result(success=FetchResult(communications=http_comms)).write(proto)
    proto.writeMessageEnd()
    apache = json.loads(out.getvalue(), strict=False)  # Apache leaves control characters unescaped
    assert json.loads(tjson.fetch_reply(5, raws, Communication)) == apache
    pure = b",".join(compact.to_tjson(r, Communication)[0] for r in raws)
    assert json.loads(b'[1,"fetch",2,5,{"0":{"rec":{"1":{"lst":["rec",%d,%s]}}}}]' % (len(raws), pure)) == apache
    assert json.loads(tjson.fetch_reply(5, [], Communication)) == [1, "fetch", 2, 5,
                                                                   {"0": {"rec": {"1": {"lst": ["rec", 0]}}}}]


def test_struct_round_trip_through_apache_tjson(http_comms: list[Any]) -> None:
    """Apache reads our TJSON; we read Apache's; compact bytes survive both ways."""
    from concrete import Communication as CComm
    from concrete.util import write_communication_to_buffer
    from thrift.protocol.TJSONProtocol import TJSONProtocol
    from thrift.transport.TTransport import TMemoryBuffer

    for comm in http_comms:
        raw = write_communication_to_buffer(comm)
        ours = codec.read_communication_from_buffer(raw)
        text = tjson.struct_to_tjson(ours).encode()
        back = CComm()
        back.read(TJSONProtocol(TMemoryBuffer(text)))
        assert write_communication_to_buffer(back) == raw
        out = TMemoryBuffer()
        comm.write(TJSONProtocol(out))
        doc = json.loads(out.getvalue(), strict=False)
        assert codec.write_communication_to_buffer(tjson.struct_from_doc(doc, Communication)) == raw


async def test_fetch_relay_and_http_in_one_process(http_comm_dir: str, http_comms: list[Any]) -> None:
    """A fetch server, a relay in front of it and the HTTP endpoint in front of the relay, on one loop."""
    from concrete.util import write_communication_to_buffer
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper

    fetch = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(http_comm_dir))
    async with FetchCommunicationServiceWrapper(fetch).serving() as upstream:
        relay = RelayFetchHandler("127.0.0.1", upstream.bound_port, max_connections=4)
        server = Server(ServerConfig(graceful_timeout=1.0))
        listener = server.add_service(RelayProcessor(relay), "127.0.0.1", 0)
        server.cleanups.append(relay.aclose)
        http = HTTPServer(create_app(relay), "127.0.0.1", 0)
        await http.start()
        server.cleanups.append(http.aclose)
        serving = asyncio.create_task(server.serve())
        await server.started.wait()
        try:
            ids = [c.id for c in http_comms]
            result, count, *_ = await asyncio.to_thread(_http_fetch_all, http.url, ids)

            def over_tcp() -> Any:
                with FetchCommunicationClientWrapper("127.0.0.1", listener.bound_port) as client:
                    return client.getCommunicationCount()

            tcp_count = await asyncio.to_thread(over_tcp)
        finally:
            server.close()
            await serving
    assert [write_communication_to_buffer(c) for c in result.communications] == [
        _stored(http_comm_dir, i) for i in ids]
    assert count == tcp_count == len(ids)
    assert http.runner is None  # closed by the Server's cleanups
