"""S3 over obstore without a Task per call: task-free timeouts, a hung S3 server, the server's flags."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from _services import RcloneS3ServerProcess
from botocore.exceptions import ClientError

from aioaccess import (
    CommunicationContainerFetchHandler,
    FetchCommunicationClient,
    FetchCommunicationServiceWrapper,
    StoreCommunicationClient,
    StoreCommunicationServiceWrapper,
    codec,
)
from aioaccess.backends.s3 import S3BackedCommunicationContainer, make_s3_client
from aioaccess.backends.s3_deadline import within
from aioaccess.handlers.s3_store import S3BackedStoreHandler
from aioaccess.schema import ServicesException
from benchmarks.synthetic import make_communication

pytestmark = pytest.mark.s3

#: Seconds the container and store handler give one S3 operation.
BACKEND_TIMEOUT = 1.0
#: obstore's own per-request timeout, far longer: an answer within GUARD comes from BACKEND_TIMEOUT.
READ_TIMEOUT = 30.0
GUARD = 15.0


def _step_without_task(awaitable: Any) -> asyncio.Future[Any]:
    """Drive ``awaitable`` as the server drives a task-free call: by future callbacks, no Task."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[Any] = loop.create_future()

    async def run() -> Any:
        return await awaitable

    coro = run()

    def step(_: object = None) -> None:
        assert asyncio.current_task() is None
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            outcome.set_result(stop.value)
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.set_exception(exc)
            return
        yielded._asyncio_future_blocking = False
        yielded.add_done_callback(step)

    loop.call_soon(step)
    return outcome


async def _stopped(pid: int) -> None:
    """Wait until process ``pid`` is stopped (SIGSTOP takes effect asynchronously)."""
    for _ in range(500):
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"process {pid} did not stop")


async def _recovered(call: Callable[[], Awaitable[Any]], attempts: int = 5) -> Any:
    """``call()``'s result once it stops raising ServicesException (at most ``attempts`` tries)."""
    for _ in range(attempts - 1):
        try:
            return await call()
        except ServicesException:
            await asyncio.sleep(0.2)
    return await call()


async def test_within_times_out_and_keeps_outside_cancellation() -> None:
    loop = asyncio.get_running_loop()
    hung = loop.create_future()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await _step_without_task(within(hung, 0.05))
    assert hung.cancelled() and time.monotonic() - started < GUARD
    done = loop.create_future()
    loop.call_later(0.01, done.set_result, 7)
    assert await _step_without_task(within(done, 5)) == 7
    waiting = loop.create_future()
    task = asyncio.ensure_future(within(waiting, 5))
    await asyncio.sleep(0)
    task.cancel()  # a cancellation from outside is not a timeout
    with pytest.raises(asyncio.CancelledError):
        await task
    assert waiting.cancelled()


async def test_obstore_runs_task_free_and_a_hung_s3_fails_within_the_backend_timeout(tmp_path: Any) -> None:
    s3 = RcloneS3ServerProcess(str(tmp_path))
    await asyncio.to_thread(s3.start)
    try:
        async with make_s3_client(s3.url, read_timeout=READ_TIMEOUT) as client, \
                make_s3_client(s3.url, client="aiobotocore") as botocore_client:
            await client.create_bucket(Bucket="taskfree")
            container = S3BackedCommunicationContainer(client, "taskfree", timeout=BACKEND_TIMEOUT)
            store = S3BackedStoreHandler(client, "taskfree", timeout=BACKEND_TIMEOUT)
            fetch_wrapper = FetchCommunicationServiceWrapper(CommunicationContainerFetchHandler(container))
            store_wrapper = StoreCommunicationServiceWrapper(store)
            assert fetch_wrapper.processor.task_free and store_wrapper.processor.task_free
            # aiobotocore needs a Task (aiohttp's timeouts): its calls keep one
            assert not FetchCommunicationServiceWrapper(CommunicationContainerFetchHandler(
                S3BackedCommunicationContainer(botocore_client, "taskfree"))).processor.inline
            assert not S3BackedStoreHandler(botocore_client, "taskfree").task_free
            comms = [make_communication(f"tf-{i}", size=2000, seed=i) for i in range(3)]
            ids = [c.id for c in comms]
            raws = {c.id: codec.write_communication_to_buffer(c) for c in comms}
            async with fetch_wrapper.serving() as fetch_listener, store_wrapper.serving() as store_listener, \
                    FetchCommunicationClient.connect("127.0.0.1", fetch_listener.bound_port) as fc, \
                    StoreCommunicationClient.connect("127.0.0.1", store_listener.bound_port) as sc:
                async with asyncio.timeout(GUARD):
                    for comm in comms:
                        await sc.store(comm)
                    assert await fc.fetch_raw(ids) == [raws[i] for i in ids]
                    assert await fc.fetch_raw(ids[:1]) == [raws[ids[0]]]
                    assert await fc.getCommunicationCount() == 3
                    assert sorted(await fc.getCommunicationIDs(0, 10)) == sorted(ids)

                    assert s3.proc is not None
                    assert s3.proc.poll() is None
                    os.kill(s3.proc.pid, signal.SIGSTOP)  # S3 hangs: connections open, no answers
                    try:
                        await _stopped(s3.proc.pid)
                        for call in (lambda: fc.fetch_raw(ids[:1]), lambda: fc.fetch_raw(ids),
                                     lambda: sc.store(comms[0])):
                            started = time.monotonic()
                            with pytest.raises(ServicesException, match="no answer within"):
                                await call()
                            assert time.monotonic() - started < READ_TIMEOUT / 2
                    finally:
                        os.kill(s3.proc.pid, signal.SIGCONT)
                    # S3 is back: both servers answer again by themselves (a request that was in flight across
                    # the stall may still fail once on its connection, as it would with any client)
                    assert await _recovered(lambda: fc.fetch_raw(ids)) == [raws[i] for i in ids]
                    await _recovered(lambda: sc.store(comms[1]))
    finally:
        await asyncio.to_thread(s3.stop)


async def test_one_call_gets_where_the_endpoint_allows_and_two_elsewhere(any_s3_server: str,
                                                                         request: pytest.FixtureRequest) -> None:
    """A GET is one ranged call on moto (206, as S3); rclone answers 200, so its client falls back to two."""
    async with make_s3_client(any_s3_server) as client:
        bucket = f"onecall-{os.getpid()}-{time.monotonic_ns()}"
        await client.create_bucket(Bucket=bucket)
        objects = {"a/six": b"x" * 6000, "empty": b"", "one": b"1"}
        for key, body in objects.items():
            await client.put_object(Bucket=bucket, Key=key, Body=body)
        assert client.ranged_get
        for _ in range(2):
            for key, body in objects.items():
                assert await client.get_bytes(bucket, key, 5.0) == body
        assert client.ranged_get == (request.node.callspec.params["any_s3_server"] == "moto")
        with pytest.raises(ClientError, match="NoSuchKey"):
            await client.get_bytes(bucket, "missing", 5.0)
