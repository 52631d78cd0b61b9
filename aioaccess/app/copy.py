"""Copy a corpus from any SOURCE into any TARGET (``aioaccess copy``): resumable, many in flight."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from ..exceptions import AioaccessError
from .config import BackendOptions
from .sources import open_source, open_target

__all__ = ["CopyTally", "copy", "copy_corpus"]

logger = logging.getLogger("aioaccess.cli")


@dataclass
class CopyTally:
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    #: Seconds from listing SRC to closing both backends.
    seconds: float = 0.0


async def copy_corpus(source: Any, target: Any, present: Any, ids: list[str], *, concurrency: int = 32,
                      on_done: Any = None) -> CopyTally:
    """Copy ``ids`` from container ``source`` to store handler ``target``; skip those ``present`` (a
    container over the target) holds already.  Failures are logged and counted, never fatal."""
    tally = CopyTally()
    queue = iter(ids)

    async def worker() -> None:
        for comm_id in queue:
            try:
                if present is not None and await present.contains(comm_id):
                    tally.skipped += 1
                else:
                    raw = await source.get_raw(comm_id)
                    await target.store_raw(comm_id, raw)
                    tally.copied += 1
                    tally.bytes += len(raw)
            except (AioaccessError, KeyError, OSError) as exc:
                tally.failed += 1
                logger.warning("Cannot copy %s: %s", comm_id, exc)
            if on_done is not None:
                on_done(tally)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return tally


async def copy(source: str, target: str, source_options: BackendOptions, target_options: BackendOptions, *,
               concurrency: int = 32, on_ids: Callable[[int], Any] | None = None,
               on_done: Callable[[CopyTally], Any] | None = None) -> CopyTally:
    """Copy every Communication of SOURCE ``source`` into TARGET ``target``, skipping the ids it holds.

    ``on_ids(n)`` is called once SOURCE is listed, ``on_done(tally)`` after each id.
    """
    async with AsyncExitStack() as stack:
        src = await open_source(source, source_options, stack)
        dst = await open_target(target, target_options, stack)
        present = await open_source(target, target_options, stack)  # what TARGET holds already
        started = time.perf_counter()
        ids = await src.ids()
        if on_ids is not None:
            on_ids(len(ids))
        tally = await copy_corpus(src, dst, present, ids, concurrency=concurrency, on_done=on_done)
    tally.seconds = time.perf_counter() - started
    return tally
