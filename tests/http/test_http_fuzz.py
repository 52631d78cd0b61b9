"""Hostile input against the HTTP/TJSON endpoint: every request gets a well-formed answer, nobody else notices.

A real server (``serve_http`` on a free port) with a directory-backed fetch
handler and a directory-backed store handler; requests through aiohttp's
client (raw sockets for malformed HTTP).  The bar, checked after every
request: a 200 carrying a TJSON REPLY or TApplicationException (never
INTERNAL_ERROR), or a 4xx with a one-line reason; never a 500 or a
traceback; nothing logged at ERROR; a valid fetch still answered.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import os
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from concrete.access.FetchCommunicationService import fetch_args
from concrete.access.StoreCommunicationService import store_args
from concrete.access.ttypes import FetchRequest
from concrete.util import create_comm, read_communication_from_file, write_communication_to_file
from thrift.protocol.TJSONProtocol import TJSONProtocol
from thrift.Thrift import TMessageType
from thrift.transport.TTransport import TMemoryBuffer

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    DirectoryBackedStoreHandler,
)
from aioaccess.http import serve_http

LIMIT = 256 * 1024
IDS = [f"comm-{i}" for i in range(6)]
CONTENT_TYPE = "application/x-thrift"
UNKNOWN_METHOD, INTERNAL_ERROR, PROTOCOL_ERROR = 1, 6, 7


# -- valid messages, as Apache Thrift's TJSONProtocol writes them ----------------------------------------------
def _apache_call(name: str, args: Any, seqid: int) -> bytes:
    out = TMemoryBuffer()
    proto = TJSONProtocol(out)
    proto.writeMessageBegin(name, TMessageType.CALL, seqid)
    args.write(proto)
    proto.writeMessageEnd()
    return out.getvalue()


def fetch_call(ids: list[str], seqid: int = 7) -> bytes:
    return _apache_call("fetch", fetch_args(request=FetchRequest(communicationIds=ids)), seqid)


def store_call(comm: Any, seqid: int = 9) -> bytes:
    return _apache_call("store", store_args(communication=comm), seqid)


VALID_FETCH = fetch_call(IDS[:3])


# -- the server and the checks ----------------------------------------------------------------------------------
class Env:
    """The running server, its directories and a client session."""

    def __init__(self, url: str, session: aiohttp.ClientSession, root: str, comms: str, store: str) -> None:
        self.url = url
        self.session = session
        self.root = root
        self.comms = comms
        self.store = store

    def endpoint(self, name: str) -> str:
        return f"{self.url}/{name}_http_endpoint/"


def _layout(root: str) -> tuple[str, str, str]:
    """root/comms (served), root/store (the store), root/outside with files and symlinks into it from both."""
    comms, store, outside = (os.path.join(root, d) for d in ("comms", "store", "outside"))
    for d in (comms, store, outside):
        os.mkdir(d)
    for comm_id in IDS:
        write_communication_to_file(create_comm(comm_id, f"Document {comm_id}."),
                                    os.path.join(comms, f"{comm_id}.comm"))
    # A Communication a traversing fetch would find, and files a traversing store would overwrite.
    write_communication_to_file(create_comm("secret", "must not be served"), os.path.join(outside, "secret.comm"))
    write_communication_to_file(create_comm("secret", "must not be served"), os.path.join(root, "secret.comm"))
    with open(os.path.join(outside, "victim.comm"), "wb") as f:
        f.write(b"do not touch")
    os.symlink(os.path.join(outside, "victim.comm"), os.path.join(store, "link.comm"))
    os.symlink(outside, os.path.join(store, "dirlink"))
    return comms, store, outside


def _session() -> aiohttp.ClientSession:
    # A fresh connection per request: the server closes some after hostile input, and a reused
    # connection the server just closed would fail for reasons that are not the server's.
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30),
                                 connector=aiohttp.TCPConnector(force_close=True))


@pytest.fixture
async def env(tmp_path: Any) -> AsyncIterator[Env]:
    root = os.fspath(tmp_path)
    comms, store, _ = _layout(root)
    fetch = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comms))
    handler = DirectoryBackedStoreHandler(store, fsync=False)
    async with serve_http(fetch_handler=fetch, store_handler=handler, client_max_size=LIMIT, cors=True,
                          body_timeout=2.0) as server, _session() as session:
        yield Env(server.url, session, root, comms, store)


async def _chunks(body: bytes, rng: random.Random) -> AsyncIterator[bytes]:
    pos = 0
    while pos < len(body):
        n = rng.randint(1, max(1, len(body) // 3))
        yield body[pos:pos + n]
        pos += n


async def send(env: Env, endpoint: str, body: bytes, how: str = "plain", content_type: str = CONTENT_TYPE,
               method: str = "POST") -> tuple[int, Any, bytes]:
    headers = {"Content-Type": content_type}
    data: Any = body
    if how == "gzip":
        data = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    elif how == "chunked":
        data = _chunks(body, random.Random(len(body)))
    elif len(body) > 1 << 19:
        data = io.BytesIO(body)  # aiohttp's client warns about large bytes bodies
    async with env.session.request(method, env.endpoint(endpoint), data=data, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


def check_reply(status: int, headers: Any, body: bytes, what: Any) -> Any:
    """The answer is a TJSON REPLY, a TApplicationException other than INTERNAL_ERROR, or a one-line 4xx."""
    assert status < 500, f"{status} for {what!r}: {body[:300]!r}"
    if status != 200:
        assert status in (400, 404, 405, 408, 413, 415), f"{status} for {what!r}: {body[:300]!r}"
        text = body.decode()
        assert text.strip() and text.count("\n") <= 1 and "Traceback" not in text, (what, text[:300])
        return None
    assert headers["Content-Type"] == CONTENT_TYPE, (what, headers)
    doc = json.loads(body)
    assert isinstance(doc, list) and len(doc) == 5 and doc[0] == 1 and doc[2] in (2, 3), (what, body[:300])
    if doc[2] == 3:
        assert set(doc[4]) == {"1", "2"} and isinstance(doc[4]["1"]["str"], str), (what, body[:300])
        assert doc[4]["2"]["i32"] in (UNKNOWN_METHOD, PROTOCOL_ERROR), (what, body[:300])
    return doc


async def check_alive(env: Env) -> None:
    status, _, body = await send(env, "fetch", VALID_FETCH)
    assert status == 200, body[:300]
    reply = json.loads(body)
    comms = reply[4]["0"]["rec"]["1"]["lst"]
    assert [c["1"]["str"] for c in comms[2:]] == IDS[:3]


def no_errors(caplog: pytest.LogCaptureFixture, since: int, what: Any) -> int:
    bad = [f"{r.name} {r.levelname}: {r.getMessage()[:200]}" for r in caplog.records[since:]
           if r.levelno >= logging.ERROR]
    assert not bad, f"{what!r} logged errors: {bad}"
    return len(caplog.records)


def check_store_dir(env: Env) -> list[str]:
    """Every regular file in the store is a whole, decodable ``<id>.comm``; returns the ids."""
    ids = []
    for name in sorted(os.listdir(env.store)):
        path = os.path.join(env.store, name)
        if os.path.islink(path):
            continue
        assert name.endswith(".comm") and os.path.isfile(path), name
        comm = read_communication_from_file(path)
        assert f"{comm.id}.comm" == name
        ids.append(comm.id)
    return ids


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


# -- named cases, each with the answer it must get --------------------------------------------------------------
def _exc(kind: int, text: str) -> tuple[str, int, str]:
    return ("exception", kind, text)


def _refused(status: int, text: str) -> tuple[str, int, str]:
    return ("refused", status, text)


OK: tuple[str, int, str] = ("reply", 0, "")
NO_UUID = (b'[1,"store",1,1,{"1":{"rec":{"1":{"str":"no-uuid"},"3":{"str":"t"},'
           b'"8":{"rec":{"1":{"str":"t"},"2":{"i64":1}}}}}}]')


def _store(comm_id: str, extra: str = "") -> bytes:
    """A store call of a minimal Communication (JSON text given as is), plus ``extra`` fields."""
    comm = ('{"1":{"str":"' + comm_id + '"},"2":{"rec":{"1":{"str":"u"}}},"3":{"str":"t"},'
            '"8":{"rec":{"1":{"str":"t"},"2":{"i64":1}}}' + extra + "}")
    return ('[1,"store",1,1,{"1":{"rec":' + comm + "}}]").encode()


NAMED: list[tuple[str, str, bytes, tuple[str, int, str]]] = [
    ("deep [", "fetch", b"[" * 100_000, _refused(400, "nested too deeply")),
    ("deep {", "fetch", b'{"a":' * 40_000 + b"1" + b"}" * 40_000, _refused(400, "nested too deeply")),
    ("deep in args", "fetch", b'[1,"fetch",1,1,{"1":' + b"[" * 100_000 + b"]" * 100_000 + b"}]",
     _refused(400, "nested too deeply")),
    ("deep, closed, under the limit", "store", b'[1,"store",1,1,{"1":{"rec":{"99":{"lst":["lst",1,'
     + b"[" * 900 + b"]" * 900 + b"]}}}}]", ("declared", 0, "has no id")),
    ("lone surrogate in the method name", "fetch", b'[1,"\\ud800",1,1,{}]', _refused(400, "lone UTF-16 surrogate")),
    ("UTF-8-encoded surrogate in the method name", "fetch", b'[1,"\xed\xa0\x80",1,1,{}]',
     _refused(400, "not UTF-8")),
    ("invalid UTF-8", "fetch", b'[1,"fetch\xff",1,1,{}]', _refused(400, "not UTF-8")),
    ("UTF-16 body", "fetch", '[1,"getCommunicationCount",1,1,{}]'.encode("utf-16"), _refused(400, "not UTF-8")),
    ("BOM", "fetch", b'\xef\xbb\xbf[1,"getCommunicationCount",1,1,{}]', OK),
    ("surrogate pair is fine", "fetch", b'[1,"fetch",1,1,{"1":{"rec":{"1":{"lst":["str",1,"\\ud83c\\udf89"]}}}}]', OK),
    ("lone surrogate in a fetch id", "fetch", b'[1,"fetch",1,1,{"1":{"rec":{"1":{"lst":["str",1,"\\udfff"]}}}}]',
     _exc(PROTOCOL_ERROR, "lone UTF-16 surrogate")),
    ("lone surrogate in a stored id", "store", _store("\\ud800"), _exc(PROTOCOL_ERROR, "lone UTF-16 surrogate")),
    ("lone surrogate in a map key", "store", _store("kv", ',"9":{"map":["str","str",1,{"\\udc80":"x"}]}'),
     _exc(PROTOCOL_ERROR, "surrogate")),
    ("fetch without a FetchRequest", "fetch", b'[1,"fetch",1,1,{}]', _exc(PROTOCOL_ERROR, "no FetchRequest")),
    ("store without a Communication", "store", b'[1,"store",1,1,{}]', _exc(PROTOCOL_ERROR, "no Communication")),
    ("store, Communication without its uuid", "store", NO_UUID, _exc(PROTOCOL_ERROR, "uuid: required field is None")),
    ("store, i64 out of range", "store", _store("big", f',"5":{{"i64":{2**63}}}'),
     _exc(PROTOCOL_ERROR, "out of range for i64")),
    ("store, double too large to be one", "store", _store("dbl", ',"10":{"lst":["rec",1,{"1":{"rec":{"1":{"str":"u"}}},'
     '"2":{"rec":{"1":{"str":"t"},"2":{"i64":1}}},"3":{"map":["str","dbl",1,{"en":1' + "0" * 400 + "}]}}]}"),
     _exc(PROTOCOL_ERROR, "arguments")),
    ("store, bad base64", "store", _store("b64", ',"20":{"rec":{"1":{"str":"QUJDR"}}}'),
     _exc(PROTOCOL_ERROR, "base64")),
    ("store, id with a path", "store", _store("../x"), ("declared", 0, "path separator")),
    ("store, symlinked id", "store", _store("link"), ("declared", 0, "outside the store")),
    ("list claims more than it holds", "fetch", b'[1,"fetch",1,1,{"1":{"rec":{"1":{"lst":["str",4611686018427387904,'
     b'"a"]}}}}]', _exc(PROTOCOL_ERROR, "claims")),
    ("list size not a number", "fetch", b'[1,"fetch",1,1,{"1":{"rec":{"1":{"lst":["str","1","a"]}}}}]',
     _exc(PROTOCOL_ERROR, "expected")),
    ("huge seqid", "fetch", b'[1,"getCommunicationCount",1,%d,{}]' % 2**100, OK),
    ("4301-digit seqid", "fetch", b'[1,"getCommunicationCount",1,' + b"1" * 4301 + b",{}]", _refused(400, "JSON")),
    ("float seqid", "fetch", b'[1,"getCommunicationCount",1,1.5,{}]', _refused(400, "integers")),
    ("oneway", "fetch", b'[1,"getCommunicationCount",4,1,{}]', _refused(400, "not a call")),
    ("a reply", "fetch", b'[1,"getCommunicationCount",2,1,{"0":{"i64":1}}]', _refused(400, "not a call")),
    ("an exception", "fetch", b'[1,"getCommunicationCount",3,1,{}]', _refused(400, "not a call")),
    ("version 2", "fetch", b'[2,"getCommunicationCount",1,1,{}]', _refused(400, "version")),
    ("version true", "fetch", b'[true,"getCommunicationCount",1,1,{}]', _refused(400, "version")),
    ("no args", "fetch", b'[1,"getCommunicationCount",1,1]', OK),
    ("args a list", "fetch", b'[1,"getCommunicationCount",1,1,[]]', _refused(400, "not a struct")),
    ("unknown method", "fetch", b'[1,"nosuch",1,1,{}]', _exc(UNKNOWN_METHOD, "nosuch")),
    ("store on the fetch endpoint", "fetch", b'[1,"store",1,1,{}]', _exc(UNKNOWN_METHOD, "store")),
    ("fetch on the store endpoint", "store", b'[1,"fetch",1,1,{}]', _exc(UNKNOWN_METHOD, "fetch")),
    ("empty method name", "fetch", b'[1,"",1,1,{}]', _exc(UNKNOWN_METHOD, "''")),
    ("duplicate field: the last wins", "fetch",
     b'[1,"fetch",1,1,{"1":{"rec":{"1":{"lst":["str",1,"comm-1"]},"1":{"lst":["str",1,"comm-2"]}}}}]', OK),
    ("field of another type: skipped", "fetch", b'[1,"fetch",1,1,{"1":{"i32":5}}]',
     _exc(PROTOCOL_ERROR, "no FetchRequest")),
    ("two-key field", "fetch", b'[1,"fetch",1,1,{"1":{"rec":{},"i32":5}}]', _exc(PROTOCOL_ERROR, "one-key")),
    ("field id not a number", "fetch", b'[1,"fetch",1,1,{"x":{"rec":{}}}]', _exc(PROTOCOL_ERROR, "not an integer")),
    ("negative count", "fetch", b'[1,"getCommunicationIDs",1,1,{"1":{"i64":-5},"2":{"i64":-3}}]', OK),
    ("huge offset", "fetch", b'[1,"getCommunicationIDs",1,1,{"1":{"i64":%d},"2":{"i64":%d}}]' % (2**70, 2**70), OK),
    ("empty body", "fetch", b"", _refused(400, "malformed JSON")),
    ("null", "store", b"null", _refused(400, "not a TJSON message")),
    ("trailing garbage", "fetch", b'[1,"getCommunicationCount",1,1,{}]]', _refused(400, "malformed JSON")),
    ("NaN seqid", "fetch", b'[1,"getCommunicationCount",1,NaN,{}]', _refused(400, "integers")),
]


@pytest.mark.parametrize(("endpoint", "body", "expected"), [n[1:] for n in NAMED], ids=[n[0] for n in NAMED])
async def test_named_hostile_bodies(env: Env, caplog: pytest.LogCaptureFixture, endpoint: str, body: bytes,
                                    expected: tuple[str, int, str]) -> None:
    status, headers, reply = await send(env, endpoint, body)
    doc = check_reply(status, headers, reply, body[:100])
    outcome, code, text = expected
    if outcome == "refused":
        assert status == code and text in reply.decode(), reply[:300]
    elif outcome == "exception":
        assert doc is not None and doc[2] == 3, reply[:300]
        assert doc[4]["2"]["i32"] == code and text in doc[4]["1"]["str"], reply[:300]
    elif outcome == "declared":
        assert doc is not None and doc[2] == 2 and text in doc[4]["1"]["rec"]["1"]["str"], reply[:300]
    else:
        assert doc is not None and doc[2] == 2 and "1" not in doc[4], reply[:300]
    await check_alive(env)
    no_errors(caplog, 0, body[:100])
    assert check_store_dir(env) == []


# -- HTTP-level faults, on raw sockets ----------------------------------------------------------------------------
V = b'[1,"getCommunicationCount",1,1,{}]'


def http_request(body: bytes = V, headers: dict[str, str | None] | None = None, method: str = "POST",
                 path: str = "/fetch_http_endpoint/", version: str = "HTTP/1.1") -> bytes:
    all_headers: dict[str, str | None] = {"Host": "localhost", "Content-Type": CONTENT_TYPE,
                                          "Content-Length": str(len(body)), "Connection": "close"}
    all_headers.update(headers or {})
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers.items() if v is not None)
    return head.encode("latin-1") + b"\r\n" + body


def _chunked(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


NO_LENGTH: dict[str, str | None] = {"Content-Length": None}
CHUNKED: dict[str, str | None] = {"Content-Length": None, "Transfer-Encoding": "chunked"}
RAW: list[tuple[str, bytes, tuple[int, ...]]] = [
    ("not HTTP", b"GARBAGE\r\n\r\n", (400,)),
    ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", (400,)),
    ("negative Content-Length", http_request(headers={"Content-Length": "-1"}), (400,)),
    ("Content-Length not a number", http_request(headers={"Content-Length": "abc"}), (400,)),
    ("Content-Length overflow", http_request(headers={"Content-Length": "9" * 30}), (400,)),
    ("two Content-Lengths", http_request(headers={"content-length": "5"}), (400,)),
    ("Content-Length and chunked", http_request(_chunked(V), {"Transfer-Encoding": "chunked"}), (400,)),
    ("body not chunk-encoded", http_request(V, CHUNKED), (400,)),
    ("bad chunk size", http_request(b"zz\r\n" + V + b"\r\n0\r\n\r\n", CHUNKED), (400,)),
    ("chunk size overflow", http_request(b"f" * 20 + b"\r\n" + V, CHUNKED), (400,)),
    ("chunked, valid", http_request(_chunked(V), CHUNKED), (200,)),
    ("gzip that is not gzip", http_request(V, {"Content-Encoding": "gzip"}), (400,)),
    ("deflate that is not deflate", http_request(V, {"Content-Encoding": "deflate"}), (400,)),
    ("truncated gzip", http_request(gzip.compress(V)[:-12], {"Content-Encoding": "gzip"}), (400,)),
    ("gzip, valid", http_request(gzip.compress(V), {"Content-Encoding": "gzip"}), (200,)),
    ("gzip bomb", http_request(gzip.compress(b" " * (64 << 20)), {"Content-Encoding": "gzip"}), (413,)),
    ("brotli", http_request(V, {"Content-Encoding": "br"}), (200, 400)),
    ("zstd", http_request(V, {"Content-Encoding": "zstd"}), (200, 400)),
    ("unknown encoding", http_request(V, {"Content-Encoding": "bogus"}), (200, 400, 415)),
    ("header line too long", http_request(headers={"X-Big": "a" * 100_000}), (400, 431)),
    ("many headers", http_request(headers={f"X-{i}": "v" for i in range(5000)}), (400, 431)),
    ("NUL in a header", http_request(headers={"X-Nul": "a\x00b"}), (400,)),
    ("bare LF", http_request().replace(b"\r\n", b"\n"), (200, 400)),
    ("HTTP/1.0", http_request(version="HTTP/1.0"), (200,)),
    ("HTTP/9.9", http_request(version="HTTP/9.9"), (400, 505)),
    ("unknown method", http_request(method="FOO"), (400, 405)),
    ("GET", http_request(method="GET"), (405,)),
    ("PUT", http_request(method="PUT"), (405,)),
    ("DELETE", http_request(method="DELETE"), (405,)),
    ("PATCH", http_request(method="PATCH"), (405,)),
    ("CONNECT", http_request(method="CONNECT", path="localhost:1"), (400, 404, 405)),
    ("OPTIONS (CORS)", http_request(b"", method="OPTIONS"), (204,)),
    ("dot segments", http_request(path="/fetch_http_endpoint/../store_http_endpoint/"), (200, 404)),
    ("encoded dot segments", http_request(path="/%2e%2e/fetch_http_endpoint/"), (200, 404)),
    ("absolute URI", http_request(path="http://evil.example/fetch_http_endpoint/"), (200, 400, 404)),
    ("no such path", http_request(path="/nope"), (404, 405)),
    ("no Content-Type", http_request(headers={"Content-Type": None}), (415,)),
    ("text/plain", http_request(headers={"Content-Type": "text/plain"}), (415,)),
    ("multipart", http_request(headers={"Content-Type": "multipart/form-data; boundary=x"}), (415,)),
    ("charset parameter", http_request(headers={"Content-Type": CONTENT_TYPE + "; charset=utf-16"}), (200,)),
    ("no body, no length", http_request(b"", NO_LENGTH), (400,)),
    ("Expect: 100-continue", http_request(headers={"Expect": "100-continue"}), (200,)),
    ("Expect: other", http_request(headers={"Expect": "bogus"}), (417,)),
    ("declared over the limit", http_request(headers={"Content-Length": str(LIMIT + 1)}), (413,)),
    ("Upgrade: websocket", http_request(headers={"Upgrade": "websocket", "Connection": "Upgrade"}), (200, 400)),
    ("pipelined garbage", http_request(headers={"Connection": "keep-alive"}) + b"GARBAGE\r\n\r\n", (200, 400)),
    ("data after Connection: close", http_request() + b"GARBAGE\r\n\r\n", (200, 400)),
]


def _port(env: Env) -> int:
    return int(env.url.rsplit(":", 1)[1])


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response (after any 100 Continue): status, headers, body (by Content-Length, else to EOF)."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, *_ = lines[0].split(" ", 2)
        assert version in ("HTTP/1.0", "HTTP/1.1"), lines[0]
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:] if h)}
        if int(status) != 100:
            break
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return int(status), headers, body


async def raw_exchange(env: Env, data: bytes, then_close: bool = False) -> tuple[int, dict[str, str], bytes] | None:
    """Send ``data`` on a new connection; read one response (None: closed at once, as asked)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(env))
    try:
        writer.write(data)
        await writer.drain()
        if then_close:
            return None
        return await asyncio.wait_for(read_response(reader), 30)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


