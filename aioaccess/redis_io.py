"""concrete-python's ``concrete.util.redis_io``, async, over ``redis.asyncio``.

Same names, arguments and defaults, with ``await``/``async for``: ``async for comm in
RedisCommunicationReader(redis_db, "key")`` reads a list, set or hash key (``pop``,
``block``, ``right_to_left``, ``cycle_list``, ``batch``), and
``await RedisCommunicationWriter(redis_db, "key", key_type="list").write(comm)``
writes one.  What Python cannot await has a method: ``await reader.len()`` for
``len(reader)``, ``await reader.get(k)`` for ``reader[k]``.  With ``key_type=None``
the key's type is looked up (so it must exist) on first use.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from .codec import read_communication_from_buffer, write_communication_to_buffer
from .schema import Communication

__all__ = [
    "RedisCommunicationReader",
    "RedisCommunicationWriter",
    "RedisReader",
    "RedisWriter",
    "read_communication_from_redis_key",
    "write_communication_to_redis_key",
]

_KEY_TYPES = ("set", "hash", "list")


def _identity(o: Any) -> Any:
    return o


async def _key_type(redis_db: Any, key: str, error: type[Exception]) -> str:
    if not await redis_db.exists(key):
        raise error("can only guess type of key that exists")
    kind = await redis_db.type(key)
    return kind.decode("utf-8") if isinstance(kind, bytes) else kind


def _decode(buf: bytes, add_references: bool) -> Communication:
    return read_communication_from_buffer(buf, add_references=add_references)


async def read_communication_from_redis_key(redis_db: Any, key: str, add_references: bool = True
                                            ) -> Communication | None:
    """The Communication stored at a string key, or None when the key does not exist."""
    buf = await redis_db.get(key)
    return None if buf is None else _decode(buf, add_references)


async def write_communication_to_redis_key(redis_db: Any, key: str, comm: Communication) -> None:
    """Store a Communication's compact bytes at a string key."""
    await redis_db.set(key, write_communication_to_buffer(comm))


class RedisReader:
    """Reads the objects of a list, set or hash key: ``async for obj in RedisReader(redis_db, key)``.

    The options and their checks are concrete-python's: ``pop`` (lists and sets),
    ``block`` (lists, with pop; ``block_timeout`` seconds, 0 = for ever),
    ``right_to_left``, ``cycle_list``; set and hash scans remember what they
    returned in a temporary key that expires after ``temp_key_ttl`` seconds.
    """

    def __init__(self, redis_db: Any, key: str, key_type: str | None = None, pop: bool = False, block: bool = False,
                 right_to_left: bool = True, block_timeout: int = 0, temp_key_ttl: int = 3600,
                 temp_key_leaf_len: int = 32, cycle_list: bool = False,
                 deserialize_func: Callable[[bytes], Any] | None = None) -> None:
        self.redis_db = redis_db
        self.key = key
        self.key_type = key_type
        self.pop, self.block, self.block_timeout = pop, block, block_timeout
        self.temp_key_ttl, self.temp_key_leaf_len = temp_key_ttl, temp_key_leaf_len
        self.right_to_left, self.cycle_list = right_to_left, cycle_list
        self.deserialize_func = deserialize_func if deserialize_func is not None else _identity
        if key_type is not None:
            self._check()

    def _check(self) -> None:
        kind = self.key_type
        if kind not in _KEY_TYPES:
            raise ValueError(f"unrecognized key type {kind}")
        if self.pop and kind not in ("set", "list"):
            raise ValueError("can only pop on set or list")
        if self.block and kind != "list":
            raise ValueError("can only block-pop on list")
        if self.block and not self.pop:
            raise ValueError("can only block if popping too")
        if self.cycle_list and self.block:
            raise ValueError("can only cycle list when not blocking")
        if self.cycle_list and kind != "list":
            raise ValueError("can only cycle list on list type")
        if self.cycle_list and not self.right_to_left:
            raise ValueError("can only cycle list if processing right-to-left")

    async def _resolve(self) -> str:
        if self.key_type is None:
            self.key_type = await _key_type(self.redis_db, self.key, Exception)
            self._check()
        return self.key_type

    async def __aiter__(self) -> AsyncIterator[Any]:
        kind = await self._resolve()
        db, key = self.redis_db, self.key
        if self.pop:
            while (buf := await self._pop_buf()) is not None:
                yield self.deserialize_func(buf)
        elif kind == "list" and self.cycle_list:
            buf, i = await db.rpoplpush(key, key), 0
            while buf is not None and i < await db.llen(key):
                yield self.deserialize_func(buf)
                buf, i = await db.rpoplpush(key, key), i + 1
        elif kind == "list":
            for i in range(await db.llen(key)):
                yield self.deserialize_func(await db.lindex(key, -(i + 1) if self.right_to_left else i))
        else:
            async for obj in self._scan(kind):
                yield obj

    async def _scan(self, kind: str) -> AsyncIterator[Any]:
        db, key = self.redis_db, self.key
        num_objs = await (db.scard(key) if kind == "set" else db.hlen(key))
        temp_key = await self._make_temp_key()
        i = cursor = 0
        while i < num_objs:
            cursor, batch = await (db.sscan(key, cursor) if kind == "set" else db.hscan(key, cursor))
            for k in batch:
                if i == num_objs:
                    break
                if await db.sadd(temp_key, k) > 0:
                    i += 1
                    yield self.deserialize_func(k if kind == "set" else batch[k])
                await db.expire(temp_key, self.temp_key_ttl)

    async def len(self) -> int:
        """How many objects the key holds now (``len(reader)`` in concrete-python)."""
        kind = await self._resolve()
        db = self.redis_db
        return int(await (db.llen(self.key) if kind == "list" else db.scard(self.key) if kind == "set"
                          else db.hlen(self.key)))

    def __len__(self) -> int:
        raise TypeError("a RedisReader's length needs a round trip: use `await reader.len()`")

    async def get(self, k: Any) -> Any:
        """The object at list index or hash key ``k`` (``reader[k]``), or None; never pops or blocks."""
        kind = await self._resolve()
        if kind == "list":
            buf = await self.redis_db.lindex(self.key, -(k + 1) if self.right_to_left else k)
        elif kind == "hash":
            buf = await self.redis_db.hget(self.key, k)
        else:
            raise Exception("not implemented")
        return None if buf is None else self.deserialize_func(buf)

    def __getitem__(self, k: Any) -> Any:
        raise TypeError("reading an item needs a round trip: use `await reader.get(k)`")

    async def batch(self, n: int) -> list[Any]:
        """``n`` random objects of a set (SRANDMEMBER), without popping."""
        if await self._resolve() == "set" and not self.pop and not self.block:
            return [self.deserialize_func(buf) for buf in await self.redis_db.srandmember(self.key, n)]
        raise Exception("not implemented")

    async def _pop_buf(self) -> bytes | None:
        db = self.redis_db
        if self.key_type == "list" and self.block:
            pop = db.brpop if self.right_to_left else db.blpop
            val = await pop(self.key, timeout=self.block_timeout)
            return None if val is None else val[1]
        if self.key_type == "list":
            return await (db.rpop(self.key) if self.right_to_left else db.lpop(self.key))
        return await db.spop(self.key)

    async def _make_temp_key(self) -> str:
        while await self.redis_db.exists(temp_key := f"temp:{self.key}:{uuid.uuid4()}"):
            pass
        return temp_key

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.redis_db}, {self.key}, {self.key_type})"


