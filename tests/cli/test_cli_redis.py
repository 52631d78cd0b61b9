"""The Redis commands end to end: redis+cluster:// servers, ``aioaccess copy`` and ``aioaccess redis-index``."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from _procs import aioaccess_server
from _redis_cluster import RedisCluster
from concrete.access.ttypes import FetchRequest
from concrete.util import write_communication_to_buffer
from concrete.util.access_wrapper import FetchCommunicationClientWrapper, StoreCommunicationClientWrapper
from conftest import concrete_comms

pytestmark = [pytest.mark.redis, pytest.mark.interop]

N = 30


def aioaccess(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aioaccess", *argv], capture_output=True, text=True, timeout=120)


def test_redis_index_builds_the_index_of_a_concrete_python_hash(redis_server: str, redis_client: Any) -> None:
    import redis

    key = f"cp-{uuid.uuid4().hex[:8]}"
    comms = concrete_comms(N, prefix=key)
    with redis.Redis.from_url(redis_server) as db:
        db.hset(key, mapping={c.id: write_communication_to_buffer(c) for c in comms})
        done = aioaccess("redis-index", key, "--url", redis_server)
        assert done.returncode == 0, done.stderr
        assert f"indexed {N} ids" in done.stdout
        assert sorted(db.zrange(f"{key}:ids", 0, -1)) == sorted(c.id.encode() for c in comms)
    bad = aioaccess("redis-index", key, "--url", "s3://nope")
    assert bad.returncode == 2 and "--url must be" in bad.stderr


def test_copy_a_directory_into_the_cluster_then_serve_it(tmp_path: Any, redis_cluster: RedisCluster) -> None:
    key = f"copy-{uuid.uuid4().hex[:8]}"
    comms = concrete_comms(N, prefix=key)
    expected = {c.id: write_communication_to_buffer(c) for c in comms}
    source = tmp_path / "src"
    source.mkdir()
    for comm_id, raw in expected.items():
        (source / f"{comm_id}.comm").write_bytes(raw)
    first = aioaccess("copy", os.fspath(source), redis_cluster.url, "--redis-key", key, "--shards", "8")
    assert first.returncode == 0, first.stderr
    assert f"copied {N}, skipped 0, failed 0" in first.stdout
    again = aioaccess("copy", os.fspath(source), redis_cluster.url, "--redis-key", key, "--shards", "8")
    assert f"copied 0, skipped {N}, failed 0" in again.stdout  # resumable: what is there is skipped

    # ... and from the sharded cluster layout back to one hash on a plain Redis (a different key).
    with aioaccess_server(tmp_path, "fetch-server", redis_cluster.url, "--redis-key", key, "--shards", "8") as port:
        with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
            ids = list(expected)
            result = client.fetch(FetchRequest(communicationIds=ids))
            assert [write_communication_to_buffer(c) for c in result.communications] == list(expected.values())
            assert client.getCommunicationCount() == N
            assert sorted(client.getCommunicationIDs(0, N)) == sorted(ids)


def test_store_server_on_the_cluster_and_copy_to_a_single_hash(tmp_path: Any, redis_cluster: RedisCluster,
                                                                redis_server: str, redis_client: Any) -> None:
    key = f"store-{uuid.uuid4().hex[:8]}"
    comms = concrete_comms(N, prefix=key)
    with aioaccess_server(tmp_path, "store-server", redis_cluster.url, "--redis-key", key) as port:
        with StoreCommunicationClientWrapper("127.0.0.1", port) as client:
            for comm in comms:
                client.store(comm)
    done = aioaccess("copy", redis_cluster.url, redis_server, "--redis-key", key, "--target-redis-key", "single",
                     "--target-shards", "0")
    assert done.returncode == 0, done.stderr
    assert f"copied {N}, skipped 0, failed 0" in done.stdout

    import redis

    with redis.Redis.from_url(redis_server) as db:  # concrete-python's single-hash layout
        assert {k.decode(): v for k, v in db.hgetall("single").items()} == \
            {c.id: write_communication_to_buffer(c) for c in comms}
