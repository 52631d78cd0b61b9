"""The content-type rule (fetch: any; store: only types that force a CORS preflight) and CORS per route."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aioaccess import CommunicationContainerFetchHandler, DirectoryBackedStoreHandler, write_communication_to_buffer
from aioaccess.cli.config_file import ConfigError, parse_config
from aioaccess.codec import tjson
from aioaccess.http import create_app, serve_http
from aioaccess.http.cors import CORSPolicy
from benchmarks.synthetic import make_corpus

COUNT = b'[1,"getCommunicationCount",1,5,{}]'
A, B = "http://a.example:8000", "http://b.example"


def _store_body(comm: Any, seqid: int = 3) -> bytes:
    return tjson.build_message("store", tjson.CALL, seqid, '{"1":{"rec":' + tjson.struct_to_tjson(comm) + "}}")


@pytest.fixture
def comms() -> list[Any]:
    return list(make_corpus(6, size=2000))


async def _serve(store_dir: str, comms: list[Any], **options: Any) -> Any:
    fetch = CommunicationContainerFetchHandler({c.id: c for c in comms})
    return serve_http(fetch_handler=fetch, store_handler=DirectoryBackedStoreHandler(store_dir, fsync=False),
                      **options)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    # skip_auto_headers: aiohttp would add "Content-Type: application/octet-stream" to a bytes body
    async with session.post(url, data=body, headers=headers, skip_auto_headers=["Content-Type"]) as resp:
        return resp.status, resp


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream",
                                          "application/x-www-form-urlencoded", "application/x-thrift"])
async def test_fetch_takes_any_content_type_or_none(store_dir: str, comms: list[Any], session: Any,
                                                    content_type: str | None) -> None:
    async with await _serve(store_dir, comms) as server:
        headers = {} if content_type is None else {"Content-Type": content_type}
        async with session.post(server.url + "/fetch_http_endpoint/", data=COUNT, headers=headers,
                                skip_auto_headers=["Content-Type"]) as resp:
            assert resp.status == 200
            assert json.loads(await resp.read()) == [1, "getCommunicationCount", 2, 5, {"0": {"i64": len(comms)}}]


@pytest.mark.parametrize("content_type", [None, "text/plain", "text/plain; charset=utf-8",
                                          "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"])
async def test_store_refuses_types_that_need_no_preflight_with_a_tjson_error(
        store_dir: str, comms: list[Any], session: Any, content_type: str | None) -> None:
    async with await _serve(store_dir, comms) as server:
        url = server.url + "/store_http_endpoint/"
        headers = {} if content_type is None else {"Content-Type": content_type}
        async with session.post(url, data=_store_body(comms[0]), headers=headers,
                                skip_auto_headers=["Content-Type"]) as resp:
            # HTTP 200 with a TApplicationException: Apache's JavaScript library reports it (a 4xx hangs it)
            assert resp.status == 200
            reply = json.loads(await resp.read())
        assert reply[:4] == [1, "store", 3, 3] and reply[4]["2"] == {"i32": 7}
        assert "preflight" in reply[4]["1"]["str"] and "application/x-thrift" in reply[4]["1"]["str"]
        async with session.post(url, data=b"not tjson", headers=headers, skip_auto_headers=["Content-Type"]) as resp:
            assert resp.status == 415 and "preflight" in await resp.text()
    assert os.listdir(store_dir) == []


@pytest.mark.parametrize("content_type", ["application/x-thrift", "application/octet-stream",
                                          "application/vnd.apache.thrift.json", "application/json"])
async def test_store_takes_types_that_force_a_preflight(store_dir: str, comms: list[Any], session: Any,
                                                        content_type: str) -> None:
    async with await _serve(store_dir, comms) as server:
        async with session.post(server.url + "/store_http_endpoint/", data=_store_body(comms[1]),
                                headers={"Content-Type": content_type}) as resp:
            assert resp.status == 200 and json.loads(await resp.read()) == [1, "store", 2, 3, {}]
    with open(os.path.join(store_dir, f"{comms[1].id}.comm"), "rb") as f:
        assert f.read() == write_communication_to_buffer(comms[1])


async def _preflight(session: Any, url: str, origin: str) -> tuple[int, Any]:
    async with session.options(url, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "content-type,x-evil"}) as resp:
        return resp.status, resp.headers


@pytest.mark.parametrize("cors_store", [False, True])
async def test_cors_per_route_and_origin(store_dir: str, comms: list[Any], session: Any, cors_store: bool) -> None:
    async with await _serve(store_dir, comms, cors_origins=[A], cors_store=cors_store) as server:
        fetch_url, store_url = server.url + "/fetch_http_endpoint/", server.url + "/store_http_endpoint/"
        status, headers = await _preflight(session, fetch_url, A)
        assert status == 204 and headers["Access-Control-Allow-Origin"] == A and headers["Vary"] == "Origin"
        assert headers["Access-Control-Allow-Methods"] == "POST"
        assert headers["Access-Control-Allow-Headers"] == "Content-Type"  # not the x-evil it asked for
        status, headers = await _preflight(session, fetch_url, B)
        assert status == 403 and "Access-Control-Allow-Origin" not in headers
        status, headers = await _preflight(session, store_url, A)
        assert (status == 204) is cors_store
        assert (headers.get("Access-Control-Allow-Origin") == A) is cors_store
        for origin, allowed in ((A, True), (B, False)):
            async with session.post(fetch_url, data=COUNT, headers={"Origin": origin}) as resp:
                assert resp.status == 200 and (resp.headers.get("Access-Control-Allow-Origin") == origin) is allowed
            async with session.post(store_url, data=_store_body(comms[2]),
                                    headers={"Origin": origin, "Content-Type": "application/x-thrift"}) as resp:
                assert resp.status == 200
                assert (resp.headers.get("Access-Control-Allow-Origin") == origin) is (allowed and cors_store)


async def test_cors_true_is_fetch_only_for_every_origin(store_dir: str, comms: list[Any], session: Any) -> None:
    async with await _serve(store_dir, comms, cors=True) as server:
        status, headers = await _preflight(session, server.url + "/fetch_http_endpoint/", B)
        assert status == 204 and headers["Access-Control-Allow-Origin"] == "*"
        status, headers = await _preflight(session, server.url + "/store_http_endpoint/", B)
        assert status == 403 and "Access-Control-Allow-Origin" not in headers


def test_cors_store_needs_an_origin_and_origins_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one CORS origin"):
        create_app(CommunicationContainerFetchHandler({}), cors_store=True)
    with pytest.raises(ValueError, match="SCHEME://HOST"):
        CORSPolicy(["a.example"])
    base = {"kind": "http", "port": 0, "source": "sample"}
    config = parse_config({"services": [{**base, "cors_origins": [A], "cors_store": True}]})
    assert config.services[0].options["cors_origins"] == [A]
    for bad, words in (({"cors_store": True}, "at least one CORS origin"),
                       ({"cors_origins": [1]}, "list of strings"), ({"cors_origins": A}, "must be a list")):
        with pytest.raises(ConfigError, match=words):
            parse_config({"services": [{**base, **bad}]})


async def test_a_broken_call_with_a_readable_head_gets_a_tapplicationexception(store_dir: str, comms: list[Any],
                                                                             session: Any) -> None:
    # Apache's JavaScript library writes a negative i64 in a list as -000000000001 (not JSON); its page must
    # get an error it can report rather than a 400 it never settles on.
    body = _store_body(comms[0]).replace(b'{"1":{"str"', b'{"9":{"lst":["i64",1,-000000000001]},"1":{"str"', 1)
    async with await _serve(store_dir, comms) as server:
        async with session.post(server.url + "/store_http_endpoint/", data=body,
                                headers={"Content-Type": "application/x-thrift"}) as resp:
            assert resp.status == 200
            reply = json.loads(await resp.read())
    assert reply[:4] == [1, "store", 3, 3] and reply[4]["2"] == {"i32": 7}
    assert reply[4]["1"]["str"].startswith("Cannot read the store call: malformed JSON")
    assert os.listdir(store_dir) == []


async def test_cli_cors_store_without_an_origin_is_a_usage_error(comm_dir: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from aioaccess.cli.main import main

    code = await asyncio.to_thread(main, ["http-server", comm_dir, "--cors-store", "--port", "0", "-l", "WARNING"])
    assert code == 2 and "at least one CORS origin" in capsys.readouterr().err