class RedisCommunicationReader(RedisReader):
    """A :class:`RedisReader` of Communications (``add_references=True`` adds the reference links)."""

    def __init__(self, redis_db: Any, key: str, add_references: bool = True, **kwargs: Any) -> None:
        if "deserialize_func" in kwargs:
            raise Exception("RedisCommunicationReader does not allow custom deserialize_func")
        self.add_references = add_references
        super().__init__(redis_db, key, deserialize_func=self._load_from_buffer, **kwargs)

    def _load_from_buffer(self, buf: bytes) -> Communication:
        return _decode(buf, self.add_references)


class RedisWriter:
    """Writes objects to a list (LPUSH, or RPUSH with ``right_to_left=False``), set or hash key."""

    def __init__(self, redis_db: Any, key: str, key_type: str | None = None, right_to_left: bool = True,
                 serialize_func: Callable[[Any], bytes] | None = None,
                 hash_key_func: Callable[[Any], Any] | None = None) -> None:
        if key_type is not None and key_type not in _KEY_TYPES:
            raise ValueError(f"unrecognized key type {key_type}")
        self.redis_db, self.key, self.key_type, self.right_to_left = redis_db, key, key_type, right_to_left
        self.serialize_func = serialize_func if serialize_func is not None else _identity
        self.hash_key_func = hash_key_func if hash_key_func is not None else hash

    async def clear(self) -> None:
        """Delete the key."""
        await self.redis_db.delete(self.key)

    async def write(self, obj: Any) -> Any:
        """Serialize ``obj`` and add it to the key; returns Redis's answer."""
        if self.key_type is None:
            self.key_type = await _key_type(self.redis_db, self.key, ValueError)
            if self.key_type not in _KEY_TYPES:
                raise ValueError(f"unrecognized key type {self.key_type}")
        buf = self.serialize_func(obj)
        db = self.redis_db
        if self.key_type == "list":
            return await (db.lpush(self.key, buf) if self.right_to_left else db.rpush(self.key, buf))
        if self.key_type == "set":
            return await db.sadd(self.key, buf)
        return await db.hset(self.key, self.hash_key_func(obj), buf)

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.redis_db}, {self.key}, {self.key_type})"


class RedisCommunicationWriter(RedisWriter):
    """A :class:`RedisWriter` of Communications; hash fields are ids (or UUIDs with ``uuid_hash_key``)."""

    def __init__(self, redis_db: Any, key: str, uuid_hash_key: bool = False, **kwargs: Any) -> None:
        if "serialize_func" in kwargs:
            raise Exception("RedisCommunicationWriter does not allow custom serialize_func")
        if "hash_key_func" in kwargs:
            raise Exception("RedisCommunicationWriter does not allow custom hash_key_func")
        self.uuid_hash_key = uuid_hash_key
        super().__init__(redis_db, key, serialize_func=write_communication_to_buffer, hash_key_func=self._to_key,
                         **kwargs)

    def _to_key(self, comm: Communication) -> str:
        return comm.uuid.uuidString if self.uuid_hash_key else comm.id
