"""The fetch fast path: a fetch of ids all in the container's ``raw_table`` is answered from it.

``fetch_reply_now`` (C and pure Python) must give exactly the general path's reply
whenever it answers at all; the connection must use it only when the answer is the
same as the handler's; subclasses that change ``fetch`` must still be heard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from concrete.access import FetchCommunicationService as CPFetchService
from concrete.access.ttypes import FetchRequest as CPFetchRequest
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_protocol import MockTransport, call, result_of
from thrift.protocol import TCompactProtocol
from thrift.transport import TTransport
from thrift.transport.TSocket import TSocket

from aioaccess import codec
from aioaccess.backends.base import CommunicationContainer
from aioaccess.backends.directory import DirectoryBackedCommunicationContainer
from aioaccess.handlers.fetch import CommunicationContainerFetchHandler
from aioaccess.schema import FetchCommunicationService, FetchRequest, FetchResult
from aioaccess.server import Processor, ServerConfig, ServerState
from aioaccess.server.protocol import FramedProtocol
from aioaccess.server.wrappers import FetchCommunicationServiceWrapper
from aioaccess.wire import messages
from aioaccess.wire.messages import DEFAULT_MAX_REPLY_SIZE, WRITEV_FROM, build_fetch_reply

COMMS = {c.id: cp_write(c) for c in concrete_comms(6, prefix="fp")}

IMPLS = [messages._fetch_reply_now]
if codec.IMPLEMENTATION == "c":
    from aioaccess.codec import _speedups  # type: ignore[attr-defined]

    IMPLS.append(_speedups.fetch_reply_now)
IMPLEMENTATIONS = [pytest.param(impl, id=impl.__module__.rsplit(".", 1)[-1]) for impl in IMPLS]


def cp_fetch_call(ids: list[str], seqid: int) -> bytes:
    """A framed fetch CALL exactly as concrete-python's client writes it."""
    buf = TTransport.TMemoryBuffer()
    client = CPFetchService.Client(TCompactProtocol.TCompactProtocol(buf))
    client._seqid = seqid
    client.send_fetch(CPFetchRequest(communicationIds=ids))
    payload = buf.getvalue()
    return len(payload).to_bytes(4, "big") + payload


class TableHandler:
    """fetch_raw over a dict, recording its calls; exposes the dict as ``raw_table`` when asked."""

    inline_safe = True

    def __init__(self, table: dict[str, bytes], expose: bool = True) -> None:
        self.table = table
        self.raw_table = table if expose else None
        self.calls: list[list[str]] = []

    async def fetch_raw(self, ids: Sequence[str]) -> list[bytes]:
        self.calls.append(list(ids))
        return [self.table[i] for i in ids if i in self.table]


async def general_reply(msg: bytes, table: dict[str, bytes], max_reply_size: int) -> bytes:
    """The framed reply the Processor gives without the fast path (``msg`` without its length prefix)."""
    processor = Processor(FetchCommunicationService, TableHandler(table, expose=False), max_reply_size=max_reply_size)
    reply = await processor.process(msg)
    assert isinstance(reply, bytes)
    return reply


ids_strategy = st.lists(
    st.one_of(st.sampled_from(sorted(COMMS)), st.text(max_size=8), st.text(min_size=120, max_size=140)),
    max_size=16,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=ids_strategy, seqid=st.integers(-(2**31), 2**31 - 1), known=st.sets(st.sampled_from(sorted(COMMS))),
       max_reply_size=st.sampled_from([DEFAULT_MAX_REPLY_SIZE, 8000, 100]))
@example(ids=["fp-1"], seqid=0, known={"fp-1"}, max_reply_size=DEFAULT_MAX_REPLY_SIZE)
@example(ids=["fp-1", "fp-2"], seqid=-1, known={"fp-1", "fp-2"}, max_reply_size=100)
@example(ids=[], seqid=2**31 - 1, known=set(), max_reply_size=100)
async def test_fast_reply_is_the_general_reply_or_nothing(ids: list[str], seqid: int, known: set[str],
                                                         max_reply_size: int) -> None:
    table = {i: COMMS[i] for i in known}
    data = cp_fetch_call(ids, seqid)
    answers = [impl(data, table, max_reply_size, WRITEV_FROM) for impl in IMPLS]
    assert all(a == answers[0] for a in answers), "C and Python disagree"
    quick = answers[0]
    answerable = (len(ids) < 15 and all(len(i.encode()) < 128 and i in table for i in ids)
                  and (len(ids) <= 1 or len(build_fetch_reply(seqid, [table[i] for i in ids])) - 4 <= max_reply_size))
    assert (quick is not None) == answerable
    if quick is not None:
        assert quick == build_fetch_reply(seqid, [table[i] for i in ids])
        assert quick == await general_reply(data[4:], table, max_reply_size)


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.sampled_from(sorted(COMMS)), max_size=3), seqid=st.integers(-(2**31), 2**31 - 1),
       edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=3),
       cut=st.integers(0, 3))
