"""Backend faults under running servers: errors in bounded time, recovery without a restart, nothing acked lost.

Redis: a durable redis-server (append-only file, fsync always) is SIGKILLed
and restarted under a store-server and a fetch-server.  S3: a fault-injecting
proxy (``_faultproxy.py``) in front of moto's server answers 503/SlowDown/500,
stalls or resets; botocore's standard retry mode absorbs a fraction of them,
persistent faults become ServicesException, and the servers recover when the
proxy heals.  A store that failed is retried by the client (stores are
idempotent by id).  Every call carries a client timeout, so a hang fails the
test instead of stalling it; observed error latencies are only reported.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from typing import Any

import pytest
from _faultproxy import FaultProxy
from _reliability import AioaccessProcess, add_figure, set_figure
from _services import RedisServerProcess
from concrete.util import create_comm, read_communication_from_buffer
from concrete.util import write_communication_to_buffer as cp_write

from aioaccess import FetchCommunicationClient, StoreCommunicationClient
from aioaccess.backends.s3 import prefix_s3_key
from aioaccess.schema import ServicesException

#: --backend-timeout given to the servers (seconds).
BACKEND_TIMEOUT = 2.0
#: Client-side bound on any one call: a hang fails the test.
CALL_BOUND = 30.0


def _payload(comm_id: str, rng: random.Random, low: int = 1_000, high: int = 20_000) -> bytes:
    comm = create_comm(comm_id, "")
    comm.text = "".join(rng.choices("abcdefghij klmnopqrstuvwxyz\n", k=rng.randint(low, high)))
    return bytes(cp_write(comm))


class DurableRedis(RedisServerProcess):
    """redis-server that keeps every acknowledged write across a SIGKILL (AOF, fsync always)."""

    def __init__(self, data_dir: str, port: int | None = None) -> None:
        super().__init__(port)
        self.argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "yes", "--appendfsync", "always", "--dir", data_dir]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.stop()


class Workload:
    """Store clients (retrying failed stores) and fetch clients, with their tallies."""

    def __init__(self, store_port: int, fetch_port: int | None, rng: random.Random) -> None:
        self.store_port = store_port
        self.fetch_port = fetch_port
        self.rng = rng
        self.sent: dict[str, bytes] = {}
        self.acked: set[str] = set()
        self.store_errors = 0
        self.fetch_errors = 0
        self.fetches_ok = 0
        self.error_latencies: list[float] = []
        self.stop = asyncio.Event()

    async def store_loop(self, k: int) -> None:
        async with StoreCommunicationClient.connect("127.0.0.1", self.store_port, timeout=CALL_BOUND) as client:
            j = 0
            while not self.stop.is_set():
                comm_id = f"c{k}-{j}"
                raw = self.sent.setdefault(comm_id, _payload(comm_id, self.rng))
                started = time.monotonic()
                try:
                    await client.store_raw(raw)
                except ServicesException:
                    self.store_errors += 1
                    self.error_latencies.append(time.monotonic() - started)
                    await asyncio.sleep(0.1)
                    continue  # retry the same id: safe, stores are idempotent
                self.acked.add(comm_id)
                j += 1

    async def fetch_loop(self) -> None:
        assert self.fetch_port is not None
        async with FetchCommunicationClient.connect("127.0.0.1", self.fetch_port, timeout=CALL_BOUND) as client:
            while not self.stop.is_set():
                ids = self.rng.sample(sorted(self.acked), min(5, len(self.acked))) if self.acked else []
                started = time.monotonic()
                try:
                    raws = await client.fetch_raw(ids)
                except ServicesException:
                    self.fetch_errors += 1
                    self.error_latencies.append(time.monotonic() - started)
                    await asyncio.sleep(0.1)
                    continue
                assert raws == [self.sent[i] for i in ids]
                self.fetches_ok += 1
                await asyncio.sleep(0.01)

    async def until(self, what: str, predicate: Any, limit: float = 60.0) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                await asyncio.sleep(0.05)


@pytest.mark.redis
@pytest.mark.slow
async def test_redis_killed_and_restarted_under_store_and_fetch_servers(tmp_path: Any) -> None:
    data_dir = tmp_path / "redis"
    data_dir.mkdir()
    redis = DurableRedis(os.fspath(data_dir))
    redis.start()
    url, key = redis.url, "reliability-comms"
    common = ["--redis-key", key, "--backend-timeout", str(BACKEND_TIMEOUT)]
    rng = random.Random(11)
    try:
        with AioaccessProcess("store-server", url, *common) as store, \
                AioaccessProcess("fetch-server", url, *common) as fetch:
            work = Workload(store.port, fetch.port, rng)
            tasks = [asyncio.create_task(work.store_loop(k)) for k in range(4)]
            tasks += [asyncio.create_task(work.fetch_loop()) for _ in range(2)]
            kills = 2
            for _ in range(kills):
                acked = len(work.acked)
                await work.until("stores before the kill", lambda a=acked: len(work.acked) >= a + 40)
                redis.kill()
                errors = work.store_errors
                await work.until("errors while Redis is down",
                                 lambda e=errors: work.store_errors >= e + 4 and work.fetch_errors >= 1)
                await asyncio.sleep(BACKEND_TIMEOUT)
                redis.start()  # same port, same data directory
                acked = len(work.acked)
                await work.until("stores after the restart", lambda a=acked: len(work.acked) >= a + 40)
            # A hung Redis (SIGSTOP): calls fail once --backend-timeout runs out, then recover on SIGCONT
            # without mixing up replies (fetch_loop checks every byte it gets).
            assert redis.proc is not None
            redis.proc.send_signal(signal.SIGSTOP)
            try:
                errors, fetch_errors = work.store_errors, work.fetch_errors
                await work.until("errors while Redis hangs",
                                 lambda: work.store_errors >= errors + 4 and work.fetch_errors >= fetch_errors + 1)
            finally:
                redis.proc.send_signal(signal.SIGCONT)
            hung_latency = max(work.error_latencies[-4:])
            acked, fetched = len(work.acked), work.fetches_ok
            await work.until("recovery after the hang",
                             lambda: len(work.acked) >= acked + 40 and work.fetches_ok >= fetched + 5)
            work.stop.set()
            async with asyncio.timeout(CALL_BOUND * 2):
                await asyncio.gather(*tasks)
            assert store.alive() and fetch.alive()
        # Every acknowledged store survived both SIGKILLs of Redis, byte for byte.
        import redis.asyncio as aioredis

        async with aioredis.Redis.from_url(url) as client:
            stored = await client.hgetall(key)
        found = {k.decode(): v for k, v in stored.items()}
        lost = sorted(i for i in work.acked if found.get(i) != work.sent[i])
        assert not lost, f"acknowledged stores lost or changed: {lost[:10]}"
    finally:
        redis.stop()
    add_figure("redis_sigkills_survived", kills)
    add_figure("stores_acknowledged", len(work.acked))
    add_figure("stores_acknowledged_found", len(work.acked) - len(lost))
    add_figure("faults_survived", work.store_errors + work.fetch_errors)
    set_figure("redis_fault_run", {
        "store_errors": work.store_errors, "fetch_errors": work.fetch_errors, "fetches_ok": work.fetches_ok,
        "acked": len(work.acked), "max_error_latency_s": round(max(work.error_latencies), 2),
        "error_latency_while_hung_s": round(hung_latency, 2), "backend_timeout_s": BACKEND_TIMEOUT,
    })


@pytest.fixture
async def fault_proxy(s3_server: str) -> Any:
    async with FaultProxy(s3_server, stall_seconds=20.0, seed=3) as proxy:
        yield proxy


async def _s3_objects(s3_client: Any, bucket: str, ids: set[str]) -> dict[str, bytes]:
    found = {}
    for comm_id in ids:
        response = await s3_client.get_object(Bucket=bucket, Key=prefix_s3_key(comm_id, 4))
        async with response["Body"] as body:
            found[comm_id] = await body.read()
    return found


@pytest.mark.s3
@pytest.mark.slow
async def test_s3_faults_behind_a_proxy(fault_proxy: FaultProxy, s3_client: Any, s3_bucket: str) -> None:
    proxy = fault_proxy
    common = [f"s3://{s3_bucket}", "--endpoint-url", proxy.url, "--backend-timeout", str(BACKEND_TIMEOUT)]
    rng = random.Random(5)
    figures: dict[str, Any] = {}
    # Started from a thread: the proxy lives on this loop and must answer their startup checks.
    store = await asyncio.to_thread(AioaccessProcess("store-server", *common).start)
    fetch = await asyncio.to_thread(AioaccessProcess("fetch-server", *common).start)
    with store, fetch:
        work = Workload(store.port, fetch.port, rng)
        tasks = [asyncio.create_task(work.store_loop(k)) for k in range(3)]
        tasks.append(asyncio.create_task(work.fetch_loop()))

        # 1. Flaky: a third of requests fail; botocore's standard retries absorb most of them.
        proxy.set(0.3, "mix")
        await work.until("stores through a flaky S3", lambda: len(work.acked) >= 60)
        figures["flaky"] = {**proxy.summary(), "acked": len(work.acked), "store_errors": work.store_errors}
        # botocore retried: far fewer calls failed than requests were faulted.
        assert sum(proxy.faults.values()) > 0 and work.store_errors < sum(proxy.faults.values())

        # 2. Persistent 503s, then stalls, then resets: every call fails with ServicesException, none hangs.
        for kind in ("503", "stall", "reset"):
            proxy.set(1.0, kind)
            errors, fetch_errors = work.store_errors, work.fetch_errors
            await work.until(f"errors under persistent {kind}",
                             lambda e=errors, f=fetch_errors: work.store_errors >= e + 3 and work.fetch_errors >= f + 1,
                             limit=120)
            figures[kind] = proxy.summary()

        # 3. Healed: both servers recover by themselves.
        proxy.set(0.0)
        acked, fetched = len(work.acked), work.fetches_ok
        await work.until("recovery", lambda: len(work.acked) >= acked + 30 and work.fetches_ok >= fetched + 5)
        work.stop.set()
        async with asyncio.timeout(CALL_BOUND * 2):
            await asyncio.gather(*tasks)
        assert store.alive() and fetch.alive()
    found = await _s3_objects(s3_client, s3_bucket, work.acked)
    lost = sorted(i for i in work.acked if found.get(i) != work.sent[i])
    assert not lost, f"acknowledged stores lost or changed: {lost[:10]}"
    add_figure("stores_acknowledged", len(work.acked))
    add_figure("stores_acknowledged_found", len(work.acked) - len(lost))
    add_figure("faults_survived", work.store_errors + work.fetch_errors + sum(proxy.faults.values()))
    set_figure("s3_fault_run", {
        "proxy": proxy.summary(), "phases": figures, "store_errors": work.store_errors,
        "fetch_errors": work.fetch_errors, "acked": len(work.acked),
        "max_error_latency_s": round(max(work.error_latencies), 2), "backend_timeout_s": BACKEND_TIMEOUT,
    })



def test_directory_write_faults_are_services_exceptions_and_leave_nothing(tmp_path: Any) -> None:
    """File too large (RLIMIT_FSIZE) and a vanished directory: ServicesException, no partial file, recovery."""
    import resource

    from concrete.services.ttypes import ServicesException as CpServicesException
    from concrete.util.access_wrapper import StoreCommunicationClientWrapper

    store = tmp_path / "store"
    store.mkdir()
    rng = random.Random(3)
    small, big = _payload("small", rng, 100, 200), _payload("big", rng, 300_000, 300_000)
    with AioaccessProcess("store-server", os.fspath(store)) as server:
        resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (100_000, 100_000))
        with StoreCommunicationClientWrapper("127.0.0.1", server.port) as client:
            with pytest.raises(CpServicesException, match="big.comm failed: File too large"):
                client.store(read_communication_from_buffer(big))
            assert sorted(os.listdir(store)) == []  # no partial .comm, the temp file removed
            client.store(read_communication_from_buffer(small))
            os.rename(store, tmp_path / "moved")
            with pytest.raises(CpServicesException, match="No such file or directory"):
                client.store(read_communication_from_buffer(small))
            os.rename(tmp_path / "moved", store)
            client.store(read_communication_from_buffer(small))  # recovered without a restart
        assert server.alive()
    assert sorted(os.listdir(store)) == ["small.comm"]
    add_figure("faults_survived", 2)
