"""Async clients against aioaccess servers: every call, pooling, reconnects, timeouts."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms, unused_port

from aioaccess import (
    CommunicationContainerFetchHandler,
    ConnectionPool,
    DirectoryBackedCommunicationContainer,
    FetchCommunicationClient,
    FetchCommunicationClientWrapper,
    FetchRequest,
    Server,
    ServerConfig,
    ServiceInfo,
    ServicesException,
    StoreCommunicationClientWrapper,
    read_communication_from_buffer,
)
from aioaccess.client import Connection, PoolTimeout, TApplicationException
from aioaccess.schema import FetchCommunicationService
from aioaccess.server import Processor


def file_bytes(directory: str, comm_id: str) -> bytes:
    with open(os.path.join(directory, f"{comm_id}.comm"), "rb") as f:
        return f.read()


@pytest.fixture
async def client(fetch_server: Any) -> AsyncIterator[FetchCommunicationClient]:
    async with FetchCommunicationClientWrapper("127.0.0.1", fetch_server.bound_port, timeout=5) as c:
        yield c


async def test_fetch_objects(client: FetchCommunicationClient, cp_comms: list[Any]) -> None:
    want = [cp_comms[4], cp_comms[0], cp_comms[4]]
    result = await client.fetch(FetchRequest(communicationIds=[c.id for c in want] + ["missing"]))
    assert [c.id for c in result.communications] == [c.id for c in want]  # unknown ids skipped, order kept
    for got, c in zip(result.communications, want, strict=True):
        assert got == read_communication_from_buffer(cp_write(c), add_references=False)


async def test_fetch_raw_is_the_stored_bytes(client: FetchCommunicationClient, comm_dir: str,
                                             cp_comms: list[Any]) -> None:
    ids = [c.id for c in cp_comms]
    raws = await client.fetch_raw(ids)
    assert raws == [file_bytes(comm_dir, i) for i in ids]
    assert raws == [cp_write(c) for c in cp_comms]
    assert await client.fetch_raw([]) == []
    assert await client.fetch_raw(["nope", "neither"]) == []


async def test_count_ids_about_alive(client: FetchCommunicationClient, cp_comms: list[Any]) -> None:
    assert await client.getCommunicationCount() == len(cp_comms)
    all_ids = await client.getCommunicationIDs(0, 100)
    assert sorted(all_ids) == sorted(c.id for c in cp_comms)
    assert await client.getCommunicationIDs(2, 3) == all_ids[2:5]
    assert await client.getCommunicationIDs(8, 10) == all_ids[8:]
    info = await client.about()
    assert isinstance(info, ServiceInfo)
    assert info.name.startswith("CommunicationContainerFetchHandler")
    assert await client.alive() is True


async def test_store_and_store_raw(store_server: Any, store_dir: str) -> None:
    comms = concrete_comms(3, prefix="st")
    async with StoreCommunicationClientWrapper("127.0.0.1", str(store_server.bound_port), timeout=5) as client:
        await client.store(read_communication_from_buffer(cp_write(comms[0])))
        await client.store_raw(cp_write(comms[1]))
        await client.store_raw(cp_write(comms[2]))
        assert await client.alive() is True
        assert (await client.about()).name == "DirectoryBackedStoreHandler"
        with pytest.raises(ServicesException, match="path separator"):
            await client.store(read_communication_from_buffer(cp_write(concrete_comms(1, prefix="a/b")[0])))
        with pytest.raises(TApplicationException, match="store"):
            await client.store_raw(cp_write(comms[0])[:-1] + b"\x0b\x00")  # truncated: PROTOCOL_ERROR
        assert await client.alive() is True
    assert sorted(os.listdir(store_dir)) == ["st-0.comm", "st-1.comm", "st-2.comm"]
    for c in comms:
        assert file_bytes(store_dir, c.id) == cp_write(c)


def test_wrapper_port_must_be_an_integer() -> None:
    with pytest.raises(ValueError, match="port"):
        FetchCommunicationClientWrapper("127.0.0.1", "ninety")  # type: ignore[arg-type]


async def test_connection_refused_is_connection_error() -> None:
    with pytest.raises(ConnectionError, match="cannot connect"):
        async with FetchCommunicationClientWrapper("127.0.0.1", unused_port(), timeout=2):
            pass


class CountingHandler(CommunicationContainerFetchHandler):
    """Counts calls in flight, and can be made slow."""

    delay = 0.0
    in_flight = 0
    peak = 0

    async def fetch_raw(self, ids: Any) -> list[bytes]:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
            return await super().fetch_raw(ids)
        finally:
            self.in_flight -= 1


async def start(handler: Any, port: int = 0, **config: Any) -> tuple[Server, int]:
    server = Server(ServerConfig(**config))
    listener = server.add_service(Processor(FetchCommunicationService, handler), "127.0.0.1", port)
    await server.startup()
    return server, listener.bound_port


async def test_pool_shared_by_200_tasks_uses_at_most_8_connections(comm_dir: str, cp_comms: list[Any]) -> None:
    handler = CountingHandler(DirectoryBackedCommunicationContainer(comm_dir))
    handler.delay = 0.002
    server, port = await start(handler)
    try:
        async with FetchCommunicationClient.pooled("127.0.0.1", port, max_connections=8, timeout=10) as client:

            async def one(i: int) -> bytes:
                [raw] = await client.fetch_raw([cp_comms[i % 10].id])
                return raw

            raws = await asyncio.gather(*(one(i) for i in range(200)))
            assert raws == [cp_write(cp_comms[i % 10]) for i in range(200)]
            assert client.transport.size <= 8
        assert 1 <= server.state.total_connections <= 8
        assert handler.peak <= 8
        assert server.state.total_requests == 200
    finally:
        await server.shutdown()


async def test_pool_timeout_when_every_connection_is_busy(fetch_server: Any) -> None:
    pool = ConnectionPool("127.0.0.1", fetch_server.bound_port, max_connections=2, timeout=0.2)
    client = FetchCommunicationClient(pool)
    held = [await pool.acquire(), await pool.acquire()]
    async with asyncio.timeout(5):
        with pytest.raises(PoolTimeout, match="all 2 connections .* busy"):
            await client.alive()
    waiter = asyncio.create_task(client.alive())
    await asyncio.sleep(0.05)
    await pool.release(held.pop())  # a freed connection goes to the waiter
    assert await waiter is True
    await pool.release(held.pop())
    await client.aclose()
    with pytest.raises(ConnectionError, match="closed"):
        await client.alive()


async def test_pool_reconnects_after_server_restart(comm_dir: str, cp_comms: list[Any]) -> None:
    container = DirectoryBackedCommunicationContainer(comm_dir)
    server, port = await start(CommunicationContainerFetchHandler(container))
    async with FetchCommunicationClient.pooled("127.0.0.1", port, max_connections=4, timeout=5) as client:
        await asyncio.gather(*(client.getCommunicationCount() for _ in range(8)))
        await server.shutdown()
        with pytest.raises(ConnectionError):
            await client.getCommunicationCount()
        server, _ = await start(CommunicationContainerFetchHandler(container), port)
        try:
            counts = await asyncio.gather(*(client.getCommunicationCount() for _ in range(8)))
            assert counts == [len(cp_comms)] * 8
            assert await client.fetch_raw([cp_comms[0].id]) == [cp_write(cp_comms[0])]
        finally:
            await server.shutdown()


async def test_single_connection_reconnects_after_server_restart(comm_dir: str) -> None:
    container = DirectoryBackedCommunicationContainer(comm_dir)
    server, port = await start(CommunicationContainerFetchHandler(container))
    async with FetchCommunicationClientWrapper("127.0.0.1", port, timeout=5) as client:
        assert await client.alive() is True
        await server.shutdown()
        server, _ = await start(CommunicationContainerFetchHandler(container), port)
        try:
            await asyncio.sleep(0.05)
            assert await client.getCommunicationCount() == 10
        finally:
            await server.shutdown()


async def test_call_timeout_raises_timeout_error_within_bound(comm_dir: str) -> None:
    handler = CountingHandler(DirectoryBackedCommunicationContainer(comm_dir))
    handler.delay = 30.0
    server, port = await start(handler, graceful_timeout=0)
    try:
        async with FetchCommunicationClientWrapper("127.0.0.1", port, timeout=0.3) as client:
            async with asyncio.timeout(5):  # the bound: far below the handler's 30 s
                with pytest.raises(TimeoutError, match="within 0.3 s"):
                    await client.fetch_raw(["comm-1"])
            # The timed-out connection is dropped; the next call uses a fresh one.
            handler.delay = 0.0
            assert await client.fetch_raw(["comm-1"]) != []
    finally:
        await server.shutdown()


async def test_connect_timeout_is_bounded() -> None:
    # A listening socket whose backlog is full never completes the handshake;
    # 192.0.2.1 (TEST-NET-1) may be unroutable instead: either way, bounded.
    conn = Connection("192.0.2.1", 9, timeout=0.3)
    async with asyncio.timeout(5):
        with pytest.raises(ConnectionError):
            await conn.connect()


async def test_reply_frame_over_the_client_limit_is_refused(fetch_server: Any, cp_comms: list[Any]) -> None:
    conn = Connection("127.0.0.1", fetch_server.bound_port, timeout=5, max_frame_size=64)
    client = FetchCommunicationClient(conn)
    async with client:
        from aioaccess.exceptions import ProtocolError

        with pytest.raises(ProtocolError, match="outside"):
            await client.fetch_raw([cp_comms[0].id])
        assert await client.alive() is True  # a new connection after the bad one


async def test_sequence_ids_increase_per_connection(fetch_server: Any) -> None:
    conn = Connection("127.0.0.1", fetch_server.bound_port, timeout=5)
    assert [conn.next_seqid() for _ in range(3)] == [1, 2, 3]
    await conn.aclose()


async def test_cancelled_call_frees_its_pool_slot(comm_dir: str) -> None:
    handler = CountingHandler(DirectoryBackedCommunicationContainer(comm_dir))
    handler.delay = 30.0
    server, port = await start(handler, graceful_timeout=0)
    try:
        async with FetchCommunicationClient.pooled("127.0.0.1", port, max_connections=1, timeout=5) as client:
            slow = asyncio.create_task(client.fetch_raw(["comm-1"]))
            await asyncio.sleep(0.1)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            handler.delay = 0.0
            async with asyncio.timeout(5):
                assert await client.fetch_raw(["comm-2"]) != []  # the one slot was given back
            assert client.transport.size == 1
    finally:
        await server.shutdown()


async def test_big_reply_with_many_communications(fetch_server: Any, cp_comms: list[Any]) -> None:
    ids = [c.id for c in cp_comms] * 500  # ~5,000 Communications in one reply
    async with FetchCommunicationClient.connect("127.0.0.1", fetch_server.bound_port, timeout=30) as client:
        raws = await client.fetch_raw(ids)
        assert len(raws) == len(ids)
        assert raws[:10] == [cp_write(c) for c in cp_comms]
        assert set(raws) == {cp_write(c) for c in cp_comms}
        result = await client.fetch(FetchRequest(communicationIds=ids[:40]))
        assert len(result.communications) == 40


async def test_request_over_the_server_frame_limit_closes_only_that_connection(comm_dir: str) -> None:
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    server, port = await start(handler, max_frame_size=1024)
    try:
        async with FetchCommunicationClient.connect("127.0.0.1", port, timeout=5) as other:
            assert await other.alive() is True
            async with FetchCommunicationClient.connect("127.0.0.1", port, timeout=5) as client:
                with pytest.raises(ConnectionError):
                    await client.fetch_raw(["x" * 2000])
            assert await other.getCommunicationCount() == 10
        # 1 or 2: a reused connection closed before any reply is retried once on a new one.
        assert 1 <= server.state.protocol_errors <= 2
    finally:
        await server.shutdown()


async def test_aclose_during_a_call_does_not_reopen_the_connection(comm_dir: str) -> None:
    handler = CountingHandler(DirectoryBackedCommunicationContainer(comm_dir))
    handler.delay = 30.0
    server, port = await start(handler, graceful_timeout=0)
    try:
        client = FetchCommunicationClient.connect("127.0.0.1", port, timeout=10)
        await client.__aenter__()
        call = asyncio.create_task(client.fetch_raw(["comm-1"]))
        await asyncio.sleep(0.1)
        await client.aclose()
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(call, 5)
        assert not client.transport.is_connected
        assert handler.in_flight == 1  # sent once, not retried on a new connection
    finally:
        await server.shutdown()


async def hostile_server(reply: bytes, hang_up: bool = False) -> asyncio.Server:
    """Answers every frame it receives with ``reply`` (raw bytes, framing included), then maybe hangs up."""
    from aioaccess.wire.framing import FrameDecoder

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        try:
            while data := await reader.read(65536):
                for _ in decoder.feed(data):
                    writer.write(reply)
                    if hang_up:
                        writer.close()
                        return
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize(
    "body",
    [b"", b"\x0c", b"\x0c\x00", b"\x0c\x00\x19", b"\x0c\x00\x19\xfc\xff", b"\x0c\x00\x19\x1c",
     b"\x0c\x00\x19\x2b\x00\x00", b"\x0c\x00\x29\x00"],
)
async def test_malformed_fetch_replies_raise_protocol_or_codec_errors(body: bytes) -> None:
    from aioaccess.codec import CodecError
    from aioaccess.exceptions import ProtocolError
    from aioaccess.wire.messages import REPLY, build_message

    server = await hostile_server(build_message("fetch", REPLY, 1, body))
    try:
        async with FetchCommunicationClient.connect("127.0.0.1", server.sockets[0].getsockname()[1],
                                                    timeout=5) as client:
            with pytest.raises((ProtocolError, CodecError)):
                await client.fetch_raw(["a"])
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("reply", "hang_up", "error"),
    [
        (b"\x00\x00\x00\x00", False, "ProtocolError"),  # empty reply frame
        (b"\x00\x00\x00\x03\x82\x41\x01", False, "ProtocolError"),  # header cut short
        (b"\x00\x00\x00\x0a\x82\x41\x01\x05alive\x00", False, "ProtocolError"),  # a reply to another method
        (b"\x00\x00\x01\x00abc", True, "ConnectionError"),  # hangs up inside the frame
        (b"", True, "ConnectionError"),  # hangs up without a word
    ],
)
async def test_misbehaving_servers(reply: bytes, hang_up: bool, error: str) -> None:
    server = await hostile_server(reply, hang_up)
    try:
        async with FetchCommunicationClient.connect("127.0.0.1", server.sockets[0].getsockname()[1],
                                                    timeout=5) as client:
            with pytest.raises(Exception) as info:
                await client.getCommunicationCount()
            assert type(info.value).__name__ == error or error in [c.__name__ for c in type(info.value).__mro__]
    finally:
        server.close()
        await server.wait_closed()
