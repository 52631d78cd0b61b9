"""Server lifecycle over real sockets: port 0, long-lived connections, graceful shutdown, several services."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms, unused_port

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    DirectoryBackedStoreHandler,
    FetchCommunicationClient,
    FetchCommunicationServiceWrapper,
    FetchRequest,
    Server,
    ServerConfig,
    StoreCommunicationClient,
    StoreCommunicationServiceWrapper,
    read_communication_from_buffer,
)
from aioaccess.client import TApplicationException
from aioaccess.schema import FetchCommunicationService, StoreCommunicationService
from aioaccess.server import Processor


class SlowStore(DirectoryBackedStoreHandler):
    """A directory store whose writes take ``delay`` seconds; ``started`` is set when one begins."""

    def __init__(self, path: str, delay: float) -> None:
        super().__init__(path, fsync=False)
        self.delay = delay
        self.started = asyncio.Event()

    async def _put_raw(self, comm_id: str, raw: bytes) -> None:
        self.started.set()
        await asyncio.sleep(self.delay)
        await super()._put_raw(comm_id, raw)


class SlowCount(CommunicationContainerFetchHandler):
    """``getCommunicationCount`` takes ``delay`` seconds."""

    delay = 0.0

    async def getCommunicationCount(self) -> int:
        await asyncio.sleep(self.delay)
        return await super().getCommunicationCount()


def test_config_is_validated() -> None:
    for bad in ({"max_frame_size": 4}, {"idle_timeout": 0}, {"max_connections": 0}, {"graceful_timeout": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Server(ServerConfig(**bad))


async def test_serving_on_port_zero(fetch_server: Any, cp_comms: list[Any]) -> None:
    port = fetch_server.bound_port
    assert port > 0
    async with FetchCommunicationClient.connect("127.0.0.1", port, timeout=5) as client:
        assert await client.getCommunicationCount() == len(cp_comms)
        result = await client.fetch(FetchRequest(communicationIds=[cp_comms[3].id]))
        assert [c.id for c in result.communications] == [cp_comms[3].id]


async def test_connection_outlives_three_seconds_idle_and_busy(comm_dir: str) -> None:
    # thriftpy2's stock aio server cuts every connection at 3 s; ours counts idle time only.
    handler = SlowCount(DirectoryBackedCommunicationContainer(comm_dir))
    config = ServerConfig(idle_timeout=3.0)
    async with FetchCommunicationServiceWrapper(handler, config=config).serving() as listener:
        async with FetchCommunicationClient.connect("127.0.0.1", listener.bound_port, timeout=10) as client:
            conn = client.transport
            assert await client.alive() is True
            writer = conn._writer
            await asyncio.sleep(2.0)  # idle, under the timeout
            assert await client.getCommunicationCount() == 10
            handler.delay = 2.5  # busy for most of an idle period
            assert await client.getCommunicationCount() == 10
            handler.delay = 0.0
            assert await client.alive() is True
            # Same TCP connection all along (the client did not reconnect).
            assert conn._writer is writer


async def test_idle_timeout_closes_and_client_reconnects(comm_dir: str) -> None:
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    server = Server(ServerConfig(idle_timeout=0.2))
    listener = server.add_service(Processor(FetchCommunicationService, handler), "127.0.0.1", 0)
    await server.startup()
    try:
        async with FetchCommunicationClient.connect("127.0.0.1", listener.bound_port, timeout=5) as client:
            assert await client.alive() is True
            async with asyncio.timeout(5):
                while server.state.connections:
                    await asyncio.sleep(0.05)
            assert server.state.idle_closed == 1
            await asyncio.sleep(0.05)
            assert await client.alive() is True  # a stale connection is replaced transparently
    finally:
        await server.shutdown()


async def test_graceful_shutdown_waits_for_in_flight_store(store_dir: str) -> None:
    handler = SlowStore(store_dir, delay=0.5)
    comm = concrete_comms(1, prefix="slow")[0]
    cm = StoreCommunicationServiceWrapper(handler).serving()
    listener = await cm.__aenter__()
    async with StoreCommunicationClient.connect("127.0.0.1", listener.bound_port, timeout=10) as client:
        store = asyncio.create_task(client.store_raw(cp_write(comm)))
        await handler.started.wait()
        await cm.__aexit__(None, None, None)  # shutdown while the write is in flight
        await asyncio.wait_for(store, 5)  # acknowledged, not cut off
    with open(os.path.join(store_dir, "slow-0.comm"), "rb") as f:
        assert f.read() == cp_write(comm)


async def test_shutdown_closes_idle_connections_and_stops_listening(comm_dir: str) -> None:
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    server = Server()
    listener = server.add_service(Processor(FetchCommunicationService, handler), "127.0.0.1", 0)
    await server.startup()
    port = listener.bound_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    async with asyncio.timeout(5):
        while not server.state.connections:
            await asyncio.sleep(0.01)
    await server.shutdown()
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # closed by the server
    writer.close()
    await writer.wait_closed()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_graceful_timeout_cancels_what_is_left(store_dir: str) -> None:
    handler = SlowStore(store_dir, delay=30)
    server = Server(ServerConfig(graceful_timeout=0.2))
    listener = server.add_service(Processor(StoreCommunicationService, handler), "127.0.0.1", 0)
    await server.startup()
    async with StoreCommunicationClient.connect("127.0.0.1", listener.bound_port, timeout=10) as client:
        comm = read_communication_from_buffer(cp_write(concrete_comms(1)[0]))
        store = asyncio.create_task(client.store(comm))
        await handler.started.wait()
        async with asyncio.timeout(5):
            await server.shutdown()
        with pytest.raises(ConnectionError):
            await store  # never acknowledged
    assert os.listdir(store_dir) == []


async def test_several_services_in_one_loop(comm_dir: str, store_dir: str, cp_comms: list[Any]) -> None:
    fetch = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    store = DirectoryBackedStoreHandler(store_dir, fsync=False)
    server = Server()
    fl = server.add_service(Processor(FetchCommunicationService, fetch), "127.0.0.1", 0)
    sl = server.add_service(Processor(StoreCommunicationService, store), "127.0.0.1", 0)
    serving = asyncio.create_task(server.serve())
    await server.started.wait()
    assert fl.bound_port != sl.bound_port
    fc = FetchCommunicationClient.pooled("127.0.0.1", fl.bound_port, max_connections=4, timeout=5)
    sc = StoreCommunicationClient.pooled("127.0.0.1", sl.bound_port, max_connections=4, timeout=5)
    async with fc, sc:
        raws = await fc.fetch_raw([c.id for c in cp_comms])
        await asyncio.gather(*(sc.store_raw(r) for r in raws))
        # Each listener answers for its own service only.
        with pytest.raises(TApplicationException, match="getCommunicationCount"):
            await FetchCommunicationClient(sc.transport).getCommunicationCount()
    assert sorted(os.listdir(store_dir)) == sorted(f"{c.id}.comm" for c in cp_comms)
    for c in cp_comms:
        with open(os.path.join(store_dir, f"{c.id}.comm"), "rb") as f:
            assert f.read() == cp_write(c)
    server.close()
    await asyncio.wait_for(serving, 5)


async def test_wrapper_serve_runs_until_cancelled(comm_dir: str) -> None:
    port = unused_port()
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    task = asyncio.create_task(FetchCommunicationServiceWrapper(handler).serve("127.0.0.1", port))
    async with asyncio.timeout(5):
        while True:
            try:
                async with FetchCommunicationClient.connect("127.0.0.1", port, timeout=5) as client:
                    assert await client.getCommunicationCount() == 10
                break
            except ConnectionError:
                await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


async def test_refused_connections_are_closed_at_shutdown(comm_dir: str) -> None:
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    server = Server(ServerConfig(max_connections=1))
    listener = server.add_service(Processor(FetchCommunicationService, handler), "127.0.0.1", 0)
    await server.startup()
    port = listener.bound_port
    r0, w0 = await asyncio.open_connection("127.0.0.1", port)
    w0.write(b"\x00\x00\x01\x00")  # a call arriving: busy, so never closed to make room
    async with asyncio.timeout(5):
        while not server.state.connections:
            await asyncio.sleep(0.01)
    second = FetchCommunicationClient.connect("127.0.0.1", port, timeout=5)
    async with second:
        with pytest.raises(TApplicationException, match="limit of 1 connections"):
            await second.alive()
    r, w = await asyncio.open_connection("127.0.0.1", port)  # refused, sends nothing
    async with asyncio.timeout(5):
        while server.state.refused < 2:
            await asyncio.sleep(0.01)
    await server.shutdown()
    async with asyncio.timeout(2):
        assert await r.read() == b""  # closed by shutdown, not left for a timer
        assert await r0.read() == b""
    for writer in (w, w0):
        writer.close()
        await writer.wait_closed()
    gc.collect()


async def test_failed_startup_releases_listeners_already_bound(comm_dir: str) -> None:
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    processor = Processor(FetchCommunicationService, handler)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        server = Server()
        first = server.add_service(processor, "127.0.0.1", 0)
        server.add_service(processor, "127.0.0.1", blocker.getsockname()[1])
        with pytest.raises(OSError):
            await server.startup()
    assert first.server is None
    assert not server.started.is_set()
    gc.collect()  # an unclosed listening socket would warn here


async def test_pipelined_calls_on_a_real_socket_are_answered_in_order(fetch_server: Any, cp_comms: list[Any]) -> None:
    from aioaccess import codec
    from aioaccess.wire.framing import FrameDecoder
    from aioaccess.wire.messages import CALL, build_message, parse_header

    def fetch_call(seqid: int, comm_id: str) -> bytes:
        args = FetchCommunicationService.fetch_args(request=FetchRequest(communicationIds=[comm_id]))
        return build_message("fetch", CALL, seqid, codec.encode(args))

    count_args = codec.encode(FetchCommunicationService.getCommunicationCount_args())
    stream = b"".join(
        fetch_call(i, cp_comms[i % 10].id) if i % 3 else build_message("getCommunicationCount", CALL, i, count_args)
        for i in range(60)
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", fetch_server.bound_port)
    try:
        writer.write(stream)
        await writer.drain()
        decoder, frames = FrameDecoder(), []
        async with asyncio.timeout(10):
            while len(frames) < 60:
                frames.extend(decoder.feed(await reader.read(65536)))
        assert [parse_header(f).seqid for f in frames] == list(range(60))
        for i, f in enumerate(frames):
            h = parse_header(f)
            if i % 3:
                result = codec.decode(f, FetchCommunicationService.fetch_result, h.body_offset)[0]
                assert [c.id for c in result.success.communications] == [cp_comms[i % 10].id]
            else:
                assert codec.decode(f, FetchCommunicationService.getCommunicationCount_result,
                                    h.body_offset)[0].success == 10
    finally:
        writer.close()
        await writer.wait_closed()


async def test_half_closed_client_still_gets_its_answers(fetch_server: Any) -> None:
    from aioaccess import codec
    from aioaccess.wire.framing import FrameDecoder
    from aioaccess.wire.messages import CALL, build_message, parse_header

    body = codec.encode(FetchCommunicationService.getCommunicationCount_args())
    reader, writer = await asyncio.open_connection("127.0.0.1", fetch_server.bound_port)
    try:
        writer.write(b"".join(build_message("getCommunicationCount", CALL, i, body) for i in range(3)))
        writer.write_eof()  # "no more requests", as a shell pipe would do
        async with asyncio.timeout(10):
            data = await reader.read()  # everything until the server closes
        frames = FrameDecoder().feed(data)
        assert [parse_header(f).seqid for f in frames] == [0, 1, 2]
    finally:
        writer.close()
        await writer.wait_closed()
