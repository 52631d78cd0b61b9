"""A backend that goes away under a running server: calls fail with ServicesException, then recover by themselves."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from _services import MotoServerProcess, RedisServerProcess, set_dummy_aws_env
from concrete.util import write_communication_to_buffer
from conftest import concrete_comms

from aioaccess import (
    CommunicationContainerFetchHandler,
    FetchCommunicationClient,
    FetchCommunicationServiceWrapper,
    RedisHashBackedCommunicationContainer,
    RedisHashBackedStoreHandler,
    S3BackedCommunicationContainer,
    ServicesException,
    StoreCommunicationClient,
    StoreCommunicationServiceWrapper,
    prefix_s3_key,
)
from aioaccess.backends.redis import make_redis_client
from aioaccess.backends.s3 import make_s3_client

#: Guard against hangs only; the backends' own timeouts are far shorter.
GUARD = 60


@pytest.fixture(scope="module")
def raws() -> dict[str, bytes]:
    return {c.id: write_communication_to_buffer(c) for c in concrete_comms(3, prefix="outage")}


@pytest.mark.redis
async def test_redis_restart_under_running_servers(raws: dict[str, bytes]) -> None:
    redis_proc = RedisServerProcess()
    await asyncio.to_thread(redis_proc.start)
    client = make_redis_client(redis_proc.url, socket_timeout=1, connect_timeout=1)
    try:
        await client.hset("comms", mapping=raws)
        fetch = FetchCommunicationServiceWrapper(
            CommunicationContainerFetchHandler(RedisHashBackedCommunicationContainer(client, "comms", timeout=5)))
        store = StoreCommunicationServiceWrapper(RedisHashBackedStoreHandler(client, "comms", timeout=5))
        ids = list(raws)
        async with fetch.serving() as fetch_listener, store.serving() as store_listener, \
                FetchCommunicationClient.connect("127.0.0.1", fetch_listener.bound_port) as fc, \
                StoreCommunicationClient.connect("127.0.0.1", store_listener.bound_port) as sc:
            async with asyncio.timeout(GUARD):
                assert await fc.fetch_raw(ids) == list(raws.values())

                # A hung Redis: the call fails once the socket timeout passes, then works again.
                assert redis_proc.proc is not None
                os.kill(redis_proc.proc.pid, signal.SIGSTOP)
                try:
                    with pytest.raises(ServicesException, match="redis"):
                        await fc.fetch_raw(ids)
                finally:
                    os.kill(redis_proc.proc.pid, signal.SIGCONT)
                assert await fc.fetch_raw(ids) == list(raws.values())

                # A stopped Redis: refused at once.
                await asyncio.to_thread(redis_proc.stop)
                with pytest.raises(ServicesException, match="redis"):
                    await fc.fetch_raw(ids)
                with pytest.raises(ServicesException, match="redis"):
                    await sc.store_raw(raws[ids[0]])

                await asyncio.to_thread(redis_proc.start)  # same port, empty (no persistence)
                await sc.store_raw(raws[ids[0]])  # through the same server, same client pool
                assert await fc.fetch_raw(ids) == [raws[ids[0]]]
                assert await fc.getCommunicationCount() == 1
    finally:
        await client.aclose()
        await asyncio.to_thread(redis_proc.stop)


@pytest.mark.s3
async def test_s3_outage_under_a_running_server(raws: dict[str, bytes]) -> None:
    set_dummy_aws_env()
    moto = MotoServerProcess()
    await asyncio.to_thread(moto.start)
    try:
        async with make_s3_client(moto.url, max_attempts=2, connect_timeout=1, read_timeout=3) as s3:

            async def populate() -> None:
                await s3.create_bucket(Bucket="outage")
                for comm_id, raw in raws.items():
                    await s3.put_object(Bucket="outage", Key=prefix_s3_key(comm_id, 4), Body=raw)

            await populate()
            container = S3BackedCommunicationContainer(s3, "outage", timeout=10)
            ids = list(raws)
            async with FetchCommunicationServiceWrapper(CommunicationContainerFetchHandler(container)).serving() \
                    as listener, FetchCommunicationClient.connect("127.0.0.1", listener.bound_port) as fc:
                async with asyncio.timeout(GUARD):
                    assert await fc.fetch_raw(ids) == list(raws.values())

                    await asyncio.to_thread(moto.stop)
                    with pytest.raises(ServicesException, match="s3"):
                        await fc.fetch_raw(ids)

                    await asyncio.to_thread(moto.start)  # same port, empty
                    await populate()
                    assert await fc.fetch_raw(ids) == list(raws.values())
    finally:
        await asyncio.to_thread(moto.stop)