async def test_fast_reply_on_damaged_calls_agrees_or_declines(ids: list[str], seqid: int,
                                                               edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(cp_fetch_call(ids, seqid))
    for pos, value in edits:
        data[pos % len(data)] = value
    data = bytes(data[: len(data) - cut])
    answers = [impl(data, COMMS, DEFAULT_MAX_REPLY_SIZE, WRITEV_FROM) for impl in IMPLS]
    assert all(a == answers[0] for a in answers), "C and Python disagree"
    if answers[0] is not None:
        assert int.from_bytes(data[:4], "big") == len(data) - 4
        assert answers[0] == await general_reply(data[4:], COMMS, DEFAULT_MAX_REPLY_SIZE)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_fast_reply_declines_everything_but_one_plain_fetch_frame(impl: Any) -> None:
    table = dict(COMMS)
    one = cp_fetch_call(["fp-1"], 7)
    assert impl(one, table, DEFAULT_MAX_REPLY_SIZE, WRITEV_FROM) == build_fetch_reply(7, [COMMS["fp-1"]])
    declined = {
        "two frames in one read": one + one,
        "half a frame": one[:-1],
        "length prefix off by one": (len(one) - 3).to_bytes(4, "big") + one[4:],
        "trailing byte inside the frame": (len(one) - 3).to_bytes(4, "big") + one[4:] + b"\x00",
        "another method": call("getCommunicationCount", 1),
        "a second FetchRequest field": call("fetch", 1, FetchRequest(communicationIds=["fp-1"], auths="x")),
        "15 ids (long list header)": cp_fetch_call(["fp-1"] * 15, 1),
        "an id of 128 bytes": cp_fetch_call(["x" * 128], 1),
        "an unknown id": cp_fetch_call(["fp-1", "nope"], 1),
        "not UTF-8": one.replace(b"fp-1", b"fp\xff1"),
        "a bytearray": bytearray(one),
    }
    for why, data in declined.items():
        assert impl(data, table, DEFAULT_MAX_REPLY_SIZE, WRITEV_FROM) is None, why
    assert impl(one, {"fp-1": bytearray(COMMS["fp-1"])}, DEFAULT_MAX_REPLY_SIZE, WRITEV_FROM) is None
    assert impl(one, table, DEFAULT_MAX_REPLY_SIZE, len(COMMS["fp-1"])) is None  # large: written as buffers


def connection(handler: Any) -> tuple[FramedProtocol, MockTransport]:
    proto = FramedProtocol(Processor(FetchCommunicationService, handler), ServerState(ServerConfig()))
    transport = MockTransport(proto)
    proto.connection_made(transport)
    return proto, transport


async def test_connection_answers_from_the_table_and_asks_the_handler_otherwise() -> None:
    handler = TableHandler({"fp-1": COMMS["fp-1"], "fp-2": COMMS["fp-2"]})
    proto, transport = connection(handler)
    proto.data_received(cp_fetch_call(["fp-1", "fp-2"], 1))
    assert handler.calls == []  # answered from raw_table
    proto.data_received(cp_fetch_call(["fp-1", "fp-3"], 2))  # fp-3 unknown: the handler decides
    assert handler.calls == [["fp-1", "fp-3"]]
    both = cp_fetch_call(["fp-2"], 3) + cp_fetch_call(["fp-1"], 4)  # two frames in one read
    proto.data_received(both[:5])
    proto.data_received(both[5:])
    replies = [result_of(r) for r in transport.replies()]
    assert [(name, seqid) for name, seqid, _ in replies] == [("fetch", 1), ("fetch", 2), ("fetch", 3), ("fetch", 4)]
    assert [[c.id for c in r.communications] for _, _, r in replies] == [["fp-1", "fp-2"], ["fp-1"], ["fp-2"], ["fp-1"]]
    assert proto.state.total_requests == 4


async def test_calls_answered_from_the_table_are_observed() -> None:
    handler = TableHandler(dict(COMMS))
    seen: list[tuple[str, str, int]] = []
    processor = Processor(FetchCommunicationService, handler,
                          observer=lambda method, outcome, seconds, size: seen.append((method, outcome, size)))
    assert processor.fetch_table() is handler.table
    proto = FramedProtocol(processor, ServerState(ServerConfig()))
    transport = MockTransport(proto)
    proto.connection_made(transport)
    proto.data_received(cp_fetch_call(["fp-1"], 1))  # from the table
    proto.data_received(cp_fetch_call(["fp-1", "nope"], 2))  # through the handler
    assert handler.calls == [["fp-1", "nope"]]
    replies = [build_fetch_reply(seqid, [COMMS["fp-1"]]) for seqid in (1, 2)]
    assert seen == [("fetch", "ok", len(r)) for r in replies]
    assert bytes(transport.out) == b"".join(replies)


class MemoryDict(CommunicationContainer):
    """A container whose raw_table holds everything (as the memory backend's does)."""

    INLINE_SAFE = True
    VALIDATE_ON_READ = False

    def __init__(self, comms: dict[str, bytes]) -> None:
        self.raw_table = dict(comms)

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        return {i: self.raw_table[i] for i in ids if i in self.raw_table}

    async def _iter_ids(self) -> Any:
        for i in list(self.raw_table):
            yield i

    async def _count(self) -> int:
        return len(self.raw_table)


def redact(result: FetchResult) -> FetchResult:
    for comm in result.communications:
        comm.text = "[redacted]"
    return result


class Redacting(CommunicationContainerFetchHandler):
    """Overrides fetch only: every Communication's text is replaced."""

    async def fetch(self, fetch_request: FetchRequest) -> FetchResult:
        return redact(await super().fetch(fetch_request))


class Filtering(CommunicationContainerFetchHandler):
    """Overrides fetch_raw: never serves fp-2."""

    async def fetch_raw(self, ids: Sequence[str]) -> list[bytes]:
        return await super().fetch_raw([i for i in ids if i != "fp-2"])


class RedactingFiltering(Filtering):
    """Overrides both, one level apart: super().fetch must reach Filtering's fetch_raw."""

    async def fetch(self, fetch_request: FetchRequest) -> FetchResult:
        return redact(await super().fetch(fetch_request))


@pytest.mark.parametrize(("handler_cls", "ids", "texts"), [
    (CommunicationContainerFetchHandler, ["fp-1", "fp-2"], None),
    (Redacting, ["fp-1", "fp-2"], "[redacted]"),
    (Filtering, ["fp-1"], None),
    (RedactingFiltering, ["fp-1"], "[redacted]"),
])
async def test_subclasses_changing_fetch_are_heard_by_concrete_python_clients(
        handler_cls: type, ids: list[str], texts: str | None) -> None:
    handler = handler_cls(MemoryDict(COMMS))
    assert (handler.raw_table is not None) == (handler_cls is CommunicationContainerFetchHandler)
    async with FetchCommunicationServiceWrapper(handler).serving("127.0.0.1", 0) as server:
        port = server.bound_port

        def fetch() -> list[Any]:
            transport = TTransport.TFramedTransport(TSocket("127.0.0.1", port))
            transport.open()
            try:
                client = CPFetchService.Client(TCompactProtocol.TCompactProtocol(transport))
                return client.fetch(CPFetchRequest(communicationIds=["fp-1", "fp-2"])).communications
            finally:
                transport.close()

        got = await asyncio.to_thread(fetch)
    assert [c.id for c in got] == ids
    for comm in got:
        assert comm.text == (texts if texts is not None else next(
            c.text for c in concrete_comms(6, prefix="fp") if c.id == comm.id))



def test_a_directory_table_filled_on_one_loop_is_not_served_stale_on_the_next(tmp_path: Any) -> None:
    first, second = concrete_comms(2, prefix="loop")
    path = tmp_path / "doc.comm"
    path.write_bytes(cp_write(first))
    container = DirectoryBackedCommunicationContainer(tmp_path, watch=True)
    handler = CommunicationContainerFetchHandler(container)

    async def fill() -> None:
        assert await container.get_raw_many(["doc"]) == {"doc": cp_write(first)}
        assert "doc" in container.raw_table

    asyncio.run(fill())
    second.id = "doc"
    path.write_bytes(cp_write(second))  # no loop is running: no one reads the inotify event

    async def serve() -> bytes:
        proto, transport = connection(handler)
        proto.data_received(cp_fetch_call(["doc"], 1))
        for _ in range(100):
            if transport.out:
                break
            await asyncio.sleep(0.01)
        await container.aclose()
        return bytes(transport.out)

    assert asyncio.run(serve()) == build_fetch_reply(1, [cp_write(second)])
