"""One contract, every container: the same Communications behave the same in each backend.

Each ``*_factory`` fixture returns ``make(raws) -> container`` that stores the
given compact bytes in its backend (files, a zip, a Redis hash, an S3 bucket,
a remote fetch server, a dict) and opens a container on them.
"""

from __future__ import annotations

import uuid
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer
from conftest import concrete_comms

from aioaccess import (
    CommunicationContainerFetchHandler,
    CorruptCommunication,
    DirectoryBackedCommunicationContainer,
    FetchBackedCommunicationContainer,
    FetchCommunicationServiceWrapper,
    MappingContainer,
    MemoryBackedCommunicationContainer,
    RedisHashBackedCommunicationContainer,
    S3BackedCommunicationContainer,
    ServicesException,
    ZipFileBackedCommunicationContainer,
    codec,
    prefix_s3_key,
)
from aioaccess.backends.base import CommunicationContainer

N = 12
Make = Callable[[dict[str, bytes]], Awaitable[CommunicationContainer]]


@pytest.fixture(scope="module")
def raws() -> dict[str, bytes]:
    """id -> compact bytes, as concrete-python writes them."""
    return {c.id: write_communication_to_buffer(c) for c in concrete_comms(N, prefix="contract")}


@pytest.fixture
async def exit_stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def memory_factory(tmp_path: Any, exit_stack: AsyncExitStack) -> Make:
    async def make(raws: dict[str, bytes]) -> CommunicationContainer:
        path = tmp_path / "comms.concatenated.comm"
        path.write_bytes(b"".join(raws.values()))
        return await exit_stack.enter_async_context(MemoryBackedCommunicationContainer(path))

    return make


@pytest.fixture
def directory_factory(tmp_path: Any) -> Make:
    async def make(raws: dict[str, bytes]) -> CommunicationContainer:
        path = tmp_path / "dir"
        (path / "sub").mkdir(parents=True)
        for k, (comm_id, raw) in enumerate(raws.items()):
            (path / ("sub" if k % 2 else "") / f"{comm_id}.comm").write_bytes(raw)
        return DirectoryBackedCommunicationContainer(path)

    return make


@pytest.fixture
def zip_factory(tmp_path: Any, exit_stack: AsyncExitStack) -> Make:
    async def make(raws: dict[str, bytes]) -> CommunicationContainer:
        path = tmp_path / "comms.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for comm_id, raw in raws.items():
                zf.writestr(f"docs/{comm_id}.comm", raw)
            zf.writestr("README.txt", b"not a Communication")
        return await exit_stack.enter_async_context(ZipFileBackedCommunicationContainer(path))

    return make


@pytest.fixture
def redis_factory(redis_client: Any, redis_key: str) -> Make:
    async def make(raws: dict[str, bytes]) -> CommunicationContainer:
        await redis_client.hset(redis_key, mapping=raws)
        return RedisHashBackedCommunicationContainer(redis_client, redis_key)

    return make


@pytest.fixture
def s3_factory(s3_client: Any, s3_bucket: str) -> Make:
    async def make(raws: dict[str, bytes]) -> CommunicationContainer:
        for comm_id, raw in raws.items():
            await s3_client.put_object(Bucket=s3_bucket, Key=prefix_s3_key(comm_id, 4), Body=raw)
        return S3BackedCommunicationContainer(s3_client, s3_bucket, prefix_len=4)

    return make


def _s3_factory(endpoint: str, client_kind: str, exit_stack: AsyncExitStack) -> Make:
    """Objects under a key prefix, with a stray object beside it, through ``client_kind``."""
    from aioaccess.backends.s3 import make_s3_client

    async def make(raws: dict[str, bytes]) -> CommunicationContainer:
        client = await exit_stack.enter_async_context(make_s3_client(endpoint, client=client_kind))
        bucket = f"contract-{uuid.uuid4().hex}"
        await client.create_bucket(Bucket=bucket)
        await client.put_object(Bucket=bucket, Key="zz-not-in-the-corpus", Body=b"x")
        for comm_id, raw in raws.items():
            await client.put_object(Bucket=bucket, Key="corpus/" + prefix_s3_key(comm_id, 4), Body=raw)
        return S3BackedCommunicationContainer(client, bucket, prefix_len=4, key_prefix="corpus/")

    return make


@pytest.fixture
def s3_aiobotocore_factory(s3_server: str, exit_stack: AsyncExitStack) -> Make:
    return _s3_factory(s3_server, "aiobotocore", exit_stack)


@pytest.fixture
def s3_rclone_factory(rclone_server: str, exit_stack: AsyncExitStack) -> Make:
    return _s3_factory(rclone_server, "obstore", exit_stack)


@pytest.fixture
def fetch_factory(exit_stack: AsyncExitStack) -> Make:
    async def make(raws: dict[str, bytes]) -> CommunicationContainer:
        handler = CommunicationContainerFetchHandler(dict(raws))
        listener = await exit_stack.enter_async_context(FetchCommunicationServiceWrapper(handler).serving())
        container = FetchBackedCommunicationContainer("127.0.0.1", listener.bound_port, max_connections=4)
        exit_stack.push_async_callback(container.aclose)
        return container

    return make


@pytest.fixture
def mapping_factory() -> Make:
    async def make(raws: dict[str, bytes]) -> CommunicationContainer:
        return MappingContainer(dict(raws))

    return make


KINDS = [
    "memory",
    "directory",
    "zip",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("s3", marks=pytest.mark.s3),
    pytest.param("s3_aiobotocore", marks=pytest.mark.s3),
    pytest.param("s3_rclone", marks=pytest.mark.s3),
    "fetch",
    "mapping",
]


