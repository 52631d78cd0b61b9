"""FramedProtocol without sockets: a fake transport, frames at every split, timers, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms
from thriftpy2.thrift import TApplicationException

from aioaccess import codec
from aioaccess.schema import FetchCommunicationService, FetchRequest
from aioaccess.server import Processor, ServerConfig, ServerState
from aioaccess.server.protocol import FramedProtocol
from aioaccess.wire.framing import FrameDecoder
from aioaccess.wire.messages import CALL, EXCEPTION, REPLY, build_message, parse_application_exception, parse_header

COMMS = {c.id: cp_write(c) for c in concrete_comms(5, prefix="c")}


class MockTransport(asyncio.Transport):
    """Collects writes; ``close`` reports ``connection_lost`` on the next loop turn, as real transports do."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.out = bytearray()
        self.closed = False
        self.lost = False
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 9090)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self._lost)

    def abort(self) -> None:
        self.close()

    def _lost(self) -> None:
        self.lost = True
        self.protocol.connection_lost(None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def replies(self) -> list[bytes]:
        return FrameDecoder().feed(bytes(self.out))


class SyncHandler:
    """Answers without ever suspending (the in-memory fast path)."""

    inline_safe = True

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def fetch_raw(self, ids: Sequence[str]) -> list[bytes]:
        self.calls.append("fetch")
        return [COMMS[i] for i in ids if i in COMMS]

    async def getCommunicationCount(self) -> int:
        self.calls.append("count")
        return len(COMMS)

    async def getCommunicationIDs(self, offset: int, count: int) -> list[str]:
        return list(COMMS)[offset:][:count]

    async def about(self) -> Any:
        return None

    async def alive(self) -> bool:
        return True


class SlowHandler(SyncHandler):
    """Every call waits ``delay`` seconds on the loop first."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay

    async def fetch_raw(self, ids: Sequence[str]) -> list[bytes]:
        await asyncio.sleep(self.delay)
        return await super().fetch_raw(ids)

    async def getCommunicationCount(self) -> int:
        await asyncio.sleep(self.delay)
        return await super().getCommunicationCount()


def call(name: str, seqid: int, *args: Any) -> bytes:
    args_cls = getattr(FetchCommunicationService, f"{name}_args")
    spec = args_cls.thrift_spec
    obj = args_cls(**{spec[fid][1]: a for fid, a in zip(sorted(spec), args, strict=False)})
    return build_message(name, CALL, seqid, codec.encode(obj))


def result_of(msg: bytes) -> tuple[str, int, Any]:
    h = parse_header(msg)
    if h.mtype == EXCEPTION:
        return h.name, h.seqid, TApplicationException(*parse_application_exception(msg, h.body_offset))
    assert h.mtype == REPLY
    result = codec.decode(msg, getattr(FetchCommunicationService, f"{h.name}_result"), h.body_offset)[0]
    return h.name, h.seqid, result.success


def make(handler: Any, **config: Any) -> tuple[FramedProtocol, MockTransport, ServerState]:
    state = ServerState(ServerConfig(**config))
    proto = FramedProtocol(Processor(FetchCommunicationService, handler), state)
    transport = MockTransport(proto)
    proto.connection_made(transport)
    return proto, transport, state


PIPELINE = [
    call("getCommunicationCount", 1),
    call("fetch", 2, FetchRequest(communicationIds=["c-1", "nope", "c-3"])),
    call("getCommunicationIDs", 3, 1, 2),
    call("alive", 4),
    call("fetch", 5, FetchRequest(communicationIds=[])),
]


def check_pipeline_replies(replies: list[bytes]) -> None:
    got = [result_of(r) for r in replies]
    assert [(n, s) for n, s, _ in got] == [
        ("getCommunicationCount", 1), ("fetch", 2), ("getCommunicationIDs", 3), ("alive", 4), ("fetch", 5),
    ]
    assert got[0][2] == 5
    assert [c.id for c in got[1][2].communications] == ["c-1", "c-3"]
    assert got[2][2] == ["c-1", "c-2"]
    assert got[3][2] is True
    assert got[4][2].communications == []


async def test_pipeline_at_every_split_sync_handler() -> None:
    stream = b"".join(PIPELINE)
    for cut in range(len(stream) + 1):
        proto, transport, state = make(SyncHandler())
        proto.data_received(stream[:cut])
        proto.data_received(stream[cut:])
        # A handler that never suspends is answered inside data_received: no task, no loop turn.
        assert not state.tasks
        check_pipeline_replies(transport.replies())
        assert not transport.closed
        assert state.total_requests == len(PIPELINE)


class TaskNeedingHandler(SyncHandler):
    """Not inline-safe: uses asyncio.timeout, which needs the current Task."""

    inline_safe = False

    async def fetch_raw(self, ids: Sequence[str]) -> list[bytes]:
        assert asyncio.current_task() is not None
        async with asyncio.timeout(5):
            return await super().fetch_raw(ids)


async def test_handlers_not_inline_safe_always_run_in_a_task() -> None:
    proto, transport, state = make(TaskNeedingHandler())
    proto.data_received(b"".join(PIPELINE))
    assert state.tasks  # nothing was stepped outside a Task
    while state.tasks:
        await asyncio.sleep(0)
    check_pipeline_replies(transport.replies())
    assert not transport.closed


async def test_pipeline_at_every_split_awaiting_handler() -> None:
    stream = b"".join(PIPELINE)
    for cut in range(0, len(stream) + 1, 3):
        proto, transport, state = make(SlowHandler(0))
        proto.data_received(stream[:cut])
        proto.data_received(stream[cut:])
        while state.tasks or proto.pending or proto.busy:
            await asyncio.sleep(0)
        check_pipeline_replies(transport.replies())
        assert not transport.closed


async def test_byte_at_a_time_with_awaiting_handler_keeps_order() -> None:
    proto, transport, state = make(SlowHandler(0.001))
    stream = b"".join(PIPELINE)
    for i in range(len(stream)):
        proto.data_received(stream[i : i + 1])
        if i % 7 == 0:
            await asyncio.sleep(0)
    while state.tasks or proto.pending or proto.busy:
        await asyncio.sleep(0.001)
    check_pipeline_replies(transport.replies())


async def test_replies_stay_in_order_when_a_slow_call_precedes_fast_ones() -> None:
    class Mixed(SyncHandler):
        async def getCommunicationCount(self) -> int:
            await asyncio.sleep(0.05)
            return 5

    proto, transport, state = make(Mixed())
    proto.data_received(b"".join(PIPELINE))
    assert transport.replies() == []  # the slow first call holds the rest back
    assert proto.busy and len(proto.pending) == 4
    await asyncio.gather(*state.tasks)
    while proto.busy:
        await asyncio.sleep(0.001)
    check_pipeline_replies(transport.replies())


async def wait_closed(transport: MockTransport, limit: float = 5.0) -> None:
    async with asyncio.timeout(limit):
        while not transport.lost:
            await asyncio.sleep(0.01)


async def test_idle_connection_is_closed() -> None:
    proto, transport, state = make(SyncHandler(), idle_timeout=0.1)
    proto.data_received(call("alive", 1))
    assert len(transport.replies()) == 1
    await wait_closed(transport)
    assert state.idle_closed == 1
    assert proto not in state.connections


async def test_busy_connection_is_not_closed_while_its_call_runs() -> None:
    proto, transport, state = make(SlowHandler(0.5), idle_timeout=0.1)
    proto.data_received(call("getCommunicationCount", 1))
    await asyncio.gather(*state.tasks)
    await asyncio.sleep(0)
    assert not transport.closed  # five idle periods passed while busy
    assert [result_of(r)[2] for r in transport.replies()] == [5]
    await wait_closed(transport)  # idle again after the reply: now it goes
    assert state.idle_closed == 1


async def test_active_connection_is_never_closed() -> None:
    proto, transport, state = make(SyncHandler(), idle_timeout=0.4)
    for i in range(60):  # >= 1.2 s of steady traffic (one call per 20 ms): three idle periods
        proto.data_received(call("alive", i))
        await asyncio.sleep(0.02)
        assert not transport.closed
    assert len(transport.replies()) == 60
    assert state.idle_closed == 0
    proto.connection_lost(None)


async def test_no_idle_timeout_means_never() -> None:
    proto, transport, state = make(SyncHandler(), idle_timeout=None)
    await asyncio.sleep(0.2)
    assert not transport.closed
    assert proto.idle_handle is None
    proto.connection_lost(None)


async def test_slowloris_is_closed_after_idle_timeout() -> None:
    proto, transport, state = make(SyncHandler(), idle_timeout=0.2)
    msg = call("alive", 1)
    # One byte every 20 ms: the frame would take far longer than the idle timeout.
    for i in range(len(msg) - 1):
        if transport.lost:
            break
        proto.data_received(msg[i : i + 1])
        await asyncio.sleep(0.02)
    await wait_closed(transport)
    assert transport.replies() == []
    assert state.idle_closed == 1


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00\x00\x00",  # empty frame
        b"\xff\xff\xff\xff",  # negative length
        b"\x7f\xff\xff\xffxxxx",  # absurd length
        b"\x00\x00\x00\x04\x80\x01\x00\x01",  # binary protocol, not compact
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        build_message("fetch", REPLY, 1, b"\x00"),  # not a call
    ],
)
async def test_malformed_input_closes_only_that_connection(garbage: bytes) -> None:
    state = ServerState(ServerConfig())
    processor = Processor(FetchCommunicationService, SyncHandler())
    good, bad = FramedProtocol(processor, state), FramedProtocol(processor, state)
    good_t, bad_t = MockTransport(good), MockTransport(bad)
    good.connection_made(good_t)
    bad.connection_made(bad_t)
    good.data_received(call("alive", 1)[:5])
    bad.data_received(garbage)
    await wait_closed(bad_t)
    assert state.protocol_errors == 1
    good.data_received(call("alive", 1)[5:] + call("getCommunicationCount", 2))
    assert [result_of(r)[2] for r in good_t.replies()] == [True, 5]
    assert not good_t.closed
    assert state.connections == {good}


async def test_oversized_frame_uses_configured_limit() -> None:
    proto, transport, state = make(SyncHandler(), max_frame_size=64)
    proto.data_received(call("fetch", 1, FetchRequest(communicationIds=["x" * 100])))
    await wait_closed(transport)
    assert transport.replies() == []
    assert state.protocol_errors == 1


async def test_max_connections_refusal_names_the_limit() -> None:
    state = ServerState(ServerConfig(max_connections=2))
    processor = Processor(FetchCommunicationService, SyncHandler())
    protos = [FramedProtocol(processor, state) for _ in range(3)]
    transports = [MockTransport(p) for p in protos]
    for p, t in zip(protos, transports, strict=True):
        p.connection_made(t)
    assert state.refused == 1 and len(state.connections) == 2
    refused, refused_t = protos[2], transports[2]
    refused.data_received(call("fetch", 77, FetchRequest(communicationIds=["c-1"])))
    [reply] = refused_t.replies()
    name, seqid, exc = result_of(reply)
    assert (name, seqid) == ("fetch", 77)
    assert isinstance(exc, TApplicationException)
    assert "limit of 2 connections" in exc.message
    await wait_closed(refused_t)
    # The others still work, and a slot freed is a slot for the next client.
    protos[0].data_received(call("alive", 1))
    assert [result_of(r)[2] for r in transports[0].replies()] == [True]
    protos[1].connection_lost(None)
    late = FramedProtocol(processor, state)
    late_t = MockTransport(late)
    late.connection_made(late_t)
    late.data_received(call("alive", 2))
    assert [result_of(r)[2] for r in late_t.replies()] == [True]
    for p in (protos[0], late):
        p.connection_lost(None)


async def test_shutdown_closes_idle_now_and_busy_after_its_reply() -> None:
    idle, idle_t, _ = make(SyncHandler())
    idle.shutdown()
    await wait_closed(idle_t)

    busy, busy_t, state = make(SlowHandler(0.1))
    busy.data_received(call("getCommunicationCount", 1))
    busy.shutdown()
    assert not busy_t.closed
    await asyncio.gather(*state.tasks)
    await wait_closed(busy_t)
    assert [result_of(r)[2] for r in busy_t.replies()] == [5]


async def test_write_backpressure_pauses_reading() -> None:
    proto, transport, _ = make(SyncHandler())
    proto.pause_writing()
    assert not transport.reading
    proto.resume_writing()
    assert transport.reading
    proto.connection_lost(None)


async def test_connection_lost_mid_call_drops_the_reply_quietly() -> None:
    proto, transport, state = make(SlowHandler(0.05))
    proto.data_received(call("getCommunicationCount", 1) + call("alive", 2))
    proto.connection_lost(None)
    await asyncio.gather(*state.tasks)
    assert transport.replies() == []
    assert proto not in state.connections


async def test_shutdown_answers_every_call_already_read_then_closes() -> None:
    handler = SlowHandler(0.05)
    proto, transport, state = make(handler)
    proto.data_received(call("getCommunicationCount", 1) + call("getCommunicationCount", 2))
    proto.shutdown()
    assert not transport.closed
    while state.tasks:
        await asyncio.gather(*state.tasks)
    await wait_closed(transport)
    # The call in flight and the pipelined one behind it are both answered; nothing arriving later is read.
    assert [result_of(r)[1] for r in transport.replies()] == [1, 2]
    assert handler.calls == ["count", "count"]
    proto.data_received(call("getCommunicationCount", 3))
    assert handler.calls == ["count", "count"]


@pytest.mark.parametrize("handler_cls", [SyncHandler, SlowHandler])
async def test_a_bug_while_answering_closes_the_connection_instead_of_hanging(handler_cls: type) -> None:
    def broken_observer(*_: Any) -> None:
        raise RuntimeError("observer bug")

    state = ServerState(ServerConfig())
    proto = FramedProtocol(Processor(FetchCommunicationService, handler_cls(), observer=broken_observer), state)
    transport = MockTransport(proto)
    proto.connection_made(transport)
    proto.data_received(call("getCommunicationCount", 1))
    await wait_closed(transport)
    assert not proto.busy
    assert proto not in state.connections