@pytest.mark.parametrize(("data", "statuses"), [r[1:] for r in RAW], ids=[r[0] for r in RAW])
async def test_http_level_faults_get_a_4xx(env: Env, caplog: pytest.LogCaptureFixture, data: bytes,
                                           statuses: tuple[int, ...]) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    got = await raw_exchange(env, data)
    assert got is not None
    status, _, body = got
    assert status in statuses, (status, body[:300])
    assert b"Traceback" not in body and b"Server got itself in trouble" not in body, body[:300]
    if status == 200:
        assert json.loads(body)[2] == 2, body[:300]
    await check_alive(env)
    no_errors(caplog, 0, data[:100])


@pytest.mark.parametrize("data", [
    http_request()[:30],  # in the request line
    http_request()[:-len(V)],  # headers, no body
    http_request()[:-5],  # part of the body
    http_request(headers={"Expect": "100-continue"})[:-len(V)],  # waiting for 100 Continue
    http_request(b"7\r\n[1,\"get", CHUNKED),  # in a chunk
    http_request(gzip.compress(V)[:10], {"Content-Encoding": "gzip", "Content-Length": "40"}),
], ids=["request-line", "headers", "body", "expect", "chunk", "gzip"])
async def test_client_gone_mid_request(env: Env, caplog: pytest.LogCaptureFixture, data: bytes) -> None:
    """A client that disconnects mid-request costs nothing but a DEBUG line."""
    for _ in range(3):
        assert await raw_exchange(env, data, then_close=True) is None
    await asyncio.sleep(0.1)  # let the server notice (no assertion depends on how long it takes)
    await check_alive(env)
    no_errors(caplog, 0, data)


