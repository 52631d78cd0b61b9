"""RelayFetchHandler and RelayProcessor against real upstream servers (aioaccess, in process)."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from conftest import unused_port

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    FetchCommunicationClient,
    RelayFetchHandler,
    Server,
    ServerConfig,
)
from aioaccess.client import TApplicationException
from aioaccess.handlers.relay import RelayProcessor
from aioaccess.schema import FetchCommunicationService, FetchRequest, ServicesException
from aioaccess.server import Processor


@pytest.fixture(params=[True, False], ids=["pipelined", "pooled"])
def pipelined(request: pytest.FixtureRequest) -> bool:
    """Both upstream pools: pipelined connections, and aioaccess's one-call-per-connection ConnectionPool."""
    return bool(request.param)


def _stored(comm_dir: str, comm_id: str) -> bytes:
    with open(os.path.join(comm_dir, f"{comm_id}.comm"), "rb") as f:
        return f.read()


@asynccontextmanager
async def upstream_server(comm_dir: str, port: int = 0) -> AsyncIterator[tuple[Server, int]]:
    """An aioaccess fetch server over ``comm_dir``; yields (server, port)."""
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    server = Server(ServerConfig(graceful_timeout=1.0))
    listener = server.add_service(Processor(FetchCommunicationService, handler), "127.0.0.1", port)
    await server.startup()
    try:
        yield server, listener.bound_port
    finally:
        await server.shutdown()


@asynccontextmanager
async def relay_server(handler: RelayFetchHandler, verbatim: bool = True) -> AsyncIterator[int]:
    """A framed-compact relay in front of ``handler``'s upstream; yields its port.

    ``verbatim``: RelayProcessor (messages forwarded as they are), else the generic
    Processor calling the handler's methods (``fetch_raw`` for fetch).
    """
    server = Server(ServerConfig(graceful_timeout=1.0))
    processor = RelayProcessor(handler) if verbatim else Processor(FetchCommunicationService, handler)
    listener = server.add_service(processor, "127.0.0.1", 0)
    await server.startup()
    try:
        yield listener.bound_port
    finally:
        await server.shutdown()


async def test_handler_forwards_every_method(comm_dir: str, cp_comms: list[Any], pipelined: bool) -> None:
    ids = sorted(c.id for c in cp_comms)
    async with upstream_server(comm_dir) as (_, port), \
            RelayFetchHandler("127.0.0.1", port, pipelined=pipelined) as relay:
        assert await relay.alive() is True
        assert "CommunicationContainerFetchHandler" in (await relay.about()).name
        assert await relay.getCommunicationCount() == len(cp_comms)
        listed = await relay.getCommunicationIDs(0, 100)
        assert sorted(listed) == ids
        assert await relay.getCommunicationIDs(2, 3) == listed[2:5]
        raws = await relay.fetch_raw([ids[3], "no-such-id", ids[0]])
        assert raws == [_stored(comm_dir, ids[3]), _stored(comm_dir, ids[0])]
        result = await relay.fetch(FetchRequest(communicationIds=[ids[1]]))
        assert [c.id for c in result.communications] == [ids[1]]


@pytest.mark.parametrize("verbatim", [True, False], ids=["RelayProcessor", "Processor"])
async def test_relay_server_passes_bytes_through(comm_dir: str, cp_comms: list[Any], verbatim: bool) -> None:
    """concrete-python's client through the verbatim relay gets the stored bytes."""
    from concrete.access.ttypes import FetchRequest as CFetchRequest
    from concrete.util import write_communication_to_buffer
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper

    ids = [c.id for c in cp_comms]
    async with upstream_server(comm_dir) as (_, port), \
            RelayFetchHandler("127.0.0.1", port, pipelined=pipelined) as relay, \
            relay_server(relay, verbatim) as relay_port:
        def call() -> tuple[Any, ...]:
            with FetchCommunicationClientWrapper("127.0.0.1", relay_port) as client:
                return (client.fetch(CFetchRequest(communicationIds=ids)), client.getCommunicationCount(),
                        client.getCommunicationIDs(0, 3), client.alive(), client.about())

        result, count, some_ids, alive, about = await asyncio.to_thread(call)
    assert [write_communication_to_buffer(c) for c in result.communications] == [_stored(comm_dir, i) for i in ids]
    assert count == len(ids)
    assert len(some_ids) == 3 and set(some_ids) <= set(ids)
    assert alive is True
    assert "CommunicationContainerFetchHandler" in about.name


async def test_upstream_down_is_a_services_exception(comm_dir: str, pipelined: bool) -> None:
    port = unused_port()  # nothing listens here
    async with RelayFetchHandler("127.0.0.1", port, pipelined=pipelined, timeout=5.0) as relay:
        with pytest.raises(ServicesException, match=rf"upstream fetch service 127\.0\.0\.1:{port} unavailable"):
            await relay.fetch_raw(["a"])
        with pytest.raises(ServicesException, match="unavailable"):
            await relay.getCommunicationCount()
        async with relay_server(relay) as relay_port:
            async with FetchCommunicationClient.connect("127.0.0.1", relay_port) as client:
                with pytest.raises(ServicesException, match=rf"127\.0\.0\.1:{port} unavailable"):
                    await client.fetch_raw(["a"])
                # Methods that declare no ServicesException: a TApplicationException with the same text.
                with pytest.raises(TApplicationException, match="unavailable"):
                    await client.alive()
                with pytest.raises(TApplicationException, match="unavailable"):
                    await client.getCommunicationCount()


