"""Closed-loop benchmark driver and the numbers of one phase.

A *phase* runs one or more ops at one concurrency: ``concurrency`` workers
each claim the next op (by weight), await it, and record its latency and
outcome, until ``count`` ops have been issued or ``duration`` seconds have
passed.  Every issued op ends in exactly one outcome, so ``ok + errors ==
issued`` holds for every op of every phase.  The client's CPU time (all
threads) is measured around the phase with ``getrusage``.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import resource
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Op", "OpStats", "PhaseResult", "cpu_seconds", "error_kind", "percentile", "proc_cpu_seconds", "run_phase"]

#: An op takes the index of the call (0, 1, 2, ...) and returns the payload bytes it moved.
Op = Callable[[int], Awaitable[int]]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), from /proc; None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of already sorted values; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def error_kind(exc: BaseException) -> str:
    """A short name for what went wrong: the S3 error code if any, else the exception's class."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    return type(exc).__name__


@dataclass
class OpStats:
    """Outcomes and latencies of one op in one phase."""

    op: str
    issued: int = 0
    ok: int = 0
    bytes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: array = field(default_factory=lambda: array("d"))  # seconds, successful ops only

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass
class PhaseResult:
    """What one phase measured, per op."""

    concurrency: int
    seconds: float
    cpu_seconds: float
    ops: dict[str, OpStats]

    def rows(self, phase: str | None = None) -> list[dict[str, Any]]:
        """One JSON-ready row per op (the report format)."""
        total = sum(s.issued for s in self.ops.values()) or 1
        rows = []
        for name, s in self.ops.items():
            lat = sorted(s.latencies)
            share = s.issued / total  # CPU is split between mixed ops by their share of calls
            cpu = self.cpu_seconds * share
            rows.append({
                "op": name,
                "phase": phase or name,
                "concurrency": self.concurrency,
                "issued": s.issued,
                "ok": s.ok,
                "error_count": s.error_count,
                "errors": dict(sorted(s.errors.items())),
                "seconds": round(self.seconds, 6),
                "ops_per_s": s.ok / self.seconds if self.seconds > 0 else 0.0,
                "bytes": s.bytes,
                "mb_per_s": s.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0,
                "latency_ms": {
                    "p50": percentile(lat, 50) * 1e3,
                    "p90": percentile(lat, 90) * 1e3,
                    "p99": percentile(lat, 99) * 1e3,
                    "max": (lat[-1] if lat else 0.0) * 1e3,
                    "mean": (sum(lat) / len(lat) if lat else 0.0) * 1e3,
                },
                "cpu_s": cpu,
                "cpu_s_per_1000_ops": cpu / s.issued * 1000 if s.issued else 0.0,
            })
        return rows


async def run_phase(ops: dict[str, Op], concurrency: int, *, count: int | None = None,
                    duration: float | None = None, weights: dict[str, float] | None = None,
                    timeout: float | None = None, seed: int = 0,
                    on_progress: Callable[[int], None] | None = None) -> PhaseResult:
    """Run ``ops`` with ``concurrency`` workers for ``count`` ops in all, or for ``duration`` seconds.

    With several ops each call picks one by ``weights`` (equal by default).
    An op that raises (or overruns ``timeout``) counts as an error of its
    kind; ``on_progress`` gets the number of finished ops now and then.
    """
    if (count is None) == (duration is None):
        raise ValueError("give exactly one of count and duration")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, not {concurrency}")
    names = list(ops)
    stats = {name: OpStats(name) for name in names}
    rng = random.Random(seed)
    w = [float((weights or {}).get(name, 1.0)) for name in names]
    counters = dict.fromkeys(names, 0)  # per-op call index, so ops see 0, 1, 2, ...
    claimed = itertools.count()
    done = 0
    deadline = math.inf
    perf = time.perf_counter

    def claim() -> str | None:
        n = next(claimed)
        if count is not None and n >= count:
            return None
        if duration is not None and perf() >= deadline:
            return None
        return names[0] if len(names) == 1 else rng.choices(names, w)[0]

    async def worker() -> None:
        nonlocal done
        while (name := claim()) is not None:
            s = stats[name]
            index = counters[name]
            counters[name] = index + 1
            s.issued += 1
            started = perf()
            try:
                if timeout is None:
                    moved = await ops[name](index)
                else:
                    async with asyncio.timeout(timeout):
                        moved = await ops[name](index)
            except asyncio.CancelledError:
                s.errors["Cancelled"] += 1
                raise
            except Exception as exc:  # every failure is a result here
                s.errors[error_kind(exc)] += 1
            else:
                s.latencies.append(perf() - started)
                s.ok += 1
                s.bytes += moved
            done += 1

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.1)
            on_progress(done)  # type: ignore[misc]

    cpu0 = cpu_seconds()
    t0 = perf()
    if duration is not None:
        deadline = t0 + duration
    tick = asyncio.create_task(ticker()) if on_progress is not None else None
    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(concurrency):
                tg.create_task(worker())
    finally:
        if tick is not None:
            tick.cancel()
    seconds = perf() - t0
    cpu = cpu_seconds() - cpu0
    if on_progress is not None:
        on_progress(done)
    return PhaseResult(concurrency, seconds, cpu, stats)
