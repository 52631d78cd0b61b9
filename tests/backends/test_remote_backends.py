"""Redis, S3 and remote-fetch containers: what the contract does not cover."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer
from conftest import concrete_comms, unused_port

from aioaccess import (
    BackendUnavailable,
    CommunicationContainerFetchHandler,
    FetchBackedCommunicationContainer,
    FetchCommunicationClientWrapper,
    FetchCommunicationServiceWrapper,
    FetchRequest,
    RedisHashBackedCommunicationContainer,
    S3BackedCommunicationContainer,
    prefix_s3_key,
)
from aioaccess.backends.redis import make_redis_client
from aioaccess.backends.redis_fast import RedisPipeCommunicationContainer
from aioaccess.backends.redis_pipe import RedisPipe
from aioaccess.backends.s3 import check_bucket


@pytest.fixture(scope="module")
def raws() -> dict[str, bytes]:
    return {c.id: write_communication_to_buffer(c) for c in concrete_comms(7, prefix="remote")}


# -- Redis ---------------------------------------------------------------------
@pytest.mark.redis
async def test_redis_wrong_key_type_is_backend_unavailable(redis_client: Any, redis_key: str) -> None:
    await redis_client.set(redis_key, b"a string, not a hash")
    container = RedisHashBackedCommunicationContainer(redis_client, redis_key)
    with pytest.raises(BackendUnavailable, match="WRONGTYPE"):
        await container.get_raw_many(["x"])
    with pytest.raises(BackendUnavailable):
        await container.count()


@pytest.mark.redis
async def test_redis_unreachable_is_backend_unavailable() -> None:
    client = make_redis_client(f"redis://127.0.0.1:{unused_port()}/0", connect_timeout=1, retries=0)
    async with RedisHashBackedCommunicationContainer(client, "k", owns_client=True) as container:
        for call in (container.get_raw_many(["x"]), container.count(), container.contains("x"), container.ids()):
            with pytest.raises(BackendUnavailable, match="redis backend unavailable"):
                await call


@pytest.mark.redis
async def test_redis_missing_key_is_empty(redis_client: Any, redis_key: str) -> None:
    container = RedisHashBackedCommunicationContainer(redis_client, redis_key)
    assert await container.count() == 0
    assert await container.ids() == []
    assert await container.get_raw_many(["a", "b"]) == {}


@pytest.mark.redis
@pytest.mark.parametrize("client", ["redis-py", "pipe"])
async def test_redis_field_names_that_are_not_utf8_are_skipped_with_one_warning(
        client: str, redis_server: str, redis_client: Any, redis_key: str, raws: dict[str, bytes],
        caplog: pytest.LogCaptureFixture) -> None:
    await redis_client.hset(redis_key, mapping={**raws, b"\xff\xfe-not-utf8": b"junk", b"caf\xe9": b"junk"})
    if client == "pipe":  # the default of redis:// sources: no id index here, so listing is HKEYS
        container: Any = RedisPipeCommunicationContainer(RedisPipe(redis_server, timeout=5), redis_key,
                                                         owns_pipe=True)
    else:
        container = RedisHashBackedCommunicationContainer(redis_client, redis_key)
    handler = CommunicationContainerFetchHandler(container)
    with caplog.at_level("WARNING", logger="aioaccess.backends.redis"):
        async with FetchCommunicationServiceWrapper(handler).serving() as listener:
            async with FetchCommunicationClientWrapper("127.0.0.1", listener.bound_port) as client:
                assert sorted(await client.getCommunicationIDs(0, 100)) == sorted(raws)
                assert sorted(await client.getCommunicationIDs(0, 100)) == sorted(raws)
                assert await client.getCommunicationCount() == len(raws) + 2  # HLEN, as concrete-python
                fetched = await client.fetch(FetchRequest(communicationIds=sorted(raws)))
                assert len(fetched.communications) == len(raws)
        assert sorted([i async for i in container]) == sorted(raws)
    warnings = [r.getMessage() for r in caplog.records if "not UTF-8" in r.getMessage()]
    assert len(warnings) == 1 and "Skipping 2 field names" in warnings[0], warnings
    await redis_client.hdel(redis_key, b"caf\xe9")
    with caplog.at_level("WARNING", logger="aioaccess.backends.redis"):
        assert sorted(await container.ids()) == sorted(raws)
    assert "Skipping 1 field names" in caplog.records[-1].getMessage()
    await container.aclose()


# -- S3 --------------------------------------------------------------------------
@pytest.mark.s3
async def test_s3_lists_across_pages_and_strips_prefixes(s3_client: Any, s3_bucket: str,
                                                         raws: dict[str, bytes]) -> None:
    for comm_id, raw in raws.items():
        await s3_client.put_object(Bucket=s3_bucket, Key=prefix_s3_key(comm_id, 6), Body=raw)
    container = S3BackedCommunicationContainer(s3_client, s3_bucket, prefix_len=6, list_page_size=2,
                                               max_concurrency=2)
    ids = await container.ids()
    assert sorted(ids) == sorted(raws)
    assert ids == [k[6:] for k in sorted(prefix_s3_key(i, 6) for i in raws)]  # S3 lists in key order
    assert await container.count() == len(raws)
    assert await container.get_raw_many(list(raws)) == raws  # more ids than the concurrency limit


@pytest.mark.s3
async def test_s3_missing_bucket_is_backend_unavailable(s3_client: Any) -> None:
    container = S3BackedCommunicationContainer(s3_client, "no-such-bucket-here")
    with pytest.raises(BackendUnavailable, match="NoSuchBucket"):
        await container.get_raw_many(["a", "b"])
    with pytest.raises(BackendUnavailable):
        await container.count()
    with pytest.raises(BackendUnavailable, match="does not exist"):
        await check_bucket(s3_client, "no-such-bucket-here")


# -- remote fetch ------------------------------------------------------------------
class CountingHandler(CommunicationContainerFetchHandler):
    def __init__(self, raws: dict[str, bytes]) -> None:
        super().__init__(dict(raws))
        self.fetch_calls: list[list[str]] = []

    async def fetch_raw(self, ids: Sequence[str]) -> list[bytes]:
        self.fetch_calls.append(list(ids))
        return await super().fetch_raw(ids)


async def test_fetch_get_many_is_one_call_over_pooled_connections(raws: dict[str, bytes]) -> None:
    handler = CountingHandler(raws)
    async with FetchCommunicationServiceWrapper(handler).serving() as listener:
        async with FetchBackedCommunicationContainer("127.0.0.1", listener.bound_port, max_connections=2) as c:
            ids = [*raws, "absent"]
            assert await c.get_raw_many(ids) == raws
            assert handler.fetch_calls == [ids]
            assert await c.count() == len(raws)
            assert [i async for i in c] == list(raws)
            assert c.pool.size <= 2
        assert c.pool.size == 0


async def test_fetch_unreachable_is_backend_unavailable() -> None:
    async with FetchBackedCommunicationContainer("127.0.0.1", unused_port(), timeout=2) as container:
        with pytest.raises(BackendUnavailable, match="fetch backend unavailable"):
            await container.get_raw_many(["x"])
        with pytest.raises(BackendUnavailable):
            await container.count()
