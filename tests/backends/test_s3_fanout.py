"""A big S3 get-many runs on a fixed set of workers, never a task per id."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aioaccess import codec
from aioaccess.backends import S3BackedCommunicationContainer
from aioaccess.backends.s3 import prefix_s3_key
from benchmarks.synthetic import make_communication

pytestmark = pytest.mark.s3


async def test_get_many_of_many_ids_keeps_order_and_bounds_tasks(s3_client: Any, s3_bucket: str) -> None:
    stored = {}
    for i in range(0, 60, 3):
        raw = codec.encode(make_communication(f"doc-{i}", size=3000, seed=i))
        await s3_client.put_object(Bucket=s3_bucket, Key=prefix_s3_key(f"doc-{i}", 4), Body=raw)
        stored[f"doc-{i}"] = raw
    container = S3BackedCommunicationContainer(s3_client, s3_bucket, max_concurrency=3)
    ids = [f"doc-{i}" for i in range(60)] * 2  # 40 hits and 80 misses, repeated ids included

    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(asyncio.all_tasks()))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    try:
        found = await container.get_raw_many(ids)
    finally:
        watcher.cancel()
    assert list(found) == list(stored)
    assert found == stored
    # this task, the watcher, and at most three workers (a task per id would be 60)
    assert peak <= 5
