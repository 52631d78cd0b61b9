"""Payloads for the benchmarks: Communications from any SOURCE, or synthetic ones (one text section each)
of a fixed size or a size range.

Sizes are written ``6000``, ``6KB``, ``4KiB`` or a uniform range ``4KiB-64KiB``;
with a range each synthetic payload's size is drawn uniformly from it.
"""

from __future__ import annotations

import argparse
import random
import re
import uuid as _uuid
from contextlib import AsyncExitStack

from .. import codec
from ..schema import UUID, AnnotationMetadata, Communication, Section, TextSpan

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


_WORDS = ("the report said a new plan for the region would be put to the board on monday after talks with "
          "officials from both sides who asked not to be named").split()


def _communication(comm_id: str, size: int, rng: random.Random) -> Communication:
    """A Communication with a text section whose compact encoding is about ``size`` bytes."""

    def build(text: str) -> Communication:
        uuids = [UUID(uuidString=str(_uuid.UUID(int=rng.getrandbits(128), version=4))) for _ in range(2)]
        return Communication(id=comm_id, uuid=uuids[0], type="news", text=text,
                             metadata=AnnotationMetadata(tool="aioaccess bench", timestamp=1700000000),
                             sectionList=[Section(uuid=uuids[1], kind="passage", textSpan=TextSpan(0, len(text)))])

    state = rng.getstate()
    overhead = len(codec.write_communication_to_buffer(build("")))
    words: list[str] = []
    length = 0
    while length < size - overhead - 8:  # the text's length prefix and section end grow by a few bytes
        words.append(rng.choice(_WORDS))
        length += len(words[-1]) + 1
    rng.setstate(state)
    return build(" ".join(words))


def synthetic(n: int, size: int | SizeRange, seed: int = 0, prefix: str = "bench") -> list[Payload]:
    """``n`` deterministic Communications of about ``size`` bytes each (or drawn from a range)."""
    lo, hi = (size, size) if isinstance(size, int) else size
    rng = random.Random(seed)
    out = []
    for i in range(n):
        comm_id = f"{prefix}-{i:06d}"
        size_i = hi - rng.randint(0, hi - lo)  # uniform; counted down from hi, so a range's draws keep with its top
        comm = _communication(comm_id, size_i, random.Random(f"{seed}:{comm_id}"))
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
