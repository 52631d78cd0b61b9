"""Hostile input against the HTTP/TJSON endpoint: every request gets a well-formed answer, nobody else notices.

A real server (``serve_http`` on a free port) with a directory-backed fetch
handler and a directory-backed store handler takes, through aiohttp's client,
Apache-TJSON ``fetch``/``store`` calls (written by Apache Thrift's own
TJSONProtocol, as concrete-python's HTTP clients write them) mutated every way
hypothesis can draw: truncated, bytes flipped or inserted, nested 100k deep,
huge numbers, values of the wrong type, invalid UTF-8 and lone surrogates, bad
base64, unknown methods, wrong message types, duplicate fields, absurd list
sizes; sent plain, chunked or gzipped.  Raw sockets add what aiohttp's client
cannot send (malformed HTTP).  The bar, checked after every request: a 200
carrying a TJSON REPLY or TApplicationException (never INTERNAL_ERROR), or a
4xx with a one-line reason; never a 500 or a traceback; nothing logged at
ERROR; a valid fetch still answered; nothing written outside the store.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import io
import json
import logging
import os
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any, NamedTuple

import aiohttp
import pytest
from concrete.access.FetchCommunicationService import fetch_args
from concrete.access.StoreCommunicationService import store_args
from concrete.access.ttypes import FetchRequest
from concrete.audio.ttypes import Sound
from concrete.util import create_comm, read_communication_from_file, write_communication_to_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
     _exc(7, "nested too deeply")),  # the call's head is readable: a TApplicationException (http.cors)
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
    ("store, Communication without its uuid", "store", NO_UUID,
     ("declared", 0, "Communication.uuid (field 2) is required but missing")),
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
    ("args a list", "fetch", b'[1,"getCommunicationCount",1,1,[]]', _exc(7, "not a struct")),
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
    ("trailing garbage", "fetch", b'[1,"getCommunicationCount",1,1,{}]]', _exc(7, "malformed JSON")),
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
    # inflates to a truncated call whose head is readable: a TApplicationException (http.cors), or a 400
    ("truncated gzip", http_request(gzip.compress(V)[:-12], {"Content-Encoding": "gzip"}), (200, 400)),
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
    ("no Content-Type", http_request(headers={"Content-Type": None}), (200,)),  # fetch takes any (http.cors)
    ("text/plain", http_request(headers={"Content-Type": "text/plain"}), (200,)),
    ("multipart", http_request(headers={"Content-Type": "multipart/form-data; boundary=x"}), (200,)),
    ("store, text/plain, not TJSON", http_request(b"x", {"Content-Type": "text/plain"}, path="/store_http_endpoint/"),
     (415,)),
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
        assert json.loads(body)[2] in (2, 3), body[:300]  # a reply, or an exception naming the call
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


# -- the fuzz: hostile input drawn from an rng (random.Random, or hypothesis through _Draws) -------------------------
FUZZ_SETTINGS = settings(max_examples=int(os.environ.get("AIOACCESS_FUZZ_EXAMPLES", "500")), deadline=None,
                         database=None, suppress_health_check=list(HealthCheck))
#: What each kind of hostile input was tried, over the module (printed by the RSS test; see the report).
TRIED: Counter[str] = Counter()


def _rich_comm(comm_id: str) -> Any:
    """A Communication using every TJSON shape: strings, i64, lists of structs, a map, binary."""
    from concrete.language.ttypes import LanguageIdentification
    from concrete.metadata.ttypes import AnnotationMetadata
    from concrete.uuid.ttypes import UUID

    comm = create_comm(comm_id, "Grüße ☃ 東京 🎉 \"q\" \\ \t\n\x01 text.\n\nSecond section.")
    comm.keyValueMap = {"k": "v", "ü": "☃"}
    comm.sound = Sound(wav=b"\x00\xff\xfe binary \x01")
    comm.startTime = 2**40
    comm.lidList = [LanguageIdentification(uuid=UUID(uuidString="u-1"), metadata=AnnotationMetadata(
        tool="t", timestamp=1), languageToProbabilityMap={"eng": 0.75, "deu": 0.25})]
    return comm


VALID_STORE = store_call(_rich_comm("fuzz-stored"))
OTHER_CALLS = [b'[1,"getCommunicationCount",1,3,{}]', b'[1,"getCommunicationIDs",1,4,{"1":{"i64":1},"2":{"i64":2}}]',
               b'[1,"about",1,5,{}]', b'[1,"alive",1,6,{}]']


class _Draws:
    """random.Random's few methods the generators use, drawn by hypothesis (so failures shrink)."""

    def __init__(self, draw: Any) -> None:
        self.draw = draw

    def randint(self, a: int, b: int) -> int:
        return int(self.draw(st.integers(a, b)))

    def choice(self, seq: Any) -> Any:
        return self.draw(st.sampled_from(seq))

    def randbytes(self, n: int) -> bytes:
        return bytes(self.draw(st.binary(min_size=n, max_size=n)))

    def random(self) -> float:
        return self.randint(0, 1 << 20) / (1 << 20)


