"""S3 ops for ``aioaccess bench s3``: PUT, GET, HEAD, DELETE and LIST against one bucket, and cleanup.

Objects are written at ``prefix_s3_key("aioaccess-bench-RUN-N", prefix_len)``
(concrete-python's key layout) under the optional key ``prefix``.  GET and
HEAD read the ``objects`` written before the first phase (as warp does);
DELETE removes objects PUT wrote, topped up (unmeasured) before a phase
that needs more (a worker with none left stops, as in warp); LIST asks for
one page.  GET records the time to first
byte: when the response headers arrived (aiobotocore's ``get_object``
returns then; with obstore the body is read after ``get_async``).
Everything the run wrote is deleted at the end unless it is kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from ..backends.s3 import prefix_s3_key
from .payloads import Payload
from .stats import Op, OutOfWork

__all__ = ["S3_OPS", "S3Bench"]

logger = logging.getLogger("aioaccess.bench.s3")

S3_OPS = ("put", "get", "head", "delete", "list")


class Exhausted(OutOfWork):
    """No object left for this op (DELETE ran faster than the pool was filled): the worker stops."""


class S3Bench:
    """The ops of one benchmark run against ``bucket`` through ``client`` (an aiobotocore-style S3 client)."""

    def __init__(self, client: Any, bucket: str, payloads: Sequence[Payload], *, prefix: str = "",
                 prefix_len: int = 4, list_max_keys: int = 1000, run_id: str | None = None) -> None:
        if not payloads:
            raise ValueError("no payloads to write")
        self.client = client
        self.bucket = bucket
        self.payloads = [raw for _, raw in payloads]
        self.prefix = prefix
        self.prefix_len = prefix_len
        self.list_max_keys = list_max_keys
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.issued_keys: list[str] = []  # every key a PUT was sent for (cleanup)
        self.readable: list[str] = []  # the objects GET and HEAD read
        self.deletable: list[str] = []  # objects PUT wrote that DELETE may remove
        self.deleted: set[str] = set()
        self._get = self._obstore_get()

    def ops(self) -> dict[str, Op]:
        return {"put": self.put, "get": self.get, "head": self.head, "delete": self.delete, "list": self.list}

    def _next_key(self) -> str:
        n = len(self.issued_keys)
        key = self.prefix + prefix_s3_key(f"aioaccess-bench-{self.run_id}-{n:08d}", self.prefix_len)
        self.issued_keys.append(key)
        return key

    async def _put(self, index: int) -> tuple[str, int]:
        body = self.payloads[index % len(self.payloads)]
        key = self._next_key()
        await self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return key, len(body)

    async def put(self, index: int) -> int:
        key, size = await self._put(index)
        self.deletable.append(key)
        return size

    def _obstore_get(self) -> Any:
        """obstore's ``get_async`` and the client's store lookup, when the client is obstore's (else None)."""
        store_of = getattr(self.client, "store", None)
        if store_of is None:
            return None
        import obstore

        return lambda key: obstore.get_async(store_of(self.bucket), key)

    async def get(self, index: int) -> tuple[int, float]:
        if not self.readable:
            raise Exhausted("nothing written to read back")
        key = self.readable[index % len(self.readable)]
        if self._get is not None:
            result = await self._get(key)
            first_byte = time.perf_counter()
            data = await result.bytes_async()
        else:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
            first_byte = time.perf_counter()
            async with response["Body"] as stream:
                data = await stream.read()
        return len(data), first_byte

    async def head(self, index: int) -> int:
        if not self.readable:
            raise Exhausted("nothing written to HEAD")
        await self.client.head_object(Bucket=self.bucket, Key=self.readable[index % len(self.readable)])
        return 0

    async def delete(self, index: int) -> int:
        if not self.deletable:
            raise Exhausted("no object left to delete")
        key = self.deletable.pop()
        await self.client.delete_object(Bucket=self.bucket, Key=key)
        self.deleted.add(key)
        return 0

    async def list(self, index: int) -> int:
        kwargs = {"Prefix": self.prefix} if self.prefix else {}
        await self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=self.list_max_keys, **kwargs)
        return 0

    async def _write(self, n: int, concurrency: int) -> list[str]:
        """Write ``n`` objects, ``concurrency`` at a time (not measured)."""
        slots = asyncio.Semaphore(max(1, concurrency))

        async def one(i: int) -> str:
            async with slots:
                return (await self._put(i))[0]

        return list(await asyncio.gather(*(one(i) for i in range(n))))

    async def seed(self, n: int, concurrency: int = 16) -> None:
        """Write the ``n`` objects GET and HEAD read."""
        self.readable.extend(await self._write(n, concurrency))

    async def top_up(self, n: int, concurrency: int = 16) -> int:
        """Make sure DELETE has ``n`` objects to remove; returns how many were written."""
        missing = max(0, n - len(self.deletable))
        self.deletable.extend(await self._write(missing, concurrency))
        return missing

    async def cleanup(self) -> dict[str, int]:
        """Delete every key this run sent a PUT for and did not DELETE; returns counts."""
        keys = [k for k in dict.fromkeys(self.issued_keys) if k not in self.deleted]
        deleted = failed = 0
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            try:
                response = await self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            except Exception as exc:  # report, keep going
                logger.warning("Deleting %d benchmark objects failed: %s", len(chunk), exc)
                failed += len(chunk)
                continue
            errors = len(response.get("Errors", ()))
            failed += errors
            deleted += len(chunk) - errors
        return {"written": len(set(self.issued_keys)), "deleted": deleted + len(self.deleted), "failed": failed}
