"""The pipelined Redis fast path (RedisPipe): concrete-python's layout, coalescing, the index, outages, callbacks."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _services import RedisServerProcess
from concrete.util import write_communication_to_buffer
from concrete.util.access import RedisHashBackedStoreHandler as CpRedisStore
from concrete.util.comm_container import RedisHashBackedCommunicationContainer as CpRedisContainer
from conftest import concrete_comms

from aioaccess import (
    CommunicationContainerFetchHandler,
    FetchCommunicationClient,
    FetchCommunicationServiceWrapper,
    ServicesException,
)
from aioaccess.backends.redis_fast import RedisPipeCommunicationContainer, RedisPipeStoreHandler, build_index
from aioaccess.backends.redis_pipe import RedisPipe
from aioaccess.exceptions import BackendUnavailable

pytestmark = pytest.mark.redis

GUARD = 60


@pytest.fixture(scope="module")
def raws() -> dict[str, bytes]:
    return {c.id: write_communication_to_buffer(c) for c in concrete_comms(40, prefix="pipe")}


@pytest.fixture
async def pipe(redis_server: str, redis_client: Any) -> AsyncIterator[RedisPipe]:
    p = RedisPipe(redis_server, timeout=5)
    yield p
    await p.aclose()


async def _hmget_calls(redis_client: Any) -> int:
    stats = await redis_client.info("commandstats")
    return int(stats.get("cmdstat_hmget", {}).get("calls", 0))


async def test_concrete_python_reads_what_the_pipe_stored(pipe: RedisPipe, redis_server: str, redis_key: str,
                                                          raws: dict[str, bytes]) -> None:
    store = RedisPipeStoreHandler(pipe, redis_key)
    await asyncio.gather(*(store.store_raw(i, r) for i, r in raws.items()))

    def read_with_concrete_python() -> None:
        import redis

        with redis.Redis.from_url(redis_server) as db:
            container = CpRedisContainer(db, redis_key)
            assert len(container) == len(raws)
            for comm_id, raw in raws.items():
                assert write_communication_to_buffer(container[comm_id]) == raw

    await asyncio.to_thread(read_with_concrete_python)


async def test_pipe_reads_what_concrete_python_stored_coalesced(pipe: RedisPipe, redis_server: str,
                                                                redis_client: Any, redis_key: str,
                                                                raws: dict[str, bytes]) -> None:
    def store_with_concrete_python() -> None:
        import redis
        from concrete.util import read_communication_from_buffer as cp_read

        with redis.Redis.from_url(redis_server) as db:
            handler = CpRedisStore(db, redis_key)
            for raw in raws.values():
                handler.store(cp_read(raw))

    await asyncio.to_thread(store_with_concrete_python)
    container = RedisPipeCommunicationContainer(pipe, redis_key)
    before = await _hmget_calls(redis_client)
    ids = list(raws)
    results = await asyncio.gather(*(container.get_raw_many([i, "missing"]) for i in ids))
    assert results == [{i: raws[i]} for i in ids]
    # 40 concurrent reads went out as far fewer HMGETs (one per loop iteration and free connection)
    assert await _hmget_calls(redis_client) - before < len(ids) // 4
    assert await container.count() == len(raws)
    assert await container.contains(ids[0]) and not await container.contains("missing")


async def test_served_without_a_task_per_call(pipe: RedisPipe, redis_key: str, raws: dict[str, bytes]) -> None:
    await asyncio.gather(*(RedisPipeStoreHandler(pipe, redis_key).store_raw(i, r) for i, r in raws.items()))
    loop = asyncio.get_running_loop()
    server_tasks: list[str] = []
    default_factory = loop.get_task_factory()

    def counting_factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
        if "FramedProtocol" in getattr(coro, "__qualname__", ""):
            server_tasks.append(coro.__qualname__)
        if default_factory is not None:
            return default_factory(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    handler = CommunicationContainerFetchHandler(RedisPipeCommunicationContainer(pipe, redis_key))
    async with FetchCommunicationServiceWrapper(handler).serving() as listener, \
            FetchCommunicationClient.connect("127.0.0.1", listener.bound_port) as client:
        loop.set_task_factory(counting_factory)
        try:
            for comm_id, raw in raws.items():
                assert await client.fetch_raw([comm_id]) == [raw]
        finally:
            loop.set_task_factory(default_factory)
    assert server_tasks == []


async def test_index_pages_and_the_fallback_for_a_hash_without_one(pipe: RedisPipe, redis_client: Any,
                                                                    redis_key: str, raws: dict[str, bytes],
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    await redis_client.hset(redis_key, mapping=raws)  # as concrete-python writes it: no index
    container = RedisPipeCommunicationContainer(pipe, redis_key)
    with caplog.at_level(logging.WARNING, "aioaccess.backends.redis"):
        assert sorted(await container.ids(0, None)) == sorted(raws)
    assert "redis-index" in caplog.text
    assert await build_index(pipe, container.layout) == len(raws)
    assert await redis_client.zcard(f"{redis_key}:ids") == len(raws)
    caplog.clear()
    with caplog.at_level(logging.WARNING, "aioaccess.backends.redis"):
        pages = [await container.ids(offset, 7) for offset in range(0, len(raws), 7)]
    assert "redis-index" not in caplog.text
    assert [i for page in pages for i in page] == sorted(raws)
    assert await container.ids(len(raws), 5) == []
    assert await container.ids(3, 0) == []
    assert len(await container.ids(-3, None)) == 3  # Python's slicing, as concrete-python


@pytest.mark.parametrize("shards", [1, 5])
async def test_sharded_layout(pipe: RedisPipe, redis_client: Any, redis_key: str, raws: dict[str, bytes],
                              shards: int) -> None:
    store = RedisPipeStoreHandler(pipe, redis_key, shards=shards)
    await asyncio.gather(*(store.store_raw(i, r) for i, r in raws.items()))
    for comm_id, raw in raws.items():  # the documented layout, read with a plain client
        bucket = zlib.crc32(comm_id.encode()) % shards
        assert await redis_client.hget(f"{redis_key}:{{{bucket}}}", comm_id) == raw
        assert await redis_client.zscore(f"{redis_key}:{{{bucket}}}:ids", comm_id) == 0
    container = RedisPipeCommunicationContainer(pipe, redis_key, shards=shards)
    ids = list(raws)
    assert await container.get_raw_many(ids) == raws
    assert await container.count() == len(raws)
    everything = await container.ids()
    assert sorted(everything) == sorted(raws)
    assert [i for off in range(0, len(raws), 6) for i in await container.ids(off, 6)] == everything


async def test_a_hung_or_stopped_redis_fails_within_the_timeout_and_recovers(raws: dict[str, bytes]) -> None:
    redis_proc = RedisServerProcess()
    await asyncio.to_thread(redis_proc.start)
    pipe = RedisPipe(redis_proc.url, timeout=1)
    try:
        container = RedisPipeCommunicationContainer(pipe, "comms")
        store = RedisPipeStoreHandler(pipe, "comms")
        ids = list(raws)[:3]
        handler = CommunicationContainerFetchHandler(container)
        async with asyncio.timeout(GUARD), FetchCommunicationServiceWrapper(handler).serving() as listener, \
                FetchCommunicationClient.connect("127.0.0.1", listener.bound_port) as client:
            for i in ids:
                await store.store_raw(i, raws[i])
            assert await client.fetch_raw(ids) == [raws[i] for i in ids]
            assert redis_proc.proc is not None
            os.kill(redis_proc.proc.pid, signal.SIGSTOP)
            try:
                started = asyncio.get_running_loop().time()
                with pytest.raises(ServicesException, match="no answer within 1"):
                    await client.fetch_raw(ids)
                assert asyncio.get_running_loop().time() - started < 5
            finally:
                os.kill(redis_proc.proc.pid, signal.SIGCONT)
            assert await client.fetch_raw(ids) == [raws[i] for i in ids]
            await asyncio.to_thread(redis_proc.stop)
            with pytest.raises(ServicesException, match="redis"):
                await client.fetch_raw(ids)
            with pytest.raises(BackendUnavailable, match="cannot connect"):
                await store.store_raw(ids[0], raws[ids[0]])
            await asyncio.to_thread(redis_proc.start)  # same port, empty (no persistence)
            await store.store_raw(ids[0], raws[ids[0]])
            assert await client.fetch_raw(ids) == [raws[ids[0]]]
    finally:
        await pipe.aclose()
        await asyncio.to_thread(redis_proc.stop)


async def test_shutdown_waits_for_a_fetch_waiting_on_redis(raws: dict[str, bytes]) -> None:
    from aioaccess.server import Server, ServerConfig

    redis_proc = RedisServerProcess()
    await asyncio.to_thread(redis_proc.start)
    pipe = RedisPipe(redis_proc.url, timeout=1)
    comm_id = next(iter(raws))
    try:
        await RedisPipeStoreHandler(pipe, "comms").store_raw(comm_id, raws[comm_id])
        wrapper = FetchCommunicationServiceWrapper(
            CommunicationContainerFetchHandler(RedisPipeCommunicationContainer(pipe, "comms")),
            config=ServerConfig(graceful_timeout=10))
        server = Server(wrapper.config)
        listener = server.add_service(wrapper.processor, "127.0.0.1", 0)
        await server.startup()
        async with asyncio.timeout(GUARD), FetchCommunicationClient.connect("127.0.0.1", listener.bound_port) as fc:
            assert await fc.fetch_raw([comm_id]) == [raws[comm_id]]
            assert redis_proc.proc is not None
            os.kill(redis_proc.proc.pid, signal.SIGSTOP)
            try:
                call = asyncio.create_task(fc.fetch_raw([comm_id]))
                while not server.state.tasks:  # the call waits on Redis, as a plain future
                    await asyncio.sleep(0.01)
                assert not any(isinstance(t, asyncio.Task) for t in server.state.tasks)
                await server.shutdown()  # waits for it: its answer (Redis's timeout) still reaches the client
                with pytest.raises(ServicesException, match="no answer within 1"):
                    await call
            finally:
                os.kill(redis_proc.proc.pid, signal.SIGCONT)
    finally:
        await pipe.aclose()
        await asyncio.to_thread(redis_proc.stop)


async def test_each_change_is_read_and_each_new_value_checked(redis_server: str, redis_client: Any, redis_key: str,
                                                              raws: dict[str, bytes],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    ids = list(raws)[:3]
    await redis_client.hset(redis_key, mapping={i: raws[i] for i in ids})
    pipe = RedisPipe(redis_server, timeout=5)
    container = RedisPipeCommunicationContainer(pipe, redis_key, owns_pipe=True)
    routed: list[list[str]] = []
    fetch_then = container.fetch_then

    def spy(ids: list[str], done: Any) -> Any:
        routed.append(list(ids))
        return fetch_then(ids, done)

    container.fetch_then = spy  # type: ignore[method-assign]
    handler = CommunicationContainerFetchHandler(container)
    async with asyncio.timeout(GUARD), FetchCommunicationServiceWrapper(handler).serving() as listener, \
            FetchCommunicationClient.connect("127.0.0.1", listener.bound_port) as client:
        assert await client.fetch_raw(ids) == [raws[i] for i in ids]
        assert await client.fetch_raw([ids[0]]) == [raws[ids[0]]]
        await redis_client.hset(redis_key, ids[0], raws[ids[1]])  # changed after it was served and checked
        assert await client.fetch_raw([ids[0]]) == [raws[ids[1]]]
        await redis_client.hset(redis_key, ids[0], raws[ids[0]][:-3])  # and now corrupt
        for call in ([ids[0]], [ids[1], ids[0]]):
            with pytest.raises(ServicesException, match=ids[0]):
                await client.fetch_raw(call)
        with caplog.at_level(logging.WARNING, "aioaccess.handlers.fetch"):
            assert await client.fetch_raw(["absent", ids[2], "gone"]) == [raws[ids[2]]]
        assert "Unable to find 2 Communications" in caplog.text
        assert await client.fetch_raw([ids[1]]) == [raws[ids[1]]]  # the connection still serves
        # many calls at once, each on its own connection: coalesced, each answered with its own ids
        clients = [FetchCommunicationClient.connect("127.0.0.1", listener.bound_port) for _ in range(8)]
        opened = [await c.__aenter__() for c in clients]
        try:
            answers = await asyncio.gather(*(c.fetch_raw([ids[n % 2 + 1]]) for n, c in enumerate(opened)))
        finally:
            for c in clients:
                await c.__aexit__(None, None, None)
        assert answers == [[raws[ids[n % 2 + 1]]] for n in range(8)]
    assert routed[:2] == [ids, [ids[0]]] and len(routed) == 15  # every call took the callback route
    await container.aclose()


async def test_the_cache_of_checked_values_stays_within_its_budget(redis_server: str, redis_client: Any,
                                                                  redis_key: str, raws: dict[str, bytes]) -> None:
    await redis_client.hset(redis_key, mapping=raws)
    container = RedisPipeCommunicationContainer(RedisPipe(redis_server, timeout=5), redis_key, owns_pipe=True)
    budget = 3 * max(map(len, raws.values()))
    container.CHECKED_CACHE_BYTES = budget
    done: list[Any] = []
    for comm_id in raws:
        container.fetch_then([comm_id], done.append)
    while len(done) < len(raws):
        await asyncio.sleep(0.01)
    assert done == [[raw] for raw in raws.values()]
    assert 0 < container._checked_bytes <= budget
    assert sum(map(len, container._checked.values())) == container._checked_bytes
    await container.aclose()
