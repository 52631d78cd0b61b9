"""S3 ops for ``aioaccess bench s3``: PUT, GET and LIST against one bucket, and cleanup.

Objects are written at ``prefix_s3_key("aioaccess-bench-RUN-N", prefix_len)``
(concrete-python's key layout); GETs read back what this run wrote; LIST asks
for one page of the bucket.  Everything the run wrote is deleted at the end
unless it is kept.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from ..backends.s3 import prefix_s3_key
from .payloads import Payload
from .stats import Op

__all__ = ["S3_OPS", "S3Bench"]

logger = logging.getLogger("aioaccess.bench.s3")

S3_OPS = ("put", "get", "list")


class S3Bench:
    """The ops of one benchmark run against ``bucket`` through ``client`` (an aiobotocore-style S3 client)."""

    def __init__(self, client: Any, bucket: str, payloads: Sequence[Payload], *, prefix_len: int = 4,
                 list_max_keys: int = 1000, run_id: str | None = None) -> None:
        if not payloads:
            raise ValueError("no payloads to write")
        self.client = client
        self.bucket = bucket
        self.payloads = [raw for _, raw in payloads]
        self.prefix_len = prefix_len
        self.list_max_keys = list_max_keys
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.issued_keys: list[str] = []  # every key a PUT was sent for (cleanup)
        self.readable: list[tuple[str, int]] = []  # keys whose PUT succeeded, with their sizes

    def ops(self) -> dict[str, Op]:
        return {"put": self.put, "get": self.get, "list": self.list}

    def _next_key(self) -> str:
        n = len(self.issued_keys)
        key = prefix_s3_key(f"aioaccess-bench-{self.run_id}-{n:08d}", self.prefix_len)
        self.issued_keys.append(key)
        return key

    async def put(self, index: int) -> int:
        body = self.payloads[index % len(self.payloads)]
        key = self._next_key()
        await self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        self.readable.append((key, len(body)))
        return len(body)

    async def get(self, index: int) -> int:
        if not self.readable:
            raise LookupError("nothing written to read back")
        key, _ = self.readable[index % len(self.readable)]
        response = await self.client.get_object(Bucket=self.bucket, Key=key)
        async with response["Body"] as stream:
            data = await stream.read()
        return len(data)

    async def list(self, index: int) -> int:
        await self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=self.list_max_keys)
        return 0

    async def seed(self, n: int) -> None:
        """Write ``n`` objects (not measured) so GETs have something to read."""
        for i in range(n):
            await self.put(i)

    async def cleanup(self) -> dict[str, int]:
        """Delete every key this run sent a PUT for; returns counts of deleted and failed deletes."""
        keys = list(dict.fromkeys(self.issued_keys))
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
        return {"written": len(keys), "deleted": deleted, "failed": failed}
