"""Hostile frames against live servers: each closes its connection or gets a Thrift exception, nobody else notices.

Inputs come from hypothesis: garbage bytes, valid lengths with garbage,
negative and absurd lengths, truncated frames, wrong protocol ids and versions,
unknown methods, deep nesting and huge declared container sizes inside
otherwise valid ``fetch``/``store`` frames, and random byte flips of valid
frames.  Every input goes on its own connection, which is then half-closed: the
server must answer with whole, well-formed REPLY/EXCEPTION frames (or nothing)
and close.  After every batch concrete-python's client still gets the right
Communications.
"""

from __future__ import annotations

import os
import random
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from _reliability import (
    AioaccessProcess,
    ThreadedServer,
    add_figure,
    call_frame,
    concrete_fetch,
    drain_replies,
    rss_kb,
    set_figure,
    walk_files,
)
from concrete.util import read_communication_from_file
from concrete.util import write_communication_to_buffer as cp_write
from concrete.util import write_communication_to_file as cp_write_file
from conftest import concrete_comms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    DirectoryBackedStoreHandler,
    FetchCommunicationServiceWrapper,
    ServerConfig,
    StoreCommunicationServiceWrapper,
)
from aioaccess.wire.messages import encode_varint

MAX_FRAME = 1 << 20
IDS = [f"comm-{i}" for i in range(8)]
FUZZ_SETTINGS = settings(max_examples=int(os.environ.get("AIOACCESS_FUZZ_EXAMPLES", "400")), deadline=None,
                         database=None, suppress_health_check=list(HealthCheck))


def _fetch_body(ids: list[str]) -> bytes:
    # fetch_args{1: FetchRequest{1: list<string>}}
    body = b"\x1c\x19" + (bytes(((len(ids) << 4) | 8,)) if len(ids) < 15 else b"\xf8" + encode_varint(len(ids)))
    for i in ids:
        raw = i.encode()
        body += encode_varint(len(raw)) + raw
    return body + b"\x00\x00"


VALID_FETCH = call_frame("fetch", _fetch_body(IDS[:3]), seqid=7)
VALID_STORE = call_frame("store", b"\x1c" + cp_write(concrete_comms(1, "stored")[0]) + b"\x00", seqid=9)
METHODS = ["fetch", "store", "about", "alive", "getCommunicationCount", "getCommunicationIDs"]


def _framed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def _nested(depth: int, kind: int) -> bytes:
    # depth levels of struct fields (kind 0) or list<list<...>> headers (kind 1) inside fetch_args.request
    if kind == 0:
        return b"\x1c" * depth
    return b"\x1c\x19" + b"\x19" * depth


