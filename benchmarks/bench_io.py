"""Issue #18's clients and readers beside concrete-python's, in one run: CPU per item, and wall time.

    python -m benchmarks.bench_io [--n 1000] [--calls 500]

* HTTP/TJSON: ``calls`` sequential ``fetch`` calls of one ~6 KB Communication, then ``calls // 5`` stores,
  against an ``aioaccess http-server`` subprocess, with concrete-python's
  ``HTTPFetch/StoreCommunicationClientWrapper`` and aioaccess's (``fetch`` decodes objects; ``fetch_raw``
  and ``store_raw`` stay on bytes).  Client CPU is this process's CPU time (the server runs elsewhere).
* Files: ``CommunicationReader`` over a .tar.gz of ``n`` ~6 KB Communications, defaults
  (``add_references=True``) and ``add_references=False``; ``CommunicationWriterTGZ`` writing them.

Measures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from aioaccess import codec
from benchmarks.synthetic import make_corpus


def _measure(fn: Callable[[], Any]) -> tuple[float, float]:
    gc.collect()  # the garbage of the previous row is collected before this one, not during it
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _row(name: str, items: int, wall: float, cpu: float, base: float | None = None) -> None:
    ratio = f"{base / cpu:6.2f}x less CPU" if base else ""
    print(f"  {name:<48} {items / wall:9.0f}/s  {cpu / items * 1e6:8.1f} us CPU each  {ratio}")


def bench_http(comm_dir: str, ids: list[str], calls: int) -> None:
    from concrete.access.ttypes import FetchRequest as CpFetchRequest
    from concrete.util import read_communication_from_buffer as cp_decode
    from concrete.util.access_wrapper import HTTPFetchCommunicationClientWrapper as CpFetch
    from concrete.util.access_wrapper import HTTPStoreCommunicationClientWrapper as CpStore

    from aioaccess import FetchRequest, HTTPFetchCommunicationClientWrapper, HTTPStoreCommunicationClientWrapper

    store_dir = tempfile.mkdtemp(prefix="bench-io-store-")
    with socket_port() as port:
        server = subprocess.Popen([sys.executable, "-m", "aioaccess", "http-server", comm_dir, "--store-path",
                                   store_dir, "--no-fsync", "--port", str(port), "-l", "WARNING"])
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url)
        with open(os.path.join(comm_dir, ids[0] + ".comm"), "rb") as f:
            raw = f.read()
        cp_comm = cp_decode(raw, add_references=False)

        def cp_fetch() -> None:
            with CpFetch(url + "/fetch_http_endpoint/") as c:
                for i in range(calls):
                    c.fetch(CpFetchRequest(communicationIds=[ids[i % len(ids)]]))

        def cp_store() -> None:
            with CpStore(url + "/store_http_endpoint/") as c:
                for _ in range(calls // 5):
                    c.store(cp_comm)

        async def aio(kind: str) -> None:
            if kind == "store":
                async with HTTPStoreCommunicationClientWrapper(url + "/store_http_endpoint/") as s:
                    for _ in range(calls // 5):
                        await s.store_raw(raw)
                return
            async with HTTPFetchCommunicationClientWrapper(url + "/fetch_http_endpoint/") as c:
                for i in range(calls):
                    if kind == "fetch":
                        await c.fetch(FetchRequest(communicationIds=[ids[i % len(ids)]]))
                    else:
                        await c.fetch_raw([ids[i % len(ids)]])

        print(f"HTTP/TJSON, {calls} sequential calls of one Communication ({len(raw)} bytes), one connection:")
        wall, base = _measure(cp_fetch)
        _row("concrete-python fetch", calls, wall, base)
        for kind in ("fetch", "fetch_raw"):
            wall, cpu = _measure(lambda kind=kind: asyncio.run(aio(kind)))
            _row(f"aioaccess {kind}", calls, wall, cpu, base)
        wall, base = _measure(cp_store)
        _row("concrete-python store", calls // 5, wall, base)
        wall, cpu = _measure(lambda: asyncio.run(aio("store")))
        _row("aioaccess store_raw", calls // 5, wall, cpu, base)
    finally:
        server.terminate()
        server.wait(30)


def bench_files(raws: list[bytes]) -> None:
    from concrete.util import CommunicationReader as CpReader
    from concrete.util import CommunicationWriterTGZ as CpTGZ
    from concrete.util import read_communication_from_buffer as cp_decode

    from aioaccess import CommunicationReader, CommunicationWriterTGZ

    path = os.path.join(tempfile.mkdtemp(prefix="bench-io-"), "corpus.tar.gz")
    cp_comms = [cp_decode(r, add_references=False) for r in raws]
    n = len(raws)

    def cp_write() -> None:
        with CpTGZ(path) as w:
            for c in cp_comms:
                w.write(c)

    async def aio_write() -> None:
        async with CommunicationWriterTGZ(path + ".aio.tar.gz") as w:
            for raw in raws:
                await w.write_raw(raw)

    print(f"Files: a .tar.gz of {n} Communications ({sum(map(len, raws)) / 1e6:.1f} MB):")
    wall, base = _measure(cp_write)
    _row("concrete-python CommunicationWriterTGZ.write", n, wall, base)
    wall, cpu = _measure(lambda: asyncio.run(aio_write()))
    _row("aioaccess CommunicationWriterTGZ.write_raw", n, wall, cpu, base)
    for refs in (True, False):
        async def aio_read(refs: bool = refs) -> None:
            async for _ in CommunicationReader(path, add_references=refs):
                pass

        wall, base = _measure(lambda refs=refs: [None for _ in CpReader(path, add_references=refs)])
        _row(f"concrete-python CommunicationReader, add_references={refs}", n, wall, base)
        wall, cpu = _measure(lambda: asyncio.run(aio_read()))
        _row(f"aioaccess CommunicationReader, add_references={refs}", n, wall, cpu, base)


class socket_port:
    """A free loopback port."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        pass


def _wait(url: str) -> None:
    import urllib.error
    import urllib.request

    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/fetch_http_endpoint/", timeout=1)
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the HTTP server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="Communications in the .tar.gz (default: 1000)")
    parser.add_argument("--calls", type=int, default=500, help="HTTP fetch calls per client (default: 500)")
    args = parser.parse_args()
    comms = list(make_corpus(args.n, size=6000))
    raws = [codec.encode(c) for c in comms]
    comm_dir = tempfile.mkdtemp(prefix="bench-io-comms-")
    for c, raw in zip(comms[:50], raws[:50], strict=True):
        with open(os.path.join(comm_dir, c.id + ".comm"), "wb") as f:
            f.write(raw)
    print(f"load average {os.getloadavg()[0]:.1f} at start")
    bench_http(comm_dir, [c.id for c in comms[:50]], args.calls)
    bench_files(raws)
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
