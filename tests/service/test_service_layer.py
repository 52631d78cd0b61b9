"""The service layer: one method table and failure map under every transport, one fetch route, and a
FastFetch read from the container when the server starts, never when a client connects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms
from hypothesis import given, settings
from hypothesis import strategies as st

from aioaccess import codec
from aioaccess.backends.base import CommunicationContainer
from aioaccess.client import FetchCommunicationClient
from aioaccess.codec import tjson
from aioaccess.exceptions import BackendUnavailable, ProtocolError
from aioaccess.handlers.fetch import CommunicationContainerFetchHandler
from aioaccess.schema import FetchCommunicationService, FetchResult
from aioaccess.server import Processor, Server, ServerConfig
from aioaccess.service import RelayedCalls, Service
from aioaccess.service.tjson import TJSONCalls
from aioaccess.wire import fetch_call
from aioaccess.wire.messages import CALL, EXCEPTION, REPLY, WRITEV_FROM, build_message, encode_varint, parse_header

COMMS = {c.id: cp_write(c) for c in concrete_comms(4, prefix="svc")}


class CountingTable(CommunicationContainer):
    """A container whose table holds everything; counts how often the server asks for the table and reads."""

    INLINE_SAFE = True
    VALIDATE_ON_READ = False

    def __init__(self, comms: dict[str, bytes]) -> None:
        self.raw_table = dict(comms)
        self.table_asks = 0
        self.reads: list[list[str]] = []

    def current_raw_table(self) -> dict[str, bytes]:
        self.table_asks += 1
        return self.raw_table

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        self.reads.append(list(ids))
        return {i: self.raw_table[i] for i in ids if i in self.raw_table}

    async def _iter_ids(self) -> Any:
        for i in list(self.raw_table):
            yield i

    async def _count(self) -> int:
        return len(self.raw_table)


async def test_connections_never_reach_into_the_container() -> None:
    container = CountingTable(COMMS)
    server = Server(ServerConfig(graceful_timeout=1.0))
    listener = server.add_service(Processor(FetchCommunicationService, CommunicationContainerFetchHandler(container)),
                                  "127.0.0.1", 0)
    await server.startup()
    try:
        asks_at_start = container.table_asks
        assert asks_at_start >= 1
        for _ in range(3):
            async with FetchCommunicationClient.connect("127.0.0.1", listener.bound_port) as client:
                assert await client.fetch_raw(["svc-1"]) == [COMMS["svc-1"]]
        assert container.table_asks == asks_at_start  # three connections, no new look into the container
        assert container.reads == []  # every fetch was answered from the table
    finally:
        await server.shutdown()


class BigTable:
    """fetch_raw over a dict, nothing else (no table for the connection)."""

    def __init__(self, comms: dict[str, bytes]) -> None:
        self.comms = comms

    async def fetch_raw(self, ids: Sequence[str]) -> list[bytes]:
        return [self.comms[i] for i in ids if i in self.comms]


def fetch_msg(ids: list[str], seqid: int = 3) -> bytes:
    body = b"\x1c\x19" + bytes(((len(ids) << 4) | 8,)) + b"".join(
        encode_varint(len(i.encode())) + i.encode() for i in ids) + b"\x00\x00"
    return build_message("fetch", CALL, seqid, body)[4:]


async def test_metrics_do_not_change_the_route_a_call_takes() -> None:
    big = {"a": b"\x0b\x00\x01" + encode_varint(WRITEV_FROM) + b"x" * WRITEV_FROM + b"\x00"}
    plain = Processor(FetchCommunicationService, BigTable(big))
    seen: list[tuple[str, str, int]] = []
    watched = Processor(FetchCommunicationService, BigTable(big),
                        observer=lambda method, outcome, seconds, size: seen.append((method, outcome, size)))
    large = fetch_msg(["a"])
    replies = [await p.process(large) for p in (plain, watched)]
    assert type(replies[0]) is list and replies[0] == replies[1]  # written unjoined either way
    assert seen == [("fetch", "ok", sum(map(len, replies[1])))]
    truncated = fetch_msg(["abcdef"])[:-6]
    for p in (plain, watched):
        with pytest.raises(ProtocolError):  # the same answer: the connection is closed
            await p.process(truncated)


class Failing:
    """Every method fails with an outage."""

    async def fetch(self, request: Any) -> FetchResult:
        raise BackendUnavailable("test", "the backend is down")

    async def getCommunicationCount(self) -> int:
        raise BackendUnavailable("test", "the backend is down")


async def test_compact_and_tjson_map_failures_alike() -> None:
    """One failure map: an outage is a ServicesException where declared (fetch), else an INTERNAL_ERROR (never
    getCommunicationCount's NotImplementedException), over compact and TJSON alike."""
    processor = Processor(FetchCommunicationService, Failing())
    compact = await processor.process(build_message("fetch", CALL, 1, b"\x1c\x19\x18\x01a\x00\x00")[4:])
    header = parse_header(compact[4:])
    result = codec.decode(compact[4:], FetchCommunicationService.fetch_result, header.body_offset)[0]
    assert header.mtype == REPLY and "the backend is down" in result.ex.message
    compact = await processor.process(build_message("getCommunicationCount", CALL, 2, b"\x00")[4:])
    assert parse_header(compact[4:]).mtype == EXCEPTION and b"the backend is down" in compact
    calls = TJSONCalls(Service(FetchCommunicationService, Failing()))
    reply = json.loads(await calls.answer(tjson.parse_message(
        b'[1,"fetch",1,1,{"1":{"rec":{"1":{"lst":["str",1,"a"]}}}}]')))
    assert reply[2] == 2 and "the backend is down" in reply[4]["1"]["rec"]["1"]["str"]
    reply = json.loads(await calls.answer(tjson.parse_message(b'[1,"getCommunicationCount",1,2,{}]')))
    assert reply[2] == 3 and "the backend is down" in reply[4]["1"]["str"]
    assert set(calls.methods) == {"fetch", "getCommunicationCount"}


def test_only_a_message_relay_is_relayed() -> None:
    with pytest.raises(TypeError, match="MessageRelay"):
        RelayedCalls(Service(FetchCommunicationService, BigTable({})))


def test_capabilities_come_from_the_typed_protocols() -> None:
    handler = CommunicationContainerFetchHandler(CountingTable(COMMS))
    service = Service(FetchCommunicationService, handler)
    assert service.raw_fetch and service.inline and not service.task_free and not service.raw_store
    plain = Service(FetchCommunicationService, Failing())
    assert not (plain.raw_fetch or plain.inline or plain.task_free)
    assert asyncio.run(_fast_of(service)) is not None
    assert asyncio.run(_fast_of(plain)) is None


async def _fast_of(service: Service) -> Any:
    return service.fast_fetch()


@pytest.mark.skipif(codec.IMPLEMENTATION != "c", reason="the compiled codec is not active")
@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.text(max_size=130), max_size=16), seqid=st.integers(0, 2**32 - 1),
       cut=st.integers(0, 40), junk=st.binary(max_size=3))
