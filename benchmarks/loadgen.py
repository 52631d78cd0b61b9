"""Closed-loop load generator: C framed-compact connections sending ``fetch`` calls back to back.

One process, one uvloop event loop.  Request frames are built once, up front,
with concrete-python's own Thrift client writing into a memory buffer; replies
are read as raw frames (4-byte length, then the payload) and never decoded:
only the message type byte is checked (REPLY, not EXCEPTION) and the payload
must be at least ``--min-reply`` bytes, so a server answering with empty
results counts errors instead of speed.

Run as ``python -m benchmarks.loadgen --port P --ids-file F -c 128 -k 1``; it
prints one JSON object: calls/s, MB/s, latency percentiles, errors, refused
and dropped connections, and the CPU the load generator itself used (and the
server's, given ``--server-pid``: that process and every process it started), so
one can tell who was the bottleneck.  ``answered_conns`` counts the connections
that got at least one reply; ``timed_out`` those still waiting 10 s after the window.

Calls/s and MB/s count replies that arrive inside the measured window;
latencies are those of calls sent inside it, so a connection's first call
(sent in the warm-up, and at 1,024 connections sometimes held ~1 s before the
server sees it, the ceiling's included) is reported on its own as
``first_call_max_ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import resource
import sys
import time
from typing import Any

from aioaccess.bench.stats import proc_cpu_seconds

from .proctree import tree_cpu_seconds

__all__ = ["build_fetch_frames", "proc_cpu_seconds", "raise_nofile", "run_load"]

_REPLY = 2


def raise_nofile(want: int = 65536) -> int:
    """Raise RLIMIT_NOFILE's soft limit toward ``want``; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def build_fetch_frames(ids: list[str], k: int, count: int, seed: int = 0) -> list[bytes]:
    """``count`` framed ``fetch`` calls, each for ``k`` ids drawn at random, written by concrete-python."""
    from concrete.access import FetchCommunicationService
    from concrete.access.ttypes import FetchRequest
    from thrift.protocol.TCompactProtocol import TCompactProtocol
    from thrift.transport.TTransport import TFramedTransport, TMemoryBuffer

    rng = random.Random(seed)
    frames = []
    for _ in range(count):
        buf = TMemoryBuffer()
        client = FetchCommunicationService.Client(TCompactProtocol(TFramedTransport(buf)))
        client.send_fetch(FetchRequest(communicationIds=rng.sample(ids, k) if k <= len(ids) else rng.choices(ids, k=k)))
        frames.append(buf.getvalue())
    return frames


class _Run:
    """State shared by every connection of one run."""

    def __init__(self, frames: list[bytes], t_start: float, t_end: float, min_reply: int) -> None:
        self.frames = frames
        self.t_start = t_start
        self.t_end = t_end
        self.min_reply = min_reply
        self.latencies: list[float] = []
        self.calls = 0
        self.first_call_max = 0.0
        self.bytes = 0
        self.calls_total = 0
        self.errors = 0
        self.error_sample: bytes | None = None
        self.dropped = 0
        self.active = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def finished_one(self) -> None:
        self.active -= 1
        if self.active == 0 and not self.done.done():
            self.done.set_result(None)