async def test_stalled_body_gets_a_408(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """A body that stops arriving: 408 after body_timeout (2 s here), not a handler waiting for ever."""
    for data in (http_request()[:-5], http_request(b"7\r\n[1,\"get", CHUNKED)):
        got = await raw_exchange(env, data)
        assert got is not None and got[0] == 408, got
        assert b"not received in full" in got[2]
    await check_alive(env)
    no_errors(caplog, 0, "stalled")


# -- what a hostile fetch makes the server do --------------------------------------------------------------------
async def test_fetch_repeating_one_big_id_is_refused_before_transcoding(tmp_path: Any,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A 30 KB request asking 5,000 times for a 200 KB Communication: a ServicesException, not a 2 GB reply.

    (As the Thrift server's reply cap: the Communications of one fetch may add up
    to ``max_reply_size`` bytes, counted as stored.)
    """
    comm = create_comm("big", "")
    comm.text = "x" * 200_000
    write_communication_to_file(comm, os.fspath(tmp_path / "big.comm"))
    fetch = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(os.fspath(tmp_path)))
    async with serve_http(fetch_handler=fetch, max_reply_size=1_000_000) as server, _session() as session:
        env = Env(server.url, session, os.fspath(tmp_path), os.fspath(tmp_path), "")
        status, headers, reply = await send(env, "fetch", fetch_call(["big"] * 4))
        doc = check_reply(status, headers, reply, "4 x big")
        assert doc[2] == 2 and doc[4]["0"]["rec"]["1"]["lst"][1] == 4
        before = rss_kib()
        for _ in range(20):
            status, headers, reply = await send(env, "fetch", fetch_call(["big"] * 5000))
            doc = check_reply(status, headers, reply, "5000 x big")
            assert doc[2] == 2 and "over this server's limit of 1000000" in doc[4]["1"]["rec"]["1"]["str"], reply[:300]
        after = rss_kib()
    no_errors(caplog, 0, "big")
    print(f"\nRSS around 20 fetches of 5000 x a 200 KB Communication: {before} -> {after} KiB")
    assert after - before < 64 * 1024, f"RSS went from {before} KiB to {after} KiB"


async def test_backend_outage_maps_as_in_the_thrift_server(caplog: pytest.LogCaptureFixture) -> None:
    """A real Redis client with no server: fetch gets a ServicesException; getCommunicationIDs, which declares
    only NotImplementedException, a TApplicationException (not a NotImplementedException), over HTTP as over
    Thrift; and neither logs a traceback."""
    import redis.asyncio as aioredis
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper
    from conftest import unused_port
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from thrift.Thrift import TApplicationException

    from aioaccess import FetchCommunicationServiceWrapper, RedisHashBackedCommunicationContainer

    client = aioredis.Redis(host="127.0.0.1", port=unused_port(), socket_connect_timeout=2, retry=Retry(NoBackoff(), 0))
    handler = CommunicationContainerFetchHandler(RedisHashBackedCommunicationContainer(client, "comms", timeout=5))
    try:
        async with serve_http(fetch_handler=handler) as server, _session() as session, \
                FetchCommunicationServiceWrapper(handler).serving() as listener:
            env = Env(server.url, session, "", "", "")
            status, headers, reply = await send(env, "fetch", fetch_call(["a"]))
            doc = check_reply(status, headers, reply, "fetch")
            assert doc[2] == 2 and "redis backend unavailable" in doc[4]["1"]["rec"]["1"]["str"], reply
            status, _, reply = await send(env, "fetch", b'[1,"getCommunicationIDs",1,3,{"1":{"i64":0},"2":{"i64":9}}]')
            doc = json.loads(reply)
            assert status == 200 and doc[2] == 3 and doc[4]["2"]["i32"] == INTERNAL_ERROR, reply
            assert "redis backend unavailable" in doc[4]["1"]["str"]

            def over_thrift() -> TApplicationException:
                with FetchCommunicationClientWrapper("127.0.0.1", listener.bound_port) as thrift_client:
                    with pytest.raises(TApplicationException) as raised:
                        thrift_client.getCommunicationIDs(0, 9)
                    return raised.value

            assert (await asyncio.to_thread(over_thrift)).type == INTERNAL_ERROR
    finally:
        await client.aclose()
    no_errors(caplog, 0, "outage")
