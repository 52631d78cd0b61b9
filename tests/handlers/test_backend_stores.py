"""One store contract over the directory, Redis hash and S3 store handlers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer
from conftest import concrete_comms

from aioaccess import (
    DirectoryBackedCommunicationContainer,
    DirectoryBackedStoreHandler,
    InvalidCommId,
    RedisHashBackedCommunicationContainer,
    RedisHashBackedStoreHandler,
    S3BackedCommunicationContainer,
    S3BackedStoreHandler,
    codec,
)

Pair = tuple[Any, Callable[[], Any]]  # (store handler, make a container reading what it stored)


@pytest.fixture
def directory_store(tmp_path: Any) -> Pair:
    path = tmp_path / "store"
    path.mkdir()
    return DirectoryBackedStoreHandler(path, fsync=False), lambda: DirectoryBackedCommunicationContainer(path)


@pytest.fixture
def redis_store(redis_client: Any, redis_key: str) -> Pair:
    return (RedisHashBackedStoreHandler(redis_client, redis_key),
            lambda: RedisHashBackedCommunicationContainer(redis_client, redis_key))


@pytest.fixture
def s3_store(s3_client: Any, s3_bucket: str) -> Pair:
    return (S3BackedStoreHandler(s3_client, s3_bucket, prefix_len=3),
            lambda: S3BackedCommunicationContainer(s3_client, s3_bucket, prefix_len=3))


@pytest.fixture
async def s3_rclone_store(rclone_server: str) -> AsyncIterator[Pair]:
    """rclone's S3 server, under a key prefix."""
    from aioaccess.backends.s3 import make_s3_client

    async with make_s3_client(rclone_server) as client:
        bucket = f"store-{uuid.uuid4().hex}"
        await client.create_bucket(Bucket=bucket)
        yield (S3BackedStoreHandler(client, bucket, prefix_len=3, key_prefix="in/box/"),
               lambda: S3BackedCommunicationContainer(client, bucket, prefix_len=3, key_prefix="in/box/"))


@pytest.fixture(params=["directory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("s3", marks=pytest.mark.s3), pytest.param("s3_rclone", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest) -> Pair:
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture(scope="module")
def raws() -> dict[str, bytes]:
    return {c.id: write_communication_to_buffer(c) for c in concrete_comms(5, prefix="store")}


async def test_round_trip_raw_and_objects(store: Pair, raws: dict[str, bytes]) -> None:
    handler, reader = store
    ids = list(raws)
    for comm_id in ids[:3]:
        await handler.store_raw(comm_id, raws[comm_id])
    for comm_id in ids[3:]:
        await handler.store(codec.read_communication_from_buffer(raws[comm_id]))
    container = reader()
    assert await container.get_raw_many(ids) == raws
    assert await container.count() == len(raws)
    assert sorted(await container.ids()) == sorted(ids)


async def test_overwrite_keeps_the_last(store: Pair, raws: dict[str, bytes]) -> None:
    handler, reader = store
    first, second = list(raws.values())[:2]
    comm = codec.read_communication_from_buffer(second)
    comm.id = "same-id"
    await handler.store_raw("same-id", first)
    await handler.store(comm)
    container = reader()
    assert await container.get_raw("same-id") == codec.write_communication_to_buffer(comm)
    assert await container.count() == 1


async def test_retrying_a_store_is_idempotent(store: Pair, raws: dict[str, bytes]) -> None:
    handler, reader = store
    comm_id, raw = next(iter(raws.items()))
    for _ in range(3):
        await handler.store_raw(comm_id, raw)
    container = reader()
    assert await container.ids() == [comm_id]
    assert await container.get_raw(comm_id) == raw


@pytest.mark.parametrize("bad_id", ["", "nul\x00byte", "new\nline", "x" * 2000, None])
async def test_hostile_ids_are_refused_and_nothing_is_stored(store: Pair, raws: dict[str, bytes],
                                                            bad_id: str | None) -> None:
    handler, reader = store
    comm = codec.read_communication_from_buffer(next(iter(raws.values())))
    comm.id = bad_id
    with pytest.raises(InvalidCommId):
        await handler.store(comm)
    assert await reader().count() == 0


async def test_directory_refuses_path_escapes(directory_store: Pair, raws: dict[str, bytes]) -> None:
    handler, reader = directory_store
    raw = next(iter(raws.values()))
    for bad_id in ("../escape", "a/b", "..", "/etc/passwd"):
        with pytest.raises(InvalidCommId):
            await handler.store_raw(bad_id, raw)
    assert await reader().count() == 0


@pytest.mark.s3
async def test_s3_refuses_ids_too_long_for_a_key(s3_store: Pair, raws: dict[str, bytes]) -> None:
    handler, _ = s3_store
    with pytest.raises(InvalidCommId, match="S3 key"):
        handler.check_id("k" * 1022)
    assert handler.check_id("k" * 1021) == "k" * 1021