class _Conn(asyncio.Protocol):
    """One connection: send a call, read its whole reply frame, send the next."""

    def __init__(self, run: _Run, start: int) -> None:
        self.run = run
        self.index = start
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.size = -1  # bytes of the reply being read (frame header included), -1: unknown yet
        self.got = 0
        self.bad = False
        self.sent_at = 0.0
        self.sending = False
        self.first = True  # the connection's first call: its latency is reported on its own

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def start(self) -> None:
        self.sending = True
        self.run.active += 1
        self._send()

    def _send(self) -> None:
        frames = self.run.frames
        self.index = (self.index + 1) % len(frames)
        self.sent_at = time.perf_counter()
        transport = self.transport
        if transport is None or transport.is_closing():
            self.connection_lost(None)
            return
        transport.write(frames[self.index])

    def data_received(self, data: bytes) -> None:
        if self.size < 0:
            head = self.head + data if self.head else data
            if len(head) < 6:
                self.head = head
                return
            self.head = b""
            self.size = int.from_bytes(head[:4], "big") + 4
            self.bad = (head[5] >> 5) & 7 != _REPLY or self.size < self.run.min_reply
            if self.bad and self.run.error_sample is None:
                self.run.error_sample = head[:300]
            got = len(head)
        else:
            got = self.got + len(data)
        if got < self.size:
            self.got = got
            return
        now = time.perf_counter()
        run = self.run
        if got > self.size:  # only one call is ever outstanding: extra bytes are a server bug
            self.bad = True
        run.calls_total += 1
        if self.bad:
            run.errors += 1
        elif run.t_start <= now <= run.t_end:
            run.calls += 1
            run.bytes += self.size
            if self.sent_at >= run.t_start:  # latency of calls sent inside the window
                run.latencies.append(now - self.sent_at)
        if self.first:
            self.first = False
            run.first_call_max = max(run.first_call_max, now - self.sent_at)
        self.size, self.got = -1, 0
        if now < run.t_end:
            self._send()
        else:
            self.sending = False
            run.finished_one()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.sending:
            self.sending = False
            self.run.dropped += 1
            self.run.finished_one()


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def run_load(host: str, port: int, frames: list[bytes], conns: int, duration: float, warmup: float,
                   min_reply: int = 0, server_pid: int | None = None, connect_timeout: float = 15.0) -> dict[str, Any]:
    """Drive ``conns`` connections for ``warmup + duration`` seconds; return the measurements."""
    loop = asyncio.get_running_loop()
    run = _Run(frames, float("inf"), float("inf"), min_reply)
    limit = asyncio.Semaphore(128)
    refused = 0
    connect_errors: dict[str, int] = {}

    async def connect(i: int) -> _Conn | None:
        nonlocal refused
        async with limit:
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(lambda: _Conn(run, i * 7919), host, port), connect_timeout)
            except (TimeoutError, OSError) as exc:
                refused += 1
                key = type(exc).__name__
                connect_errors[key] = connect_errors.get(key, 0) + 1
                return None
            return proto

    connect_started = time.perf_counter()
    made = [c for c in await asyncio.gather(*(connect(i) for i in range(conns))) if c is not None]
    connect_seconds = time.perf_counter() - connect_started
    if not made:
        return {"conns": conns, "refused": refused, "connect_errors": connect_errors, "calls_per_s": 0.0,
                "error": "no connection could be made"}
    now = time.perf_counter()
    run.t_start = now + warmup
    run.t_end = run.t_start + duration
    gc.collect()
    gc.disable()
    for c in made:
        c.start()
    await asyncio.sleep(max(0.0, run.t_start - time.perf_counter()))
    server0 = tree_cpu_seconds(server_pid) if server_pid else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(max(0.0, run.t_end - time.perf_counter()))
    server1 = tree_cpu_seconds(server_pid) if server_pid else None
    cpu1, wall1 = time.process_time(), time.perf_counter()
    timed_out = 0
    try:
        await asyncio.wait_for(asyncio.shield(run.done), 10.0)
    except TimeoutError:
        timed_out = run.active
    gc.enable()
    for c in made:
        if c.transport is not None:
            c.sending = False
            c.transport.close()
    await asyncio.sleep(0)
    lat = sorted(run.latencies)
    wall = wall1 - wall0
    return {
        "conns": conns,
        "duration_s": round(duration, 3),
        "calls": run.calls,
        "calls_per_s": run.calls / duration,
        "mb_per_s": run.bytes / duration / 1e6,
        "mean_reply_bytes": run.bytes / run.calls if run.calls else 0,
        "p50_ms": _pct(lat, 0.50) * 1e3,
        "p99_ms": _pct(lat, 0.99) * 1e3,
        "max_ms": (lat[-1] if lat else float("nan")) * 1e3,
        "first_call_max_ms": run.first_call_max * 1e3,
        "errors": run.errors,
        "error_sample": run.error_sample.decode("latin-1") if run.error_sample else None,
        "refused": refused,
        "connect_errors": connect_errors,
        "dropped": run.dropped,
        "timed_out": timed_out,
        "answered_conns": sum(not c.first for c in made),
        "connect_s": round(connect_seconds, 3),
        "loadgen_cpu": (cpu1 - cpu0) / wall,
        "server_cpu": (server1 - server0) / wall if server0 is not None and server1 is not None else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fetch load generator (one process, uvloop)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ids-file", required=True, help="one Communication id per line")
    parser.add_argument("-c", "--conns", type=int, default=16)
    parser.add_argument("-k", "--ids-per-call", type=int, default=1)
    parser.add_argument("-d", "--duration", type=float, default=5.0)
    parser.add_argument("-w", "--warmup", type=float, default=1.0)
    parser.add_argument("--frames", type=int, default=4096, help="distinct pre-built request frames")
    parser.add_argument("--min-reply", type=int, default=0, help="replies shorter than this count as errors")
    parser.add_argument("--server-pid", type=int, help="also report this process's CPU use")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args(argv)
    raise_nofile(args.conns * 2 + 256)
    with open(args.ids_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    frames = build_fetch_frames(ids, args.ids_per_call, args.frames, args.seed)
    coro = run_load(args.host, args.port, frames, args.conns, args.duration, args.warmup,
                    args.min_reply, args.server_pid)
    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    result["ids_per_call"] = args.ids_per_call
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
