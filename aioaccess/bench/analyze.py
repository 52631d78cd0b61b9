"""From raw ``Records`` to report rows: the measured window, per-op numbers and a per-second series.

Closed loop, the *window* runs from the moment the last worker started to
the moment the first worker finished, so ramp-up and ramp-down are left out
(as MinIO's warp does); throughput, latency percentiles and client CPU come
from the ops that started and ended inside it.  When no op fits (very short
runs) the whole phase is used and ``window.all_workers`` is false.  Open
loop, the window is the whole schedule and latency counts from each op's
scheduled time.  Issued/ok/error counts always cover the whole phase.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .record import Records
from .stats import percentile

__all__ = ["CLIENT_BOUND_CORES", "cpu_between", "summarize", "window"]

#: A client process (or its event-loop thread) using this much of one core or more is reported as the bottleneck.
CLIENT_BOUND_CORES = 0.9


def window(rec: Records) -> tuple[float, float, bool]:
    """``(start, end, all_workers)`` of the measured window."""
    if not rec.workers:
        return 0.0, 0.0, False
    firsts = [f for f, _ in rec.workers]
    lasts = [e for _, e in rec.workers]
    whole = (min(rec.scheduled), max(lasts), False) if len(rec) else (min(firsts), max(lasts), False)
    if rec.rate is not None:
        return whole
    w0, w1 = max(firsts), min(lasts)
    if w1 <= w0 or not any(s >= w0 and e <= w1 for s, e in zip(rec.started, rec.ended, strict=True)):
        return whole
    return w0, w1, True


def _at(samples: Sequence[tuple[float, ...]], t: float, column: int) -> float:
    """CPU seconds (``column`` 1: process, 2: loop thread) at time ``t``, interpolated between samples."""
    i = bisect.bisect_left([s[0] for s in samples], t)
    if i <= 0:
        return samples[0][column]
    if i >= len(samples):
        return samples[-1][column]
    a, b = samples[i - 1], samples[i]
    return a[column] + (b[column] - a[column]) * ((t - a[0]) / (b[0] - a[0]) if b[0] > a[0] else 1.0)


def cpu_between(rec: Records, t0: float, t1: float, column: int = 1) -> list[float]:
    """CPU seconds each client process (``column`` 2: its event-loop thread) spent between ``t0`` and ``t1``."""
    return [max(0.0, _at(s, t1, column) - _at(s, t0, column)) for s in rec.cpu if s]


def _ms(values: list[float]) -> dict[str, float]:
    values.sort()
    return {"p50": percentile(values, 50) * 1e3, "p90": percentile(values, 90) * 1e3,
            "p99": percentile(values, 99) * 1e3, "max": (values[-1] if values else 0.0) * 1e3,
            "mean": (sum(values) / len(values) if values else 0.0) * 1e3}


def _series(rec: Records, idx: list[int], t0: float, t_end: float) -> list[dict[str, Any]]:
    """Per-second numbers of the ops ``idx`` (by end time), with the client's CPU in each second.

    A last partial second shorter than half a second is counted in the one before it.
    """
    span_all = t_end - t0
    seconds = max(1, math.floor(span_all) if span_all - math.floor(span_all) < 0.5 else math.ceil(span_all))
    buckets: list[list[int]] = [[] for _ in range(seconds)]
    for i in idx:
        buckets[min(seconds - 1, int(rec.ended[i] - t0))].append(i)
    out = []
    for n, bucket in enumerate(buckets):
        a, b = t0 + n, (t0 + n + 1 if n < seconds - 1 else max(t_end, t0 + n + 1e-9))
        span = max(b - a, 1e-9)
        ok = [i for i in bucket if i not in rec.errors]
        lat = sorted(rec.ended[i] - rec.scheduled[i] for i in ok)
        out.append({"t": n, "ops": len(ok), "ops_per_s": len(ok) / span, "errors": len(bucket) - len(ok),
                    "mb_per_s": sum(rec.moved[i] for i in ok) / 1e6 / span,
                    "p50_ms": percentile(lat, 50) * 1e3, "p99_ms": percentile(lat, 99) * 1e3,
                    "cpu_cores": sum(cpu_between(rec, a, b)) / span})
    return out


def summarize(rec: Records, phase: str, concurrency: int) -> list[dict[str, Any]]:
    """One JSON-ready row per op of the phase (the report format)."""
    w0, w1, all_workers = window(rec)
    seconds = max(w1 - w0, 1e-9)
    inside = [i for i in range(len(rec)) if rec.scheduled[i] >= w0 and rec.ended[i] <= w1]
    proc_cpu = cpu_between(rec, w0, w1)
    cpu = sum(proc_cpu)
    cores = max(proc_cpu, default=0.0) / seconds
    loop_cores = max(cpu_between(rec, w0, w1, 2), default=0.0) / seconds  # the one thread Python ops run on
    t0 = min(rec.scheduled, default=w0)
    t_end = max(rec.ended, default=w1)
    rows = []
    for k, name in enumerate(rec.names):
        mine = [i for i in range(len(rec)) if rec.op[i] == k]
        errors = Counter(rec.errors[i] for i in mine if i in rec.errors)
        win = [i for i in inside if rec.op[i] == k]
        ok = [i for i in win if i not in rec.errors]
        share = len(win) / len(inside) if inside else 0.0  # CPU is split between mixed ops by their share
        row: dict[str, Any] = {
            "op": name, "phase": phase, "concurrency": concurrency,
            "issued": len(mine), "ok": len(mine) - sum(errors.values()), "error_count": sum(errors.values()),
            "errors": dict(sorted(errors.items())), "bytes": sum(rec.moved[i] for i in mine),
            "seconds": round(seconds, 6), "ops_per_s": len(ok) / seconds,
            "mb_per_s": sum(rec.moved[i] for i in ok) / 1e6 / seconds,
            "latency_ms": _ms([rec.ended[i] - rec.scheduled[i] for i in ok]),
            "cpu_s": cpu * share, "cpu_s_per_1000_ops": cpu * share / len(win) * 1000 if win else 0.0,
            "client_cpu_cores": cores, "loop_cpu_cores": loop_cores,
            "client_bound": max(cores, loop_cores) >= CLIENT_BOUND_CORES, "procs": rec.procs,
            "window": {"seconds": round(seconds, 6), "ops": len(win), "all_workers": all_workers,
                       "start_s": round(w0 - t0, 6), "end_s": round(w1 - t0, 6)},
            "series": _series(rec, mine, t0, t_end),
        }
        if any(rec.first_byte[i] for i in ok):
            row["ttfb_ms"] = _ms([rec.first_byte[i] - rec.scheduled[i] for i in ok if rec.first_byte[i]])
        if rec.rate is not None:
            row["rate"] = rec.rate * len(mine) / max(len(rec), 1)
            row["dispatch_lag_ms"] = _ms([rec.started[i] - rec.scheduled[i] for i in mine])
        rows.append(row)
    return rows
