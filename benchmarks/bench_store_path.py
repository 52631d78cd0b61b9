"""CPU of one store call in the server, without sockets or a backend: the check a store makes.

A ``Processor`` for StoreCommunicationService gets store frames (an annotated
Communication of ``benchmarks/synthetic.py``, ~6 KB and ~100 KB) and answers them with
a store handler whose backend write does nothing.  Timed side by side, in one
run, interleaved round by round: the default handler (one pass, ``codec.validate``:
the schema and every required field) and the same handler checking as stores did
before (the server slicing the arguments with ``codec.skip``, then ``check_raw``:
structure only, a second ``skip``); and, for
scale, a real ``DirectoryBackedStoreHandler`` (``fsync=False``) in a temporary
directory.

    python -m benchmarks.bench_store_path [--calls 3000] [--rounds 7]

Prints the best round's CPU microseconds per call and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from aioaccess import codec
from aioaccess.backends.base import check_raw
from aioaccess.handlers.store import DirectoryBackedStoreHandler, StoreHandler
from aioaccess.schema import StoreCommunicationService
from aioaccess.server import Processor
from aioaccess.wire.messages import build_message
from benchmarks import synthetic as corpus


class _NullStore(StoreHandler):
    """The default checks; the backend write does nothing."""

    async def _put_raw(self, comm_id: str, raw: bytes) -> None:
        return None


class _StructureOnly(_NullStore):
    """What a store checked before ``codec.validate``: structure only, after the server's own scan."""

    checks_raw = False

    async def store_raw(self, comm_id: str | None, raw: bytes) -> None:
        await self._put_raw(self.check_id(comm_id), check_raw(str(comm_id), raw))


async def _cpu_per_call(processor: Processor, msg: bytes, calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        await processor.process(msg)
    return (time.process_time() - started) / calls


async def main(calls: int, rounds: int) -> None:
    print(f"codec: {codec.IMPLEMENTATION}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (6000, 100_000):
            await _sizes(size, calls, rounds, tmp)


async def _sizes(size: int, calls: int, rounds: int, tmp: str) -> None:
    """One Communication of about ``size`` bytes through each handler; print CPU per call."""
    raw = codec.encode(corpus.make_communication(f"bench-{size}", size=size, seed=1, full=False))
    msg = build_message("store", 1, 1, b"\x1c" + raw + b"\x00")[4:]
    handlers = {"validate (default)": _NullStore(), "skip twice (before)": _StructureOnly(),
                "directory, no fsync": DirectoryBackedStoreHandler(tmp, fsync=False)}
    processors = {name: Processor(StoreCommunicationService, h) for name, h in handlers.items()}
    best = dict.fromkeys(processors, float("inf"))
    n = max(50, calls * 6000 // size)
    for _ in range(rounds):
        for name, p in processors.items():
            best[name] = min(best[name], await _cpu_per_call(p, msg, n))
    base = best["skip twice (before)"]
    for name, t in best.items():
        print(f"{len(raw):>7} B  {name:<20} {t * 1e6:8.2f} us CPU/call  {t / base:5.2f}x")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    asyncio.run(main(a.calls, a.rounds))