@pytest.fixture(params=KINDS)
def container_factory(request: pytest.FixtureRequest) -> Make:
    return request.getfixturevalue(f"{request.param}_factory")


@pytest.fixture
async def container(container_factory: Make, raws: dict[str, bytes]) -> CommunicationContainer:
    return await container_factory(raws)


class TestContainerContract:
    async def test_get_raw_is_byte_identical_to_concrete_python(self, container: Any,
                                                               raws: dict[str, bytes]) -> None:
        for comm_id, raw in raws.items():
            assert await container.get_raw(comm_id) == raw

    async def test_get_decodes(self, container: Any, raws: dict[str, bytes]) -> None:
        comm_id = next(iter(raws))
        comm = await container.get(comm_id)
        assert comm.id == comm_id
        assert comm.text.startswith("Document 0 says hello.")
        many = await container.get_many([comm_id, "absent"])
        assert list(many) == [comm_id] and many[comm_id].id == comm_id

    async def test_missing_ids_raise_keyerror(self, container: Any) -> None:
        with pytest.raises(KeyError):
            await container.get_raw("absent")
        with pytest.raises(KeyError):
            await container.get("absent")

    async def test_get_raw_many_order_and_missing(self, container: Any, raws: dict[str, bytes]) -> None:
        ids = list(raws)
        wanted = [ids[5], "absent", ids[0], ids[5], ids[11], "also-absent"]
        found = await container.get_raw_many(wanted)
        assert list(found) == [ids[5], ids[0], ids[11]]
        assert all(found[i] == raws[i] for i in found)
        assert await container.get_raw_many([]) == {}

    async def test_fetch_handler_serves_in_request_order(self, container: Any, raws: dict[str, bytes]) -> None:
        ids = list(raws)
        handler = CommunicationContainerFetchHandler(container)
        assert await handler.fetch_raw([ids[3], "absent", ids[1]]) == [raws[ids[3]], raws[ids[1]]]

    async def test_contains(self, container: Any, raws: dict[str, bytes]) -> None:
        assert await container.contains(next(iter(raws)))
        assert not await container.contains("absent")

    async def test_count(self, container: Any) -> None:
        assert await container.count() == N

    async def test_iteration_and_ids_agree(self, container: Any, raws: dict[str, bytes]) -> None:
        iterated = [i async for i in container]
        assert sorted(iterated) == sorted(raws)
        assert await container.ids() == iterated

    @pytest.mark.parametrize(("offset", "count"), [
        (0, None), (0, 0), (0, 1), (3, 4), (N - 1, 5), (N, 1), (N + 5, 2), (0, N + 10), (-3, 2), (2, -1),
    ])
    async def test_ids_slicing_is_concrete_pythons(self, container: Any, offset: int, count: int | None) -> None:
        everything = await container.ids()
        assert await container.ids(offset, count) == everything[offset:][:count]

    async def test_dunders_point_to_async_methods(self, container: Any) -> None:
        with pytest.raises(TypeError, match="contains"):
            _ = "x" in container
        with pytest.raises(TypeError, match="count"):
            len(container)
        with pytest.raises(TypeError, match="get"):
            container["x"]
        with pytest.raises(TypeError, match="async for"):
            iter(container)


def _truncated(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


@pytest.fixture(params=[
    "directory", "zip", pytest.param("redis", marks=pytest.mark.redis), pytest.param("s3", marks=pytest.mark.s3),
    pytest.param("s3_rclone", marks=pytest.mark.s3), "mapping",
])
def byte_holding_factory(request: pytest.FixtureRequest) -> Make:
    """The backends that can hold any bytes (a memory file is checked at load instead)."""
    return request.getfixturevalue(f"{request.param}_factory")


async def test_corrupt_bytes_name_the_id(byte_holding_factory: Make, raws: dict[str, bytes]) -> None:
    make = byte_holding_factory
    good = next(iter(raws))
    container = await make({good: raws[good], "broken": _truncated(raws[good]),
                            "trailing": raws[good] + b"\x00junk"})
    for bad in ("broken", "trailing"):
        with pytest.raises(CorruptCommunication, match=bad) as info:
            await container.get_raw(bad)
        assert info.value.comm_id == bad
    assert await container.get_raw(good) == raws[good]


async def test_corrupt_bytes_upstream_become_services_exception(fetch_factory: Make, raws: dict[str, bytes]) -> None:
    good = next(iter(raws))
    container = await fetch_factory({good: raws[good], "broken": _truncated(raws[good])})
    with pytest.raises(ServicesException, match="broken"):
        await container.get_raw("broken")
    assert await container.get_raw(good) == raws[good]


async def test_memory_refuses_a_corrupt_file(memory_factory: Make, raws: dict[str, bytes]) -> None:
    good = next(iter(raws))
    with pytest.raises(CorruptCommunication):
        await memory_factory({good: raws[good], "broken": _truncated(raws[good])})


async def test_a_dict_of_communication_objects_serves_the_same_bytes(raws: dict[str, bytes]) -> None:
    objects = {comm_id: codec.read_communication_from_buffer(raw) for comm_id, raw in raws.items()}
    handler = CommunicationContainerFetchHandler(objects)
    assert isinstance(handler.container, MappingContainer)
    assert await handler.fetch_raw(list(raws)) == list(raws.values())
    assert await handler.getCommunicationIDs(0, 3) == list(raws)[:3]