async def test_silent_upstream_times_out(comm_dir: str, pipelined: bool) -> None:
    """An upstream that accepts but never answers fails the call after ``timeout``."""
    silent = socket.socket()  # listens, never accepts: connects succeed, calls get no reply
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        async with RelayFetchHandler("127.0.0.1", port, pipelined=pipelined, timeout=0.3) as relay:
            with pytest.raises(ServicesException, match=r"unavailable: no reply .* within 0\.3 s"):
                await relay.fetch_raw(["a"])
    finally:
        silent.close()


async def test_relay_recovers_when_upstream_returns(comm_dir: str, cp_comms: list[Any], pipelined: bool) -> None:
    comm_id = cp_comms[0].id
    port = unused_port()
    async with RelayFetchHandler("127.0.0.1", port, pipelined=pipelined, max_connections=4) as relay, \
            relay_server(relay) as relay_port, \
            FetchCommunicationClient.connect("127.0.0.1", relay_port) as client:
        async with upstream_server(comm_dir, port):
            # Fill the pool with several idle connections.
            await asyncio.gather(*(client.fetch_raw([comm_id]) for _ in range(1)),
                                 *(relay.fetch_raw([comm_id]) for _ in range(8)))
            assert relay.pool.size >= 1
        with pytest.raises(ServicesException, match="unavailable"):
            await client.fetch_raw([comm_id])
        async with upstream_server(comm_dir, port):
            assert await client.fetch_raw([comm_id]) == [_stored(comm_dir, comm_id)]
            assert await relay.getCommunicationCount() == len(cp_comms)


async def test_relay_stays_up_across_an_upstream_restart_with_idle_connections(
        comm_dir: str, cp_comms: list[Any], pipelined: bool) -> None:
    """Idle pooled connections the old upstream closed are retried on fresh ones, not reported."""
    comm_id = cp_comms[0].id
    port = unused_port()
    async with RelayFetchHandler("127.0.0.1", port, pipelined=pipelined, max_connections=4) as relay:
        async with upstream_server(comm_dir, port):
            await asyncio.gather(*(relay.fetch_raw([comm_id]) for _ in range(8)))
            idle = relay.pool.size
        async with upstream_server(comm_dir, port):
            assert idle >= 1
            assert await relay.fetch_raw([comm_id]) == [_stored(comm_dir, comm_id)]


@pytest.fixture
def many_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_thousand_clients_share_a_bounded_upstream_pool(comm_dir: str, cp_comms: list[Any],
                                                              many_files: None, pipelined: bool) -> None:
    n_clients, pool_size = 1000, 16
    ids = [c.id for c in cp_comms]
    expected = {i: _stored(comm_dir, i) for i in ids}
    async with upstream_server(comm_dir) as (upstream, port), \
            RelayFetchHandler("127.0.0.1", port, pipelined=pipelined, max_connections=pool_size) as relay, \
            relay_server(relay) as relay_port:
        clients = [FetchCommunicationClient.connect("127.0.0.1", relay_port) for _ in range(n_clients)]
        await asyncio.gather(*(c.transport.connect() for c in clients))
        try:
            opened = asyncio.Event()

            async def call(k: int, client: FetchCommunicationClient) -> list[bytes]:
                await opened.wait()  # every connection is open before the first call
                first = await client.fetch_raw([ids[k % len(ids)]])
                second = await client.fetch_raw([ids[(k + 1) % len(ids)]])
                return first + second

            tasks = [asyncio.create_task(call(k, c)) for k, c in enumerate(clients)]
            opened.set()
            results = await asyncio.gather(*tasks)
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
        for k, got in enumerate(results):
            assert got == [expected[ids[k % len(ids)]], expected[ids[(k + 1) % len(ids)]]]
        assert upstream.state.total_connections <= pool_size
        assert relay.pool.size <= pool_size


async def test_relay_processor_reports_calls_to_its_observer(comm_dir: str, cp_comms: list[Any]) -> None:
    calls: list[tuple[str, str]] = []
    async with upstream_server(comm_dir) as (_, port), RelayFetchHandler("127.0.0.1", port) as relay:
        server = Server(ServerConfig(graceful_timeout=1.0))
        processor = RelayProcessor(relay, observer=lambda method, outcome, seconds, size: calls.append((method,
                                                                                                        outcome)))
        listener = server.add_service(processor, "127.0.0.1", 0)
        await server.startup()
        try:
            async with FetchCommunicationClient.connect("127.0.0.1", listener.bound_port) as client:
                await client.fetch_raw([cp_comms[0].id])
                await client.getCommunicationCount()
        finally:
            await server.shutdown()
    async with RelayFetchHandler("127.0.0.1", unused_port()) as down:
        reply = await RelayProcessor(down, observer=lambda *a: calls.append((a[0], a[1]))).process(
            b"\x82\x21\x01\x05fetch\x00")
    assert reply is not None
    assert calls == [("fetch", "ok"), ("getCommunicationCount", "ok"), ("fetch", "exception")]
