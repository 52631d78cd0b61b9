"""Layouts shared with concrete-python: what either library stores in Redis or S3, the other reads, byte for byte.

concrete-python's S3 classes take a bucket of the old ``boto`` (2.x) library;
boto 2.49 talks to moto's server here, in a subprocess.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
from _concrete_s3 import concrete_python_s3
from concrete.util import write_communication_to_buffer
from concrete.util.access import RedisHashBackedStoreHandler as CpRedisStore
from concrete.util.access import prefix_s3_key as cp_prefix_s3_key
from concrete.util.access import unprefix_s3_key as cp_unprefix_s3_key
from concrete.util.comm_container import RedisHashBackedCommunicationContainer as CpRedisContainer
from conftest import concrete_comms

from aioaccess import (
    RedisHashBackedCommunicationContainer,
    RedisHashBackedStoreHandler,
    S3BackedCommunicationContainer,
    S3BackedStoreHandler,
    prefix_s3_key,
    unprefix_s3_key,
)

pytestmark = pytest.mark.interop

N = 8


@pytest.fixture(scope="module")
def comms() -> list[Any]:
    return concrete_comms(N, prefix="cross")


@pytest.mark.parametrize("comm_id", ["", "a", "NYT_ENG_20130101.0001", "ünïcødé-文书", "with/slash and space",
                                     "x" * 300])
@pytest.mark.parametrize("prefix_len", [0, 1, 4, 8, 32])
def test_prefix_s3_key_matches_concrete_python(comm_id: str, prefix_len: int) -> None:
    key = prefix_s3_key(comm_id, prefix_len)
    assert key == cp_prefix_s3_key(comm_id, prefix_len)
    assert unprefix_s3_key(key, prefix_len) == cp_unprefix_s3_key(key, prefix_len) == comm_id


# -- Redis ---------------------------------------------------------------------
@pytest.fixture
def sync_redis(redis_server: str, redis_client: Any) -> Iterator[Any]:
    """concrete-python's kind of client: sync redis-py (database flushed by ``redis_client``)."""
    import redis

    client = redis.Redis.from_url(redis_server)
    try:
        yield client
    finally:
        client.close()


@pytest.mark.redis
async def test_aioaccess_reads_what_concrete_python_stored_in_redis(sync_redis: Any, redis_client: Any,
                                                                     redis_key: str, comms: list[Any]) -> None:
    def store_with_concrete_python() -> None:
        handler = CpRedisStore(sync_redis, redis_key)
        for comm in comms:
            handler.store(comm)

    await asyncio.to_thread(store_with_concrete_python)
    container = RedisHashBackedCommunicationContainer(redis_client, redis_key)
    for comm in comms:
        assert await container.get_raw(comm.id) == write_communication_to_buffer(comm)
    assert await container.count() == N
    assert sorted(await container.ids()) == sorted(c.id for c in comms)


@pytest.mark.redis
async def test_concrete_python_reads_what_aioaccess_stored_in_redis(sync_redis: Any, redis_client: Any,
                                                                     redis_key: str, comms: list[Any]) -> None:
    handler = RedisHashBackedStoreHandler(redis_client, redis_key)
    for comm in comms:
        await handler.store_raw(comm.id, write_communication_to_buffer(comm))

    def read_with_concrete_python() -> None:
        container = CpRedisContainer(sync_redis, redis_key)
        assert len(container) == N
        for comm in comms:
            assert comm.id in container
            assert write_communication_to_buffer(container[comm.id]) == write_communication_to_buffer(comm)

    await asyncio.to_thread(read_with_concrete_python)


# -- S3 ------------------------------------------------------------------------
@pytest.mark.s3
@pytest.mark.parametrize("prefix_len", [4, 0])
async def test_aioaccess_reads_what_concrete_python_stored_in_s3(s3_server: str, s3_client: Any, s3_bucket: str,
                                                                  comms: list[Any], prefix_len: int,
                                                                  tmp_path: Any) -> None:
    for comm in comms:
        (tmp_path / f"{comm.id}.comm").write_bytes(write_communication_to_buffer(comm))
    await asyncio.to_thread(concrete_python_s3, "store", s3_server, s3_bucket, prefix_len, os.fspath(tmp_path))
    container = S3BackedCommunicationContainer(s3_client, s3_bucket, prefix_len)
    for comm in comms:
        assert await container.get_raw(comm.id) == write_communication_to_buffer(comm)
    assert await container.count() == N
    assert sorted(await container.ids()) == sorted(c.id for c in comms)


@pytest.mark.s3
async def test_concrete_python_reads_what_aioaccess_stored_in_s3(s3_server: str, s3_client: Any, s3_bucket: str,
                                                                  comms: list[Any], tmp_path: Any) -> None:
    handler = S3BackedStoreHandler(s3_client, s3_bucket, prefix_len=4)
    for comm in comms:
        await handler.store_raw(comm.id, write_communication_to_buffer(comm))
    await asyncio.to_thread(concrete_python_s3, "read", s3_server, s3_bucket, 4, os.fspath(tmp_path))
    assert {p.stem: p.read_bytes() for p in tmp_path.iterdir()} == \
        {c.id: write_communication_to_buffer(c) for c in comms}
