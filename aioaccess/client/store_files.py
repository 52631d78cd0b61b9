"""Store every Communication of files, directories and archives through a store client, many at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..codec import CodecError
from ..file_io import iter_files
from ..inputs import read_batch, split_communications

__all__ = ["StoreTally", "store_files"]

logger = logging.getLogger("aioaccess.cli")


@dataclass
class StoreTally:
    stored: int = 0
    failed: int = 0
    bytes: int = 0


async def store_files(client: Any, inputs: list[str], *, concurrency: int = 16,
                      on_progress: Callable[[int, StoreTally], None] | None = None) -> StoreTally:
    """Store the Communications under ``inputs`` with ``concurrency`` ``store_raw`` calls in flight.

    A file that holds no Communications, and a store that fails, are logged and counted, never
    fatal.  ``on_progress(bytes_done, tally)`` follows each file skipped and each store.
    """
    tally = StoreTally()
    queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(maxsize=concurrency * 4)

    def progress(done: int) -> None:
        if on_progress is not None:
            on_progress(done, tally)

    async def produce() -> None:
        for path in inputs:
            files = iter_files(path, recursive=True, skip_hidden=True)
            while batch := await asyncio.to_thread(read_batch, files, 64):
                for name, data in batch:
                    try:
                        comms = split_communications(name, data)
                    except CodecError as exc:
                        logger.warning("Skipping %s: not Communications (%s)", name, exc)
                        tally.failed += 1
                        progress(len(data))
                        continue
                    for comm in comms:
                        await queue.put(comm)
        for _ in range(concurrency):
            await queue.put(None)

    async def consume() -> None:
        while (item := await queue.get()) is not None:
            comm_id, raw = item
            try:
                await client.store_raw(raw)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the rest go on
                logger.warning("Failed to store %s: %s", comm_id, exc)
                tally.failed += 1
            else:
                tally.stored += 1
                tally.bytes += len(raw)
            progress(len(raw))

    await asyncio.gather(produce(), *(consume() for _ in range(concurrency)))
    return tally