def test_the_two_twins_of_the_fetch_call_parse_agree(ids: list[str], seqid: int, cut: int, junk: bytes) -> None:
    from aioaccess.codec import _speedups  # type: ignore[attr-defined]

    msg = build_message("fetch", CALL, seqid, b"\x1c\x19" + (
        bytes(((len(ids) << 4) | 8,)) if len(ids) < 15 else b"\xf8" + encode_varint(len(ids))) + b"".join(
        encode_varint(len(i.encode())) + i.encode() for i in ids) + b"\x00\x00")
    for data, pos in ((msg, 4), (msg[4:], 0), (msg[: max(4, len(msg) - cut)], 4), (msg + junk, 4)):
        assert _speedups.usual_fetch_call(data, pos) == fetch_call._usual_fetch_call(data, pos)
    table = {i: COMMS["svc-0"] for i in ids}
    assert _speedups.fetch_reply_now(msg, table, 1 << 30, WRITEV_FROM) == fetch_call._fetch_reply_now(
        msg, table, 1 << 30, WRITEV_FROM)


def test_fetch_result_type_is_what_the_reply_holds() -> None:
    raw = fetch_call.fetch_reply_now(build_message("fetch", CALL, 7, b"\x1c\x19\x18\x05svc-1\x00\x00"),
                                     dict(COMMS), 1 << 30, WRITEV_FROM)
    assert raw is not None
    header = parse_header(raw[4:])
    result = codec.decode(raw[4:], FetchCommunicationService.fetch_result, header.body_offset)[0]
    assert isinstance(result.success, FetchResult) and [c.id for c in result.success.communications] == ["svc-1"]


async def test_tjson_fetch_needs_only_fetch_raw() -> None:
    """The TJSON adapter reads the same capabilities: a handler with fetch_raw alone answers fetch there too."""
    calls = TJSONCalls(Service(FetchCommunicationService, BigTable(dict(COMMS))))
    reply = json.loads(await calls.answer(tjson.parse_message(
        b'[1,"fetch",1,4,{"1":{"rec":{"1":{"lst":["str",2,"svc-2","nope"]}}}}]')))
    assert reply[:4] == [1, "fetch", 2, 4]
    comms = reply[4]["0"]["rec"]["1"]["lst"]
    assert comms[:2] == ["rec", 1] and comms[2]["1"]["str"] == "svc-2"
