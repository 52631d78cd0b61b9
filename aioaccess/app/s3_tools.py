"""``aioaccess s3 list|fetch|store``: concrete-python's s3-list/fetch/store-concrete.py loops, many requests
in flight, over the S3 container and store handler every other command uses (:func:`open_source`,
:func:`open_target`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

from .config import BackendOptions
from .sources import open_source, open_target

__all__ = ["fetch_to_tgz", "list_ids", "store_into"]

logger = logging.getLogger("aioaccess.cli")


async def list_ids(location: str, options: BackendOptions) -> AsyncIterator[str]:
    """Every id in s3://BUCKET[/PREFIX/] ``location``, as the listing pages arrive."""
    async with AsyncExitStack() as stack:
        container = await open_source(location, options, stack)
        async for comm_id in container:
            yield comm_id


async def fetch_to_tgz(location: str, output_path: str, options: BackendOptions, *, chunk: int = 128,
                       on_ids: Callable[[int], Any] | None = None,
                       on_chunk: Callable[[int], Any] | None = None) -> tuple[int, int]:
    """Write every Communication of ``location`` to the .tar.gz ``output_path`` (members ID.concrete);
    (fetched, listed).  ``chunk`` ids are asked for at once (``get_raw_many`` keeps
    ``backend_concurrency`` GETs in flight); one that vanished meanwhile is logged."""
    from ..file_io import CommunicationWriterTGZ

    async with AsyncExitStack() as stack:
        container = await open_source(location, options, stack)
        ids = [comm_id async for comm_id in container]
        if on_ids is not None:
            on_ids(len(ids))
        fetched = 0
        async with CommunicationWriterTGZ(output_path) as writer:
            for start in range(0, len(ids), chunk):
                wanted = ids[start:start + chunk]
                got = await container.get_raw_many(wanted)
                for comm_id in wanted:
                    if comm_id in got:
                        await writer.write_raw(got[comm_id], f"{comm_id}.concrete")
                        fetched += 1
                    else:
                        logger.warning("%s vanished from the bucket while fetching", comm_id)
                if on_chunk is not None:
                    on_chunk(len(wanted))
    return fetched, len(ids)


async def _raws(path: str) -> AsyncIterator[tuple[str, bytes]]:
    """(where, compact bytes) of each Communication under ``path`` ("-": stdin), read in a worker thread."""
    from ..backends.memory import split_communications
    from ..file_io import FileType, iter_files

    if path == "-":
        files = iter_files("/dev/stdin", FileType.STREAM)
    else:
        files = iter_files(path, recursive=True, skip_hidden=True)
    sentinel = object()
    while (item := await asyncio.to_thread(next, files, sentinel)) is not sentinel:
        name, data = item  # type: ignore[misc]
        for raw in split_communications(data, name):
            yield name, raw


async def store_into(location: str, input_path: str, options: BackendOptions, *, concurrency: int = 32,
                     on_done: Callable[[int], Any] | None = None) -> tuple[int, int]:
    """Store every Communication under ``input_path`` ("-": stdin) in ``location``, ``concurrency`` at a
    time; (stored, failed).  A failed store is logged and counted; ``on_done(stored)`` follows each."""
    from .. import codec

    stored = failed = 0
    async with AsyncExitStack() as stack:
        handler = await open_target(location, options, stack)
        stack.push_async_callback(handler.aclose)
        queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(maxsize=concurrency * 4)

        async def produce() -> None:
            try:
                async for item in _raws(input_path):
                    await queue.put(item)
            finally:
                for _ in range(concurrency):
                    await queue.put(None)

        async def consume() -> None:
            nonlocal stored, failed
            while (item := await queue.get()) is not None:
                where, raw = item
                try:
                    await handler.store_raw(codec.read_string_field(raw, 1), raw)
                    stored += 1
                except Exception as exc:  # noqa: BLE001 - counted and logged; the rest go on
                    failed += 1
                    logger.warning("Failed to store a Communication of %s: %s", where, exc)
                if on_done is not None:
                    on_done(stored)

        await asyncio.gather(produce(), *(consume() for _ in range(concurrency)))
    return stored, failed
