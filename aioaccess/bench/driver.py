"""The load driver of one phase: closed loop (``concurrency`` workers) or open loop (``rate`` ops/s).

Closed loop: each worker claims the next op (by weight), awaits it and
claims again, until ``count`` ops were issued or ``duration`` seconds
passed.  Open loop: op ``i`` is scheduled at ``start + (i + offset) / rate``
whatever the earlier ops did, at most ``concurrency`` in flight; an op
waiting for a slot is still timed from its scheduled time, so a slow server
shows up as latency (no coordinated omission).  Every issued op is recorded
once, as a success or an error of its kind, except one that raises
``OutOfWork``: it ends its worker (or the schedule) and is not counted.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections.abc import Callable

from .record import Records
from .stats import Op, OutOfWork, cpu_seconds, error_kind

__all__ = ["run_phase"]

#: Seconds between CPU samples (the per-second series and the window's CPU come from them).
CPU_SAMPLE_INTERVAL = 0.2


async def run_phase(ops: dict[str, Op], concurrency: int, *, count: int | None = None,
                    duration: float | None = None, rate: float | None = None, rate_offset: float = 0.0,
                    weights: dict[str, float] | None = None, timeout: float | None = None, seed: int = 0,
                    start_at: float | None = None, on_progress: Callable[[int], None] | None = None) -> Records:
    """Run ``ops`` for ``count`` ops in all or for ``duration`` seconds; return the raw records.

    An op returns the payload bytes it moved, or ``(bytes, first_byte_time)``.
    ``start_at`` (a ``time.perf_counter()`` reading) delays the start, so
    several processes start together.
    """
    if (count is None) == (duration is None):
        raise ValueError("give exactly one of count and duration")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, not {concurrency}")
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0, not {rate}")
    names = list(ops)
    calls = [ops[name] for name in names]
    rec = Records(names, rate=rate)
    rng = random.Random(seed)
    w = [float((weights or {}).get(name, 1.0)) for name in names]
    counters = [0] * len(names)  # per-op call index, so each op sees 0, 1, 2, ...
    perf = time.perf_counter
    done = 0

    def choose() -> int:
        return 0 if len(names) == 1 else rng.choices(range(len(names)), w)[0]

    async def one(i: int, scheduled: float) -> float | None:
        nonlocal done
        index = counters[i]
        counters[i] = index + 1
        started = perf()
        moved, first_byte, error = 0, 0.0, None
        try:
            async with asyncio.timeout(timeout):
                result = await calls[i](index)
            if type(result) is tuple:
                moved, first_byte = result
            else:
                moved = result  # type: ignore[assignment]
        except asyncio.CancelledError:
            rec.add(i, scheduled, started, 0.0, perf(), 0, "Cancelled")
            raise
        except OutOfWork:
            return None
        except Exception as exc:  # every failure is a result here
            error = error_kind(exc)
        ended = perf()
        rec.add(i, scheduled, started, first_byte, ended, moved, error)
        done += 1
        return ended

    if start_at is not None and (wait := start_at - perf()) > 0:
        await asyncio.sleep(wait)
    samples = [(perf(), cpu_seconds(), time.thread_time())]
    t0 = samples[0][0]
    deadline = t0 + duration if duration is not None else math.inf

    async def sampler() -> None:
        while True:
            await asyncio.sleep(CPU_SAMPLE_INTERVAL)
            samples.append((perf(), cpu_seconds(), time.thread_time()))
            if on_progress is not None:
                on_progress(done)

    claimed = itertools.count()

    def claim() -> bool:
        n = next(claimed)
        return (count is None or n < count) and perf() < deadline

    async def worker() -> None:
        first = last = 0.0
        while claim():
            started = perf()
            ended = await one(choose(), started)
            if ended is None:
                break
            first, last = first or started, ended
        if first:
            rec.workers.append((first, last))

    async def dispatcher() -> None:
        assert rate is not None
        slots = asyncio.Semaphore(concurrency)
        last = t0
        dry = False

        async def run(i: int, scheduled: float) -> None:
            nonlocal last, dry
            try:
                ended = await one(i, scheduled)
                dry = dry or ended is None
                last = max(last, ended or last)
            finally:
                slots.release()

        async with asyncio.TaskGroup() as tg:
            for n in itertools.count():
                scheduled = t0 + (n + rate_offset) / rate
                if (count is not None and n >= count) or scheduled >= deadline or dry:
                    break
                while (wait := scheduled - perf()) > 0:  # uvloop's timers may wake up to 1 ms early
                    await asyncio.sleep(wait)
                await slots.acquire()
                tg.create_task(run(choose(), scheduled))
        rec.workers.append((t0, last))

    tick = asyncio.create_task(sampler())
    try:
        if rate is not None:
            await dispatcher()
        else:
            async with asyncio.TaskGroup() as tg:
                for _ in range(concurrency):
                    tg.create_task(worker())
    finally:
        tick.cancel()
        samples.append((perf(), cpu_seconds(), time.thread_time()))
        rec.cpu.append(samples)
    if on_progress is not None:
        on_progress(done)
    return rec