TRICKY_STRINGS = ["", "fetch", "store", "..", "../x", "/etc/passwd", "\x00", "\ud800", "\udfff", "\ud83c", "☃", "🎉",
                  "a" * 300, "\\", "\"", "1", "-1", "1e999", "NaN", "rec", "str", "lst", "i64", "tf", "==", "%%%",
                  "AAAA", "A", "\u2215etc", "\u202e", "\ufeff", "\x7f"]
TRICKY_NUMBERS = ["1e999", "-1e999", "1" * 4300, "1" * 4301, "-" + "9" * 400, "0." + "0" * 400 + "1", "-0", "1.5",
                  "9" * 20, "Infinity", "-Infinity", "NaN", "1E+308", "4.9e-324", "2e308", "00", "0x10", "+1",
                  str(2**63), str(-2**63 - 1), str(2**64), str(2**31), "1" * 100_000]
TRICKY_INTS = [-1, 0, 1, 2, 3, 2**31 - 1, 2**31, 2**53 + 1, 2**62, 2**63, -2**63 - 1, 10**30, 10**400]
BAD_UTF8 = [b"\xff", b"\xfe\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xe2\x82", b"\xf8\x88\x80\x80\x80",
            b"\x80", b"\xc3", b"\xf4\x90\x80\x80", b"\x00"]


def _text(rng: Any) -> str:
    if rng.randint(0, 2):
        return str(rng.choice(TRICKY_STRINGS))
    return "".join(chr(rng.randint(0, 0x10FFFF) if rng.randint(0, 3) == 0 else rng.randint(32, 126))
                   for _ in range(rng.randint(0, 12)))


def _json_value(rng: Any, depth: int = 0) -> Any:
    kind = rng.randint(0, 9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return bool(rng.randint(0, 1))
    if kind == 2:
        return rng.choice(TRICKY_INTS) * rng.choice([1, -1])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, float("inf"), float("-inf"), float("nan"), 1e-320])
    if kind in (4, 5, 6):
        return _text(rng)
    if kind in (7, 8):
        return [_json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {_text(rng): _json_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _paths(doc: Any) -> list[tuple[Any, ...]]:
    """Every path into a parsed JSON document (iterative: documents may be deep)."""
    out: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), doc)]
    while stack:
        path, value = stack.pop()
        out.append(path)
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in enumerate(value))
    out.sort(key=repr)
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def _positions(body: bytes, pattern: bytes) -> list[int]:
    return [m.start() for m in re.finditer(re.escape(pattern), body)] or [0]


KINDS = ["valid", "truncated", "flip", "insert-bytes", "bad-utf8", "deep", "deep-in-args", "number", "wrong-type",
         "delete", "surrogate", "base64", "unknown-method", "message-type", "header", "duplicate", "list-size",
         "json", "garbage", "empty", "other-endpoint", "over-limit"]