@st.composite
def hostile_frames(draw: Any) -> bytes:
    kind = draw(st.sampled_from([
        "garbage", "framed-garbage", "absurd-length", "truncated", "protocol-id", "version", "message-type",
        "unknown-method", "deep", "huge-container", "huge-string", "flip", "method-garbage", "pipelined",
    ]))
    valid = draw(st.sampled_from([VALID_FETCH, VALID_STORE]))
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=512))
    if kind == "framed-garbage":
        return _framed(draw(st.binary(min_size=0, max_size=512)))
    if kind == "absurd-length":
        size = draw(st.one_of(st.integers(MAX_FRAME + 1, 2**32 - 1), st.integers(2**31, 2**32 - 1), st.just(0)))
        return struct.pack(">I", size) + draw(st.binary(max_size=64))
    if kind == "truncated":
        return valid[: draw(st.integers(1, len(valid) - 1))]
    if kind == "protocol-id":
        return valid[:4] + bytes((draw(st.integers(0, 255).filter(lambda b: b != 0x82)),)) + valid[5:]
    if kind == "version":
        return valid[:5] + bytes(((valid[5] & 0xE0) | draw(st.integers(0, 31).filter(lambda v: v != 1)),)) + valid[6:]
    if kind == "message-type":
        return valid[:5] + bytes(((draw(st.integers(0, 7).filter(lambda t: t not in (1, 4))) << 5) | 1,)) + valid[6:]
    if kind == "unknown-method":
        name = draw(st.text(min_size=0, max_size=40).filter(lambda n: n not in METHODS))
        return call_frame(name, draw(st.binary(max_size=64)))
    if kind == "deep":
        method = draw(st.sampled_from(["fetch", "store"]))
        return call_frame(method, _nested(draw(st.integers(50, 20_000)), draw(st.integers(0, 1))))
    if kind == "huge-container":
        method = draw(st.sampled_from(["fetch", "store"]))
        size = encode_varint(draw(st.integers(15, 2**35)))
        ctype = draw(st.sampled_from([b"\x19\xf8", b"\x19\xfc", b"\x1a\xfb", b"\x1b"]))
        tail = draw(st.binary(max_size=32))
        if ctype == b"\x1b":  # map: varint size then key/value types
            return call_frame(method, b"\x1c" + ctype + size + b"\x88" + tail)
        return call_frame(method, b"\x1c" + ctype + size + tail)
    if kind == "huge-string":
        method = draw(st.sampled_from(["fetch", "store"]))
        return call_frame(method, b"\x1c\x18" + encode_varint(draw(st.integers(1, 2**35))) + b"abc")
    if kind == "flip":
        buf = bytearray(valid)
        for _ in range(draw(st.integers(1, 8))):
            pos = draw(st.integers(4, len(buf) - 1))
            buf[pos] = draw(st.integers(0, 255))
        return bytes(buf)
    if kind == "method-garbage":
        return call_frame(draw(st.sampled_from(METHODS)), draw(st.binary(max_size=256)),
                          seqid=draw(st.integers(0, 2**31 - 1)))
    # pipelined: a valid call, then garbage on the same connection
    return VALID_FETCH + draw(st.binary(min_size=1, max_size=128))


def _check_one(port: int, data: bytes) -> None:
    closed, _kinds = drain_replies(port, data)
    assert closed, f"server neither answered nor closed on {data[:80]!r}"
    add_figure("bad_inputs_tried")


def _check_well_behaved(port: int, comms: dict[str, Any]) -> None:
    got = concrete_fetch(port, IDS)
    assert [c.id for c in got] == IDS
    for comm in got:
        assert comm.text == comms[comm.id].text


@pytest.fixture
def fuzz_dir(tmp_path: Any) -> tuple[str, dict[str, Any]]:
    path = tmp_path / "comms"
    path.mkdir()
    comms = {c.id: c for c in concrete_comms(len(IDS))}
    for comm in comms.values():
        cp_write_file(comm, os.fspath(path / f"{comm.id}.comm"))
    return os.fspath(path), comms


def _run_batches(port: int, comms: dict[str, Any], batches: int) -> None:
    for _ in range(batches):
        @FUZZ_SETTINGS
        @given(hostile_frames())
        def batch(data: bytes) -> None:
            _check_one(port, data)

        batch()
        _check_well_behaved(port, comms)


def test_fuzzed_frames_in_process_fetch_server(fuzz_dir: tuple[str, dict[str, Any]]) -> None:
    path, comms = fuzz_dir
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(path))
    wrapper = FetchCommunicationServiceWrapper(handler, config=ServerConfig(max_frame_size=MAX_FRAME, idle_timeout=5))
    with ThreadedServer(wrapper) as server:
        _run_batches(server.port, comms, 2)


