"""Layouts shared with concrete-python: what either library stores in Redis or S3, the other reads, byte for byte.

concrete-python's S3 classes take a bucket of the old ``boto`` (2.x) library;
boto 2.49 talks to moto's server here, in a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
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
# boto 2 installs a six meta-path importer that makes every later import in the
# process warn (ImportWarning), so concrete-python's S3 side runs in a subprocess.
_BOTO_SCRIPT = r"""
import os, sys, time
from urllib.parse import urlsplit
import boto, boto.exception, boto.s3.connection
from concrete.util import read_communication_from_file, write_communication_to_buffer
from concrete.util.access import S3BackedStoreHandler
from concrete.util.comm_container import S3BackedCommunicationContainer


def retry(fn, *args):
    # moto reads a SigV2 "AWS key:signature" header as SigV4 when the base64 signature holds
    # exactly four '/', and answers 500; a second later the Date, and so the signature, differ.
    for attempt in range(5):
        try:
            return fn(*args)
        except boto.exception.BotoServerError as exc:
            if exc.status != 500 or attempt == 4:
                raise
            time.sleep(1.1)


mode, endpoint, bucket_name, prefix_len, folder = sys.argv[1:]
prefix_len = int(prefix_len)
url = urlsplit(endpoint)
conn = boto.connect_s3(host=url.hostname, port=url.port, is_secure=False,
                       calling_format=boto.s3.connection.OrdinaryCallingFormat())
bucket = retry(conn.get_bucket, bucket_name)
if mode == "store":
    handler = S3BackedStoreHandler(bucket, prefix_len)
    for name in sorted(os.listdir(folder)):
        retry(handler.store, read_communication_from_file(os.path.join(folder, name)))
else:
    container = S3BackedCommunicationContainer(bucket, prefix_len)
    ids = retry(list, container)
    assert retry(len, container) == len(ids)
    for comm_id in ids:
        assert retry(container.__contains__, comm_id)
        with open(os.path.join(folder, comm_id + ".comm"), "wb") as f:
            f.write(write_communication_to_buffer(retry(container.__getitem__, comm_id)))
conn.close()
"""


def _concrete_python_s3(mode: str, endpoint: str, bucket: str, prefix_len: int, folder: str) -> None:
    subprocess.run([sys.executable, "-c", _BOTO_SCRIPT, mode, endpoint, bucket, str(prefix_len), folder],
                   check=True, stdin=subprocess.DEVNULL, timeout=120)


@pytest.mark.s3
@pytest.mark.parametrize("prefix_len", [4, 0])
async def test_aioaccess_reads_what_concrete_python_stored_in_s3(s3_server: str, s3_client: Any, s3_bucket: str,
                                                                  comms: list[Any], prefix_len: int,
                                                                  tmp_path: Any) -> None:
    for comm in comms:
        (tmp_path / f"{comm.id}.comm").write_bytes(write_communication_to_buffer(comm))
    await asyncio.to_thread(_concrete_python_s3, "store", s3_server, s3_bucket, prefix_len, os.fspath(tmp_path))
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
    await asyncio.to_thread(_concrete_python_s3, "read", s3_server, s3_bucket, 4, os.fspath(tmp_path))
    assert {p.stem: p.read_bytes() for p in tmp_path.iterdir()} == \
        {c.id: write_communication_to_buffer(c) for c in comms}
