"""More concurrent calls than pooled Redis connections wait for one; none fail."""

from __future__ import annotations

import asyncio

import pytest

from aioaccess import codec
from aioaccess.backends.redis import RedisHashBackedCommunicationContainer, make_redis_client
from benchmarks.synthetic import make_communication

pytestmark = pytest.mark.redis


async def test_calls_beyond_max_connections_wait_instead_of_failing(redis_server: str, redis_key: str) -> None:
    client = make_redis_client(redis_server, max_connections=4)
    async with client:
        raws = {f"c{i}": codec.encode(make_communication(f"c{i}", size=3000, seed=i)) for i in range(10)}
        await client.hset(redis_key, mapping=raws)
        container = RedisHashBackedCommunicationContainer(client, redis_key, timeout=30)
        results = await asyncio.gather(*(container.get_raw_many([f"c{i % 10}", "absent"]) for i in range(200)))
        assert results == [{f"c{i % 10}": raws[f"c{i % 10}"]} for i in range(200)]
        assert client.connection_pool.max_connections == 4