def test_fuzzed_frames_in_process_store_server(tmp_path: Any) -> None:
    store = tmp_path / "store"
    store.mkdir()
    handler = DirectoryBackedStoreHandler(os.fspath(store), fsync=False)
    wrapper = StoreCommunicationServiceWrapper(handler, config=ServerConfig(max_frame_size=MAX_FRAME, idle_timeout=5))
    with ThreadedServer(wrapper) as server:

        @FUZZ_SETTINGS
        @given(hostile_frames())
        def batch(data: bytes) -> None:
            _check_one(server.port, data)

        batch()
        # A well-behaved store still works, and nothing but whole .comm files landed, all inside the store.
        closed, kinds = drain_replies(server.port, VALID_STORE)
        assert closed and kinds == [2]
    for path in walk_files(os.fspath(tmp_path)):
        assert os.path.dirname(path) == os.fspath(store), path
        if path.endswith(".comm"):
            read_communication_from_file(path)
    assert os.path.exists(store / "stored-0.comm")


def test_specific_hostile_frames_answer_or_close(fuzz_dir: tuple[str, dict[str, Any]]) -> None:
    """The named cases, each with the outcome it must have."""
    path, comms = fuzz_dir
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(path))
    wrapper = FetchCommunicationServiceWrapper(handler, config=ServerConfig(max_frame_size=MAX_FRAME, idle_timeout=5))
    exception, reply = 3, 2
    cases: list[tuple[bytes, list[int] | None]] = [
        (b"\xff\xff\xff\xf0" + b"x" * 16, []),  # negative length: closed, no reply
        (struct.pack(">I", MAX_FRAME + 1), []),  # over the limit: refused before buffering
        (b"\x00\x00\x00\x00", []),  # zero length
        (b"GET / HTTP/1.1\r\n\r\n", []),  # another protocol
        (_framed(b"\x80\x01\x00\x01" + b"\x00" * 12), []),  # binary protocol id
        (call_frame("nope", b"\x00"), [exception]),  # unknown method
        (call_frame("fetch", b"\x1c" * 5000), [exception]),  # deep nesting
        (call_frame("fetch", b"\x1c\x19\xf8" + encode_varint(2**31 - 1) + b"\x00"), [exception]),  # huge list
        (call_frame("fetch", b"\x1c\x1b" + encode_varint(2**30) + b"\x88\x00"), [exception]),  # huge map
        (call_frame("fetch", b"\x00"), [exception]),  # no FetchRequest at all
        (call_frame("fetch", b"\x1c\x00\x00"), [reply]),  # empty FetchRequest: no ids, empty result
        (VALID_FETCH[:-3], []),  # truncated: closed at EOF
        # A good call and a bad length in one read: answered or not, then closed.
        (VALID_FETCH + b"\xff\xff\xff\xff", None),
    ]
    with ThreadedServer(wrapper) as server:
        for data, expected in cases:
            closed, kinds = drain_replies(server.port, data)
            assert closed, data[:40]
            assert kinds == expected or (expected is None and kinds in ([], [reply])), (data[:40], kinds)
            add_figure("bad_inputs_tried")
        _check_well_behaved(server.port, comms)


