"""Payloads for the benchmarks: Communications from any SOURCE, or synthetic ones of a fixed size or a size range.

Sizes are written ``6000``, ``6KB``, ``4KiB`` or a uniform range ``4KiB-64KiB``;
with a range each synthetic payload's size is drawn uniformly from it.
"""

from __future__ import annotations

import argparse
import random
import re
from contextlib import AsyncExitStack

from .. import codec

__all__ = ["Payload", "SizeRange", "load_corpus", "parse_size", "synthetic"]

#: (Communication id, compact bytes)
Payload = tuple[str, bytes]
#: (smallest, largest) size in bytes; equal for a fixed size
SizeRange = tuple[int, int]

_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")


def _bytes(text: str) -> int:
    m = _SIZE.fullmatch(text.lower())
    if not m or m.group(2) not in _UNITS:
        raise argparse.ArgumentTypeError(f"expected a size like 6000, 6KB or 4KiB, not {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_size(text: str) -> SizeRange:
    """``"6KB"`` -> (6000, 6000); ``"4KiB-64KiB"`` -> (4096, 65536) (argparse type)."""
    lo, sep, hi = text.partition("-")
    smallest, largest = _bytes(lo), _bytes(hi) if sep else _bytes(lo)
    if not 1 <= smallest <= largest:
        raise argparse.ArgumentTypeError(f"expected sizes >= 1 with the smaller first, not {text!r}")
    return smallest, largest


def synthetic(n: int, size: int | SizeRange, seed: int = 0, prefix: str = "bench") -> list[Payload]:
    """``n`` deterministic annotated Communications of about ``size`` bytes each (or drawn from a range)."""
    from ..corpus import make_communication

    lo, hi = (size, size) if isinstance(size, int) else size
    rng = random.Random(seed)
    out = []
    for i in range(n):
        comm_id = f"{prefix}-{i:06d}"
        comm = make_communication(comm_id, size=rng.randint(lo, hi), seed=seed)
        out.append((comm_id, codec.write_communication_to_buffer(comm)))
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
