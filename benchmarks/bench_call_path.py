"""Python cost of one fetch call in the server, without sockets.

A ``FramedProtocol`` over the benchmark corpus (directory, zip, memory) gets
fetch frames, as concrete-python's client writes them, straight into
``data_received``; its transport only counts writes.  What is timed is
everything aioaccess does per call (framing, parsing, lookup, reply) and
nothing of the kernel or the event loop: the number the fetch benchmark's
profile cannot separate from ``send()``.

    python -m benchmarks.bench_call_path [--calls 200000] [--rounds 3] [dir zip mem dir-stale]
    python -m benchmarks.bench_call_path --redis-url redis://127.0.0.1:6379/0 --redis-key KEY   # + 128 closed-loop
        connections on dir and on the Redis pipe (load the corpus first: aioaccess copy DIR URL --redis-key KEY)

``dir-stale`` is ``dir`` without the check for queued inotify events before the
table is used (what the fast path did before read-your-writes): the check's cost.

Set ``AIOACCESS_PURE_PYTHON=1`` to time the pure-Python fallback.  Prints the
best round's microseconds per call for each source.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from aioaccess import codec
from aioaccess.backends import (
    CommunicationContainer,
    DirectoryBackedCommunicationContainer,
    MemoryBackedCommunicationContainer,
    ZipFileBackedCommunicationContainer,
)
from aioaccess.handlers import CommunicationContainerFetchHandler
from aioaccess.schema import FetchCommunicationService
from aioaccess.server import Processor, ServerConfig, ServerState
from aioaccess.server.protocol import FramedProtocol

from .corpus import ensure_corpus
from .loadgen import build_fetch_frames

__all__ = ["time_call_path"]


class _CountingTransport:
    """Just enough of a transport: counts what the server writes."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: Any) -> None:
        self.writes += 1

    def writelines(self, data: Any) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def time_call_path(container: CommunicationContainer, frames: list[bytes], calls: int, rounds: int,
                         guard: bool = True) -> float:
    """Best microseconds per call of ``rounds`` runs of ``calls`` fetch frames through one connection.

    ``guard=False`` skips the table's guard (queued inotify events are not applied first)."""
    if isinstance(container, MemoryBackedCommunicationContainer):
        await container.load()
    processor = Processor(FetchCommunicationService, CommunicationContainerFetchHandler(container))
    proto = FramedProtocol(processor, ServerState(ServerConfig(idle_timeout=None)))
    transport = _CountingTransport()
    proto.connection_made(transport)  # type: ignore[arg-type]
    if not guard:
        proto.fast.guard = None  # type: ignore[union-attr]  # this Processor's own FastFetch
    for frame in frames:  # warm every cache; a call that reads a file finishes in a Task
        proto.data_received(frame)
        while proto.busy or proto.pending:
            await asyncio.sleep(0.001)
    transport.writes = 0
    best = float("inf")
    mask = len(frames) - 1
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(calls):
            proto.data_received(frames[i & mask])
        best = min(best, (time.perf_counter() - started) / calls)
    if transport.writes != rounds * calls:
        raise RuntimeError(f"{transport.writes} replies for {rounds * calls} calls")
    await container.aclose()
    return best * 1e6


class _ClientTransport(_CountingTransport):
    """A closed-loop client: each reply written makes the connection send its next call."""

    def __init__(self, feed: Any) -> None:
        super().__init__()
        self.feed = feed

    def write(self, data: Any) -> None:
        self.writes += 1
        self.feed()

    writelines = write


async def time_concurrent_path(container: CommunicationContainer, frames: list[bytes], calls: int,
                               conns: int = 128) -> tuple[float, float]:
    """(process CPU us per call, calls/s) of ``conns`` closed-loop connections making ``calls`` calls.

    For containers that wait on a backend (Redis): the CPU counted is all of this
    process's, so it includes the backend's socket I/O, but not the clients' sockets.
    """
    loop = asyncio.get_running_loop()
    processor = Processor(FetchCommunicationService, CommunicationContainerFetchHandler(container))
    state = ServerState(ServerConfig(idle_timeout=None))
    sent = 0
    done = loop.create_future()
    mask = len(frames) - 1

    def connection() -> None:
        proto = FramedProtocol(processor, state)

        def feed() -> None:
            nonlocal sent
            if sent >= calls:
                if not done.done() and all(not p.busy for p in protos):
                    done.set_result(None)
                return
            sent += 1
            loop.call_soon(proto.data_received, frames[sent & mask])

        proto.connection_made(_ClientTransport(feed))  # type: ignore[arg-type]
        protos.append(proto)
        feed()

    protos: list[FramedProtocol] = []
    for _ in range(conns):
        connection()
    started, cpu = time.perf_counter(), time.process_time()
    await done
    cpu, wall = time.process_time() - cpu, time.perf_counter() - started
    await container.aclose()
    return cpu / calls * 1e6, calls / wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="*", metavar="dir|zip|mem", help="sources to time (default: all three)")
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", type=int, default=5000, help="Communications in the corpus")
    parser.add_argument("--size", type=int, default=6000, help="bytes per Communication")
    parser.add_argument("--redis-url", help="also time 128 concurrent connections on dir and on this Redis")
    parser.add_argument("--redis-key", default="bench", help="hash holding the corpus at --redis-url")
    args = parser.parse_args(argv)
    sources = args.sources or ["dir", "zip", "mem"]
    known = {"dir", "zip", "mem", "dir-stale"}
    if set(sources) - known:
        parser.error(f"unknown source(s): {', '.join(sorted(set(sources) - known))}")
    corpus = ensure_corpus(args.n, args.size)
    ids = corpus.ids()
    frames = build_fetch_frames(ids, 1, 4096, seed=1)
    make = {
        "dir": lambda: DirectoryBackedCommunicationContainer(corpus.directory),
        "zip": lambda: ZipFileBackedCommunicationContainer(corpus.zip_path),
        "mem": lambda: MemoryBackedCommunicationContainer(corpus.tgz_path),
        "dir-stale": lambda: DirectoryBackedCommunicationContainer(corpus.directory),
    }
    try:
        import uvloop
        run: Any = uvloop.run
    except ImportError:
        run = asyncio.run
    print(f"codec = {codec.IMPLEMENTATION}, {args.calls} calls x {args.rounds} rounds, best round")
    for source in sources:
        us = run(time_call_path(make[source](), frames, args.calls, args.rounds, guard=source != "dir-stale"))
        print(f"  {source:4s} {us:6.2f} us/call")
    if args.redis_url:
        run(_concurrent(args, corpus.directory, frames))
    return 0


async def _concurrent(args: argparse.Namespace, directory: str, frames: list[bytes]) -> None:
    from aioaccess.backends.redis_fast import RedisPipeCommunicationContainer
    from aioaccess.backends.redis_pipe import RedisPipe

    print("128 closed-loop connections, process CPU per call (Redis: its socket I/O included), best round")
    for name in ("dir", "redis"):
        best = (float("inf"), 0.0)
        for _ in range(args.rounds):
            if name == "dir":
                container: CommunicationContainer = DirectoryBackedCommunicationContainer(directory)
                await time_concurrent_path(container, frames, 5000)  # warm the table
                container = DirectoryBackedCommunicationContainer(directory)
            else:
                container = RedisPipeCommunicationContainer(RedisPipe(args.redis_url), args.redis_key, owns_pipe=True)
            best = min(best, await time_concurrent_path(container, frames, args.calls // 2))
        print(f"  {name:5s} {best[0]:6.2f} us/call  {best[1]:9.0f} calls/s")


if __name__ == "__main__":
    raise SystemExit(main())