@pytest.mark.slow
def test_fuzzed_frames_subprocess_fetch_server_rss_bounded(fuzz_dir: tuple[str, dict[str, Any]]) -> None:
    path, comms = fuzz_dir
    with AioaccessProcess("fetch-server", path, "--max-frame-size", str(MAX_FRAME), "--idle-timeout", "5") as server:
        _check_well_behaved(server.port, comms)
        before = rss_kb(server.pid)
        _run_batches(server.port, comms, 3)
        # Frames up to the limit, declared and then abandoned mid-way, on many connections.
        for _ in range(50):
            closed, kinds = drain_replies(server.port, struct.pack(">I", MAX_FRAME) + b"\x82" * (MAX_FRAME // 2))
            assert closed and kinds == []
            add_figure("bad_inputs_tried")
        _check_well_behaved(server.port, comms)
        after = rss_kb(server.pid)
        assert server.alive()
    set_figure("fuzz_rss_kb", {"before": before, "after": after})
    assert after - before < 100 * 1024, f"RSS grew from {before} KiB to {after} KiB under fuzzing"


def test_fetch_of_many_unknown_ids_costs_one_log_line(fuzz_dir: tuple[str, dict[str, Any]]) -> None:
    """Regression: one warning per unknown id turned a 1.4 MB fetch into 200k log records.

    (A 15 MB frame of 2M unknown ids blocked the server's loop for ~40 s and wrote
    ~200 MB of log; the handler now logs one line per call.)
    """
    path, comms = fuzz_dir
    n = 200_000
    body = b"\x1c\x19\xf8" + encode_varint(n)
    body += b"".join(encode_varint(7) + b"no-%04d" % (i % 10_000) for i in range(n)) + b"\x00\x00"
    with AioaccessProcess("fetch-server", path) as server:
        closed, kinds = drain_replies(server.port, call_frame("fetch", body), timeout=60)
        assert closed and kinds == [2]
        _check_well_behaved(server.port, comms)
        log_bytes = os.path.getsize(server.log_path)
    add_figure("bad_inputs_tried")
    assert log_bytes < 64 * 1024, f"{log_bytes} bytes of log for one fetch of {n} unknown ids"


def test_fetch_repeating_one_big_id_is_refused_before_allocating(tmp_path: Any) -> None:
    """Regression: a 6 KB request repeating a 1 MB id 1,500 times made the server allocate a 1.5 GB reply.

    A fetch reply of several Communications is capped (1 GiB by default): the
    caller gets a ServicesException saying so, the server's memory stays put.
    """
    from concrete.access.ttypes import FetchRequest
    from concrete.services.ttypes import ServicesException
    from concrete.util import create_comm
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper

    comm = create_comm("big", "")
    comm.text = "x" * 1_000_000
    cp_write_file(comm, os.fspath(tmp_path / "big.comm"))
    with AioaccessProcess("fetch-server", os.fspath(tmp_path)) as server:
        before = rss_kb(server.pid)
        with FetchCommunicationClientWrapper("127.0.0.1", server.port) as client:
            with pytest.raises(ServicesException, match="over this server's limit"):
                client.fetch(FetchRequest(communicationIds=["big"] * 1500))
            add_figure("bad_inputs_tried")
            assert [c.id for c in client.fetch(FetchRequest(communicationIds=["big"] * 3)).communications] == [
                "big"] * 3
        after = rss_kb(server.pid)
    assert after - before < 100 * 1024, f"RSS went from {before} KiB to {after} KiB"


def test_reply_cap_is_per_processor(tmp_path: Any) -> None:
    from concrete.access.ttypes import FetchRequest
    from concrete.services.ttypes import ServicesException
    from concrete.util import create_comm
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper

    from aioaccess.schema import FetchCommunicationService
    from aioaccess.server import Processor

    comm = create_comm("mid", "")
    comm.text = "y" * 100_000
    cp_write_file(comm, os.fspath(tmp_path / "mid.comm"))
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(os.fspath(tmp_path)))
    wrapper = FetchCommunicationServiceWrapper(handler)
    wrapper.processor = Processor(FetchCommunicationService, handler, max_reply_size=1_000_000)
    with ThreadedServer(wrapper) as server, FetchCommunicationClientWrapper("127.0.0.1", server.port) as client:
        assert len(client.fetch(FetchRequest(communicationIds=["mid"] * 9)).communications) == 9
        with pytest.raises(ServicesException, match="limit of 1000000"):
            client.fetch(FetchRequest(communicationIds=["mid"] * 11))
        assert len(client.fetch(FetchRequest(communicationIds=["mid"])).communications) == 1


@pytest.mark.slow
def test_fuzzed_frames_subprocess_store_server(tmp_path: Any) -> None:
    """The CLI store-server under the same fuzz: only whole, decodable .comm files land, all inside the store."""
    store = tmp_path / "store"
    store.mkdir()
    args = ("store-server", os.fspath(store), "--no-fsync", "--max-frame-size", str(MAX_FRAME), "--idle-timeout", "5")
    with AioaccessProcess(*args) as server:
        before = rss_kb(server.pid)

        @FUZZ_SETTINGS
        @given(hostile_frames())
        def batch(data: bytes) -> None:
            _check_one(server.port, data)

        batch()
        closed, kinds = drain_replies(server.port, VALID_STORE)
        assert closed and kinds == [2]
        after = rss_kb(server.pid)
        assert server.alive()
    set_figure("store_fuzz_rss_kb", {"before": before, "after": after})
    for path in walk_files(os.fspath(tmp_path)):
        assert os.path.dirname(path) == os.fspath(store), path
        assert path.endswith(".comm"), path
        read_communication_from_file(path)
    assert after - before < 100 * 1024


def _random_hostile(rng: random.Random) -> bytes:
    """A quick hostile frame without hypothesis (usable from many threads)."""
    valid = rng.choice([VALID_FETCH, VALID_STORE])
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 300))
    if kind == 1:
        return _framed(rng.randbytes(rng.randint(0, 300)))
    if kind == 2:
        return valid[: rng.randint(1, len(valid) - 1)]
    if kind == 3:
        return call_frame(rng.choice(["fetch", "store"]), _nested(rng.randint(50, 5000), rng.randint(0, 1)))
    buf = bytearray(valid)
    for _ in range(rng.randint(1, 8)):
        buf[rng.randrange(4, len(buf))] = rng.randrange(256)
    return bytes(buf)