def hostile_body(rng: Any) -> tuple[str, str, bytes]:
    """(kind, endpoint 'fetch'|'store', body)."""
    kind = rng.choice(KINDS)
    endpoint = rng.choice(["fetch", "store"])
    valid = {"fetch": VALID_FETCH, "store": VALID_STORE}[endpoint]
    if endpoint == "fetch" and rng.randint(0, 3) == 0:
        valid = rng.choice(OTHER_CALLS)
    doc = json.loads(valid, strict=False)  # Apache leaves control characters unescaped
    if kind == "valid":
        return kind, endpoint, valid
    if kind == "truncated":
        return kind, endpoint, valid[: rng.randint(0, len(valid) - 1)]
    if kind == "flip":
        buf = bytearray(valid)
        for _ in range(rng.randint(1, 8)):
            buf[rng.randint(0, len(buf) - 1)] = rng.randint(0, 255)
        return kind, endpoint, bytes(buf)
    if kind in ("insert-bytes", "bad-utf8"):
        pos = rng.randint(0, len(valid))
        extra = rng.randbytes(rng.randint(1, 16)) if kind == "insert-bytes" else rng.choice(BAD_UTF8)
        if kind == "bad-utf8" and rng.randint(0, 1):  # inside a string, where JSON would otherwise accept it
            pos = rng.choice(_positions(valid, b'"')) + 1
        return kind, endpoint, valid[:pos] + extra + valid[pos:]
    if kind == "deep":
        depth = rng.choice([1_000, 5_000, 100_000, rng.randint(10, 120_000)])
        opener = rng.choice([b"[", b"{", b'{"a":', b'[1,"fetch",1,1,', b'{"1":{"rec":'])
        closer = {b"[": b"]", b"{": b"}", b'{"a":': b"}", b'[1,"fetch",1,1,': b"]", b'{"1":{"rec":': b"}}"}[opener]
        return kind, endpoint, opener * depth + b"1" + closer * (depth if rng.randint(0, 1) else 0)
    if kind == "deep-in-args":
        depth = rng.choice([900, 1_100, 100_000, rng.randint(10, 50_000)])
        head = valid[: valid.index(b"{")]
        return kind, endpoint, head + b'{"1":{"rec":{"1":{"lst":["str",1,' + b"[" * depth + b"]" * depth + b"]}}}}]"
    if kind == "number":
        numbers = [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?", valid)]
        start, end = rng.choice(numbers)
        return kind, endpoint, valid[:start] + rng.choice(TRICKY_NUMBERS).encode() + valid[end:]
    if kind in ("wrong-type", "delete"):
        path = rng.choice(_paths(doc))
        if kind == "delete" and path:
            return kind, endpoint, _dumps(_set(doc, path, None, delete=True))
        return kind, endpoint, _dumps(_set(doc, path, _json_value(rng)))
    if kind == "surrogate":
        pos = rng.choice(_positions(valid, b'"')) + 1
        escape = b"\\u%04x" % rng.randint(0xD800, 0xDFFF)
        return kind, endpoint, valid[:pos] + escape * rng.randint(1, 2) + valid[pos:]
    if kind == "base64":
        doc = json.loads(VALID_STORE, strict=False)
        doc[4]["1"]["rec"]["20"]["rec"]["1"]["str"] = rng.choice(["!!!!", "A", "AB=C", "====", "\u00e9\u00e9", "A\x00",
                                                                   "QUJD\n", "Q===", _text(rng)])
        return kind, "store", _dumps(doc)
    if kind == "unknown-method":
        name = _text(rng)
        return kind, endpoint, _dumps([1, name, 1, rng.randint(0, 2**31), _json_value(rng)])
    if kind == "message-type":
        mtype = rng.choice([0, 2, 3, 4, 5, -1, 2**40, 1.0, True, "1", None])
        return kind, endpoint, _dumps([doc[0], doc[1], mtype, *doc[3:]])
    if kind == "header":
        i = rng.randint(0, len(doc) - 1)
        return kind, endpoint, _dumps(doc[:i] + [_json_value(rng)] + doc[i + 1:] if rng.randint(0, 3) else doc[:i])
    if kind == "duplicate":
        pos = rng.choice(_positions(valid, b"{")) + 1
        field = b'"%d":%s,' % (rng.randint(0, 21), _dumps(_json_value(rng)) if rng.randint(0, 1) else b'{"i32":5}')
        return kind, endpoint, valid[:pos] + field + valid[pos:]
    if kind == "list-size":
        lists = [m.end() for m in re.finditer(rb'\["(str|rec|i64|dbl)",', valid)]
        if not lists:
            return kind, endpoint, _dumps(doc[:4] + [{"1": {"rec": {"1": {"lst": ["str", 2**62]}}}}])
        pos = rng.choice(lists)
        end = valid.index(b",", pos) if b"," in valid[pos:] else valid.index(b"]", pos)
        size = str(rng.choice(TRICKY_INTS) * rng.choice([1, -1])).encode()
        return kind, endpoint, valid[:pos] + size + valid[min(end, valid.index(b"]", pos)):]
    if kind == "json":
        return kind, endpoint, _dumps(_json_value(rng))
    if kind == "garbage":
        return kind, endpoint, rng.randbytes(rng.randint(1, 200))
    if kind == "empty":
        return kind, endpoint, rng.choice([b"", b" ", b"\n", b"null", b"[]", b"{}", b"\xef\xbb\xbf"])
    if kind == "other-endpoint":  # a store call on the fetch endpoint and the other way round
        return kind, "store" if valid is VALID_FETCH else "fetch", valid
    # over-limit: the limit exactly (still parsed: whitespace) or one byte over it
    size = LIMIT + rng.randint(0, 1)
    return kind, endpoint, VALID_FETCH + b" " * (size - len(VALID_FETCH))


class Hostile(NamedTuple):
    kind: str
    endpoint: str
    body: bytes
    how: str = "plain"

    def __repr__(self) -> str:  # bodies run to megabytes: show their ends
        body = self.body if len(self.body) <= 400 else self.body[:300] + b"..." + self.body[-100:]
        return f"Hostile({self.kind!r}, {self.endpoint!r}, {body!r} ({len(self.body)} bytes), {self.how!r})"


@st.composite
def hostile_requests(draw: Any) -> Hostile:
    kind, endpoint, body = hostile_body(_Draws(draw))
    return Hostile(kind, endpoint, body, draw(st.sampled_from(["plain", "plain", "chunked", "gzip"])))


def walk(root: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            yield os.path.join(dirpath, name)


def snapshot(root: str, skip: str) -> dict[str, bytes]:
    """Content of every file under ``root`` outside ``skip`` (links: their targets' paths)."""
    out = {}
    for path in walk(root):
        if os.path.dirname(path) == skip and not os.path.islink(path):
            continue
        if os.path.islink(path):
            out[path] = os.readlink(path).encode()
        else:
            with open(path, "rb") as f:
                out[path] = f.read()
    return out


@FUZZ_SETTINGS
@given(hostile_requests())
async def test_fuzzed_tjson_requests(env: Env, caplog: pytest.LogCaptureFixture, case: Hostile) -> None:
    kind, endpoint, body, how = case
    TRIED[kind] += 1
    since = len(caplog.records)
    status, headers, reply = await send(env, endpoint, body, how)
    doc = check_reply(status, headers, reply, case)
    if kind == "valid":
        assert doc is not None and doc[2] == 2, reply[:300]
    elif kind in ("deep", "empty", "garbage"):  # not a message: refused whole, or a TApplicationException
        refused = status in (400, 413) or (doc is not None and doc[2] == 3)
        assert refused, (case, status, reply[:300])
    elif kind == "over-limit" and len(body) > LIMIT:
        assert status == 413
    await check_alive(env)
    no_errors(caplog, since, case)


@pytest.fixture
def outside_before(env: Env) -> dict[str, bytes]:
    return snapshot(env.root, env.store)


@FUZZ_SETTINGS
@given(st.one_of(st.sampled_from(["..", "../x", "../../outside/victim", "/etc/passwd", "link", "dirlink/victim",
                                  "a/../../b", "..\\x", "\x00", "a\x00/../x", ".", "~", "\u2215x", "x" * 300,
                                  "é" * 126, "secret", "../secret", "\ufeffx", "\u202eevil", ""]),
                 st.text(min_size=0, max_size=40),
                 st.text(alphabet="./\\x\x00~", min_size=1, max_size=12)))
async def test_hostile_ids_store_nothing_outside(env: Env, caplog: pytest.LogCaptureFixture,
                                                 outside_before: dict[str, bytes], comm_id: str) -> None:
    TRIED["hostile-id"] += 1
    since = len(caplog.records)
    status, headers, reply = await send(env, "store", store_call(create_comm(comm_id, "hostile id")))
    doc = check_reply(status, headers, reply, comm_id)
    assert doc is not None and doc[2] == 2, (comm_id, reply[:300])
    if doc[4]:  # refused: a ServicesException saying why, and no file
        assert doc[4]["1"]["rec"]["1"]["str"], reply
    else:
        path = os.path.join(env.store, f"{comm_id}.comm")
        assert os.path.isfile(path) and not os.path.islink(path), comm_id
        assert read_communication_from_file(path).id == comm_id
    # ...and a fetch of the same id (and its traversals) reaches nothing outside the served directory.
    status, headers, reply = await send(env, "fetch", fetch_call([comm_id, f"../{comm_id}", "../outside/secret"]))
    doc = check_reply(status, headers, reply, comm_id)
    assert doc is not None and doc[2] == 2, (comm_id, reply[:300])
    assert {c["1"]["str"] for c in doc[4]["0"]["rec"]["1"]["lst"][2:]} <= set(IDS), (comm_id, reply[:300])
    assert snapshot(env.root, env.store) == outside_before
    check_store_dir(env)
    no_errors(caplog, since, comm_id)


# -- many at once, and memory ------------------------------------------------------------------------------------
async def test_hostile_flood_rss_bounded_and_good_client_served(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """Eight attackers at once, N hostile requests in all, while a good client fetches; RSS measured around them."""
    total = int(os.environ.get("AIOACCESS_HTTP_FLOOD", "2000"))
    kinds: Counter[str] = Counter()
    statuses: Counter[int] = Counter()

    async def attacker(seed: int, n: int) -> None:
        rng = random.Random(seed)
        for _ in range(n):
            kind, endpoint, body = hostile_body(rng)
            how = rng.choice(["plain", "plain", "chunked", "gzip"])
            status, headers, reply = await send(env, endpoint, body, how)
            check_reply(status, headers, reply, Hostile(kind, endpoint, body, how))
            kinds[kind] += 1
            statuses[status] += 1

    async def good_client(stop: asyncio.Event) -> int:
        calls = 0
        while not stop.is_set():
            await check_alive(env)
            calls += 1
        return calls

    await attacker(0, 200)  # warm-up: first-use allocations (codecs, parsers, connection buffers)
    before = rss_kib()
    stop = asyncio.Event()
    good = asyncio.create_task(good_client(stop))
    try:
        await asyncio.gather(*(attacker(seed, total // 8) for seed in range(1, 9)))
    finally:
        stop.set()
        good_calls = await good
    after = rss_kib()
    no_errors(caplog, 0, "flood")
    TRIED.update(kinds)
    print(f"\nhostile flood: {total // 8 * 8} requests by 8 attackers (after 200 to warm up), {good_calls} good "
          f"fetches all right; "
          f"RSS {before} -> {after} KiB ({after - before:+d}); statuses {dict(sorted(statuses.items()))}; "
          f"kinds tried over the module {dict(sorted(TRIED.items()))}")
    assert good_calls > 0
    assert after - before < 64 * 1024, f"RSS grew from {before} KiB to {after} KiB under the flood"
    check_store_dir(env)
