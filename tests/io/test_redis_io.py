"""aioaccess.redis_io against concrete-python's concrete.util.redis_io on a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from aioaccess import codec
from aioaccess.redis_io import (
    RedisCommunicationReader,
    RedisCommunicationWriter,
    RedisReader,
    RedisWriter,
    read_communication_from_redis_key,
    write_communication_to_redis_key,
)
from benchmarks.synthetic import make_corpus

pytestmark = [pytest.mark.redis, pytest.mark.interop]


@pytest.fixture(scope="module")
def raws() -> list[bytes]:
    return [codec.encode(c) for c in make_corpus(6, size=2000, full=True)]


@pytest.fixture
def cp_db(redis_server: str) -> Iterator[Any]:
    import redis

    db = redis.Redis.from_url(redis_server)
    yield db
    db.close()


def _cp_comm(raw: bytes) -> Any:
    from concrete.util import read_communication_from_buffer

    return read_communication_from_buffer(raw, add_references=False)


def _cp_write(db: Any, key: str, key_type: str, raws: list[bytes], **kwargs: Any) -> None:
    from concrete.util.redis_io import RedisCommunicationWriter as CpWriter

    writer = CpWriter(db, key, key_type=key_type, **kwargs)
    for raw in raws:
        writer.write(_cp_comm(raw))


def _cp_read(db: Any, key: str, **kwargs: Any) -> list[bytes]:
    from concrete.util import write_communication_to_buffer
    from concrete.util.redis_io import RedisCommunicationReader as CpReader

    return [write_communication_to_buffer(c) for c in CpReader(db, key, add_references=False, **kwargs)]


async def _read(db: Any, key: str, **kwargs: Any) -> list[bytes]:
    return [codec.encode(c) async for c in RedisCommunicationReader(db, key, **kwargs)]


@pytest.mark.parametrize("key_type", ["list", "set", "hash"])
@pytest.mark.parametrize("right_to_left", [True, False])
async def test_reads_what_concrete_python_writes_in_its_order(redis_client: Any, cp_db: Any, raws: list[bytes],
                                                              key_type: str, right_to_left: bool) -> None:
    kwargs = {"right_to_left": right_to_left} if key_type == "list" else {}
    _cp_write(cp_db, "k", key_type, raws, **kwargs)
    expected = _cp_read(cp_db, "k", key_type=key_type, **kwargs)
    got = await _read(redis_client, "k", **kwargs)  # key_type looked up, as concrete-python does
    assert sorted(got) == sorted(raws)
    if key_type == "list":
        assert got == expected
    reader = RedisCommunicationReader(redis_client, "k", add_references=False, **kwargs)
    assert await reader.len() == len(raws)
    if key_type == "hash":
        comm = await reader.get(_cp_comm(raws[2]).id)
        assert codec.encode(comm) == raws[2] and not hasattr(comm, "tokenizationForUUID")
    if key_type == "set":
        assert len(await reader.batch(3)) == 3 and await reader.len() == len(raws)
    if key_type in ("list", "set"):  # pop consumes, in concrete-python's order
        popped = await _read(redis_client, "k", key_type=key_type, pop=True, **kwargs)
        assert sorted(popped) == sorted(raws) and not await redis_client.exists("k")
        if key_type == "list":
            assert popped == expected


@pytest.mark.parametrize("key_type", ["list", "set", "hash"])
async def test_concrete_python_reads_what_the_writer_writes(redis_client: Any, cp_db: Any, raws: list[bytes],
                                                            key_type: str) -> None:
    writer = RedisCommunicationWriter(redis_client, "w", key_type=key_type, uuid_hash_key=key_type == "hash")
    for raw in raws:
        await writer.write(codec.read_communication_from_buffer(raw))
    assert sorted(_cp_read(cp_db, "w", key_type=key_type)) == sorted(raws)
    if key_type == "list":
        assert _cp_read(cp_db, "w", key_type="list") == raws  # LPUSH, read right to left: write order
    if key_type == "hash":
        assert sorted(await redis_client.hkeys("w")) == sorted(_cp_comm(r).uuid.uuidString.encode() for r in raws)
    await writer.clear()
    assert not await redis_client.exists("w")


async def test_block_pop_waits_for_a_concrete_python_writer(redis_client: Any, cp_db: Any,
                                                            raws: list[bytes]) -> None:
    reader = RedisCommunicationReader(redis_client, "q", key_type="list", pop=True, block=True, block_timeout=1)
    got: list[bytes] = []

    async def consume() -> None:
        async for comm in reader:
            got.append(codec.encode(comm))
            assert comm.sectionForUUID is not None  # add_references=True by default

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    await asyncio.to_thread(_cp_write, cp_db, "q", "list", raws[:3])
    await task  # ends once the list stays empty for block_timeout
    assert got == raws[:3]


async def test_cycle_list_string_keys_and_option_checks(redis_client: Any, cp_db: Any, raws: list[bytes]) -> None:
    from concrete.util.redis_io import read_communication_from_redis_key as cp_read_key

    _cp_write(cp_db, "c", "list", raws)
    _cp_write(cp_db, "c2", "list", raws)
    assert await _read(redis_client, "c", cycle_list=True) == _cp_read(cp_db, "c2", key_type="list", cycle_list=True)
    assert await redis_client.lrange("c", 0, -1) == cp_db.lrange("c2", 0, -1)  # rotated alike
    await write_communication_to_redis_key(redis_client, "one", codec.read_communication_from_buffer(raws[0]))
    from concrete.util import write_communication_to_buffer as cp_encode

    assert cp_encode(cp_read_key(cp_db, "one", add_references=False)) == raws[0]
    assert codec.encode(await read_communication_from_redis_key(redis_client, "one")) == raws[0]
    assert await read_communication_from_redis_key(redis_client, "nothing") is None
    for kwargs, words in (({"key_type": "hash", "pop": True}, "pop on set or list"),
                          ({"key_type": "set", "pop": True, "block": True}, "block-pop on list"),
                          ({"key_type": "list", "block": True}, "block if popping"),
                          ({"key_type": "zset"}, "unrecognized key type")):
        with pytest.raises(ValueError, match=words):
            RedisReader(redis_client, "x", **kwargs)
    with pytest.raises(Exception, match="key that exists"):
        await RedisReader(redis_client, "missing").len()
    with pytest.raises(ValueError, match="key that exists"):
        await RedisWriter(redis_client, "missing").write(b"x")
    with pytest.raises(TypeError, match="await reader.len"):
        len(RedisReader(redis_client, "c", key_type="list"))
