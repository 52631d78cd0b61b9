"""Redis Cluster (3 masters, 1 replica each) through the fast path: layout spread, MOVED, failover, a node down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from _redis_cluster import RedisCluster
from concrete.access.ttypes import FetchRequest
from concrete.util import write_communication_to_buffer
from concrete.util.access_wrapper import FetchCommunicationClientWrapper
from conftest import concrete_comms
from redis.crc import key_slot

from aioaccess import (
    CommunicationContainerFetchHandler,
    FetchCommunicationClient,
    FetchCommunicationServiceWrapper,
    ServicesException,
    StoreCommunicationClient,
    StoreCommunicationServiceWrapper,
)
from aioaccess.backends.redis_cluster import RedisClusterPipe
from aioaccess.backends.redis_fast import RedisPipeCommunicationContainer, RedisPipeStoreHandler

pytestmark = [pytest.mark.redis, pytest.mark.interop]

GUARD = 120
TIMEOUT = 2.0


@pytest.fixture(scope="module")
def raws() -> dict[str, bytes]:
    return {c.id: write_communication_to_buffer(c) for c in concrete_comms(300, prefix="cluster")}


@pytest.fixture
async def pipe(redis_cluster: RedisCluster) -> AsyncIterator[RedisClusterPipe]:
    p = RedisClusterPipe(redis_cluster.url, timeout=TIMEOUT)
    yield p
    await p.aclose()


def _hash_fields_per_master(cluster: RedisCluster, key: str) -> list[int]:
    import redis

    counts = []
    for node in cluster.masters():
        with redis.Redis(port=node.port) as db:
            counts.append(sum(db.hlen(k) for k in db.scan_iter(match=f"{key}:{{*}}") if not k.endswith(b":ids")))
    return counts


async def test_store_and_fetch_spread_over_every_master(pipe: RedisClusterPipe, redis_cluster: RedisCluster,
                                                        raws: dict[str, bytes]) -> None:
    key = f"corpus-{uuid.uuid4().hex[:8]}"
    store = StoreCommunicationServiceWrapper(RedisPipeStoreHandler(pipe, key, shards=64))
    container = RedisPipeCommunicationContainer(pipe, key, shards=64)
    async with asyncio.timeout(GUARD), store.serving() as store_listener, \
            FetchCommunicationServiceWrapper(CommunicationContainerFetchHandler(container)).serving() as listener:
        async with StoreCommunicationClient.connect("127.0.0.1", store_listener.bound_port) as client:
            await asyncio.gather(*(client.store_raw(r) for r in raws.values()))

        def fetch_with_concrete_python() -> None:
            ids = list(raws)
            with FetchCommunicationClientWrapper("127.0.0.1", listener.bound_port) as cp:
                result = cp.fetch(FetchRequest(communicationIds=[*ids[:40], "absent"]))
                assert [write_communication_to_buffer(c) for c in result.communications] == \
                    [raws[i] for i in ids[:40]]
                assert cp.getCommunicationCount() == len(raws)
                pages = [cp.getCommunicationIDs(offset, 50) for offset in range(0, len(raws), 50)]
                assert sorted(i for page in pages for i in page) == sorted(raws)

        await asyncio.to_thread(fetch_with_concrete_python)
    counts = _hash_fields_per_master(redis_cluster, key)
    assert sum(counts) == len(raws) and len(counts) == 3
    assert all(0 < n <= 0.4 * len(raws) for n in counts), counts


async def test_moved_redirects_are_followed_and_fix_the_slot_map(pipe: RedisClusterPipe,
                                                                 raws: dict[str, bytes]) -> None:
    key = f"moved-{uuid.uuid4().hex[:8]}"
    store = RedisPipeStoreHandler(pipe, key, shards=16)
    container = RedisPipeCommunicationContainer(pipe, key, shards=16)
    some = dict(list(raws.items())[:60])
    await asyncio.gather(*(store.store_raw(i, r) for i, r in some.items()))
    right = list(pipe.slots)
    wrong = right[0]
    pipe.slots = [wrong] * 16384  # every key sent to one master: the other two answer MOVED
    assert await container.get_raw_many(list(some)) == some
    for hash_key in container.layout.hash_keys:
        assert pipe.slots[key_slot(hash_key)] is right[key_slot(hash_key)]
    await asyncio.sleep(0.5)  # the refresh a MOVED schedules restores the whole map
    assert pipe.slots == right
    pipe.slots = [wrong] * 16384
    await store.store_raw("after-moved", some[next(iter(some))])
    assert await container.get_raw("after-moved") == some[next(iter(some))]


async def test_failover_loses_no_acknowledged_store_and_a_down_node_fails_fast(raws: dict[str, bytes]) -> None:
    with RedisCluster() as cluster:
        pipe = RedisClusterPipe(cluster.url, timeout=TIMEOUT, wait_replicas=1)
        key = "failover"
        store = StoreCommunicationServiceWrapper(RedisPipeStoreHandler(pipe, key, shards=16))
        container = RedisPipeCommunicationContainer(pipe, key, shards=16)
        fetch = FetchCommunicationServiceWrapper(CommunicationContainerFetchHandler(container))
        acked: set[str] = set()
        error_latencies: list[float] = []
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(GUARD), store.serving() as store_listener, fetch.serving() as fetch_listener:
                todo = list(raws)

                async def storer(client: StoreCommunicationClient, stop: asyncio.Event) -> None:
                    while todo and not stop.is_set():
                        comm_id = todo.pop()
                        started = loop.time()
                        try:
                            await client.store_raw(raws[comm_id])
                            acked.add(comm_id)
                        except ServicesException:
                            error_latencies.append(loop.time() - started)
                            todo.insert(0, comm_id)
                            await asyncio.sleep(0.05)

                stop = asyncio.Event()
                clients = [StoreCommunicationClient.connect("127.0.0.1", store_listener.bound_port, timeout=30)
                           for _ in range(4)]
                async with clients[0] as c0, clients[1] as c1, clients[2] as c2, clients[3] as c3:
                    workers = [asyncio.create_task(storer(c, stop)) for c in (c0, c1, c2, c3)]
                    while len(acked) < 60:
                        await asyncio.sleep(0.02)
                    victim = cluster.masters()[0]
                    victim.kill()  # SIGKILL: its replica takes over after cluster-node-timeout
                    victim.stop()
                    before = len(acked)
                    await asyncio.to_thread(cluster.wait_failed_over, victim.port, 60)
                    while len(acked) < before + 60 and todo:
                        await asyncio.sleep(0.02)
                    stop.set()
                    await asyncio.gather(*workers)
                assert error_latencies, "no store failed while a master was down"
                assert max(error_latencies) < TIMEOUT + 3

                # Every acknowledged store survived the failover, byte for byte.
                async with FetchCommunicationClient.connect("127.0.0.1", fetch_listener.bound_port) as fc:
                    ids = sorted(acked)
                    assert await fc.fetch_raw(ids) == [raws[i] for i in ids]

                    # A shard with no node left (the promoted replica killed too): ServicesException in time.
                    orphan = next(n for n in cluster.masters()
                                  if "connected_slaves:0" in cluster.cli(n.port, "info", "replication"))
                    orphan.kill()
                    orphan.stop()
                    bucket_ids = [i for i in ids if pipe.pipe_for(container.layout.hash_keys[
                        container.layout.bucket(i)]) is pipe.node("127.0.0.1", orphan.port)]
                    assert bucket_ids
                    started = loop.time()
                    with pytest.raises(ServicesException, match="redis"):
                        await fc.fetch_raw(bucket_ids[:1])
                    assert loop.time() - started < TIMEOUT + 3
                    # ... and service resumes when the nodes return (same ports, same cluster config).
                    victim.start()
                    orphan.start()
                    await asyncio.to_thread(cluster.wait_ok, 60)
                    others = [i for i in ids if i not in bucket_ids]
                    assert await fc.fetch_raw(others[:20]) == [raws[i] for i in others[:20]]
                    async with StoreCommunicationClient.connect("127.0.0.1", store_listener.bound_port) as sc:
                        await sc.store_raw(raws[bucket_ids[0]])
                    assert await fc.fetch_raw(bucket_ids[:1]) == [raws[bucket_ids[0]]]
        finally:
            await pipe.aclose()

