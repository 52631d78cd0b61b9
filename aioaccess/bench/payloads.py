"""Payloads for the benchmarks: Communications from any SOURCE, or synthetic ones of a given size."""

from __future__ import annotations

import argparse
from contextlib import AsyncExitStack

from .. import codec

__all__ = ["Payload", "load_corpus", "synthetic"]

#: (Communication id, compact bytes)
Payload = tuple[str, bytes]


def synthetic(n: int, size: int, seed: int = 0, prefix: str = "bench") -> list[Payload]:
    """``n`` deterministic annotated Communications of about ``size`` bytes each."""
    from ..corpus import make_communication

    out = []
    for i in range(n):
        comm_id = f"{prefix}-{i:06d}"
        out.append((comm_id, codec.write_communication_to_buffer(make_communication(comm_id, size=size, seed=seed))))
    return out


async def load_corpus(spec: str, n: int, args: argparse.Namespace) -> list[Payload]:
    """Up to ``n`` Communications (raw bytes) from SOURCE ``spec`` (anything fetch-server accepts)."""
    from ..cli.sources import open_source

    async with AsyncExitStack() as stack:
        container = await open_source(spec, args, stack)
        ids = await container.ids(0, n)
        out: list[Payload] = []
        for start in range(0, len(ids), 100):
            chunk = ids[start:start + 100]
            raws = await container.get_raw_many(chunk)
            out.extend((i, raws[i]) for i in chunk if i in raws)
    return out
