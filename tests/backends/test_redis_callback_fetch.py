"""Fetches answered by callback on the Redis pipe (``fetch_then``): every change read, every new value checked."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer
from conftest import concrete_comms

from aioaccess import (
    CommunicationContainerFetchHandler,
    FetchCommunicationClient,
    FetchCommunicationServiceWrapper,
    ServicesException,
)
from aioaccess.backends.redis_fast import RedisPipeCommunicationContainer
from aioaccess.backends.redis_pipe import RedisPipe

pytestmark = pytest.mark.redis

GUARD = 60


@pytest.fixture(scope="module")
def raws() -> dict[str, bytes]:
    return {c.id: write_communication_to_buffer(c) for c in concrete_comms(12, prefix="then")}


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
