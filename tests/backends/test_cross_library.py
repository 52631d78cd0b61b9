"""Layouts shared with concrete-python: what either library stores in Redis or S3, the other reads, byte for byte.

concrete-python's S3 classes take a bucket of the old ``boto`` (2.x) library;
boto 2.49 talks to moto's server here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from concrete.util import write_communication_to_buffer
from concrete.util.access import RedisHashBackedStoreHandler as CpRedisStore
from concrete.util.access import S3BackedStoreHandler as CpS3Store
from concrete.util.access import prefix_s3_key as cp_prefix_s3_key
from concrete.util.access import unprefix_s3_key as cp_unprefix_s3_key
from concrete.util.comm_container import RedisHashBackedCommunicationContainer as CpRedisContainer
from concrete.util.comm_container import S3BackedCommunicationContainer as CpS3Container
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
@pytest.fixture
def boto_bucket(s3_server: str, s3_bucket: str) -> Iterator[Any]:
    """The same bucket as a boto 2 ``Bucket``, as concrete-python's S3 classes expect."""
    import boto
    import boto.s3.connection

    endpoint = urlsplit(s3_server)
    conn = boto.connect_s3(host=endpoint.hostname, port=endpoint.port, is_secure=False,
                           calling_format=boto.s3.connection.OrdinaryCallingFormat())
    try:
        yield conn.get_bucket(s3_bucket)
    finally:
        conn.close()


def boto_warnings(test: Any) -> Any:
    """boto 2.49 on Python 3.11: its vendored six and its plugin loader warn on import."""
    test = pytest.mark.filterwarnings("ignore::ImportWarning")(test)
    return pytest.mark.filterwarnings("ignore:the imp module is deprecated:DeprecationWarning")(test)


@pytest.mark.s3
@pytest.mark.parametrize("prefix_len", [4, 0])
@boto_warnings
async def test_aioaccess_reads_what_concrete_python_stored_in_s3(boto_bucket: Any, s3_client: Any, s3_bucket: str,
                                                                  comms: list[Any], prefix_len: int) -> None:
    def store_with_concrete_python() -> None:
        handler = CpS3Store(boto_bucket, prefix_len)
        for comm in comms:
            handler.store(comm)

    await asyncio.to_thread(store_with_concrete_python)
    container = S3BackedCommunicationContainer(s3_client, s3_bucket, prefix_len)
    for comm in comms:
        assert await container.get_raw(comm.id) == write_communication_to_buffer(comm)
    assert await container.count() == N
    assert sorted(await container.ids()) == sorted(c.id for c in comms)


@pytest.mark.s3
@boto_warnings
async def test_concrete_python_reads_what_aioaccess_stored_in_s3(boto_bucket: Any, s3_client: Any, s3_bucket: str,
                                                                  comms: list[Any]) -> None:
    handler = S3BackedStoreHandler(s3_client, s3_bucket, prefix_len=4)
    for comm in comms:
        await handler.store_raw(comm.id, write_communication_to_buffer(comm))

    def read_with_concrete_python() -> None:
        container = CpS3Container(boto_bucket, 4)
        assert len(container) == N
        assert sorted(container) == sorted(c.id for c in comms)
        for comm in comms:
            assert comm.id in container
            assert write_communication_to_buffer(container[comm.id]) == write_communication_to_buffer(comm)

    await asyncio.to_thread(read_with_concrete_python)