@pytest.mark.slow
def test_hostile_flood_from_many_threads_while_a_good_client_is_served(
        fuzz_dir: tuple[str, dict[str, Any]]) -> None:
    """Eight attackers at once; a concrete-python client fetching all the while never sees an error."""
    path, comms = fuzz_dir
    stop = threading.Event()
    tried = [0] * 8
    good_calls = 0

    def attacker(k: int) -> None:
        rng = random.Random(k)
        while not stop.is_set() and tried[k] < 300:
            closed, _ = drain_replies(server.port, _random_hostile(rng))
            assert closed
            tried[k] += 1

    with AioaccessProcess("fetch-server", path, "--max-frame-size", str(MAX_FRAME), "--idle-timeout", "5") as server:
        before = rss_kb(server.pid)
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(attacker, k) for k in range(8)]
            while not all(f.done() for f in futures):
                _check_well_behaved(server.port, comms)
                good_calls += 1
            for f in futures:
                f.result()
        after = rss_kb(server.pid)
        assert server.alive()
    add_figure("bad_inputs_tried", sum(tried))
    set_figure("concurrent_flood", {"attackers": 8, "bad_inputs": sum(tried), "good_calls_all_correct": good_calls,
                                    "rss_kb_before": before, "rss_kb_after": after})
    assert good_calls > 0
    assert after - before < 100 * 1024


@pytest.mark.slow
def test_fuzzed_frames_through_a_relay_server(fuzz_dir: tuple[str, dict[str, Any]]) -> None:
    """A relay-server in front of a fetch-server: hostile frames stop at (or pass through) it; both stay healthy."""
    path, comms = fuzz_dir
    limits = ("--max-frame-size", str(MAX_FRAME), "--idle-timeout", "5")
    with AioaccessProcess("fetch-server", path, *limits) as upstream, \
            AioaccessProcess("relay-server", *limits, "--upstream-timeout", "10", "127.0.0.1",
                             str(upstream.port)) as relay:
        _check_well_behaved(relay.port, comms)
        before = rss_kb(relay.pid)

        @FUZZ_SETTINGS
        @given(hostile_frames())
        def batch(data: bytes) -> None:
            _check_one(relay.port, data)

        batch()
        _check_well_behaved(relay.port, comms)
        _check_well_behaved(upstream.port, comms)
        after = rss_kb(relay.pid)
        assert relay.alive() and upstream.alive()
    set_figure("relay_fuzz_rss_kb", {"before": before, "after": after})
    assert after - before < 100 * 1024
