"""Small measuring helpers of the benchmarks: CPU time of this or another process, percentiles, error kinds."""

from __future__ import annotations

import math
import os
import resource
from collections.abc import Awaitable, Callable, Sequence

__all__ = ["Op", "OutOfWork", "cpu_seconds", "error_kind", "percentile", "proc_cpu_seconds"]

#: An op takes the index of the call (0, 1, 2, ...) and returns the payload bytes it moved,
#: or ``(bytes, time.perf_counter() when the first byte arrived)``.
Op = Callable[[int], Awaitable[int | tuple[int, float]]]


class OutOfWork(LookupError):
    """Raised by an op with nothing left to do (no object left to DELETE): its worker stops, nothing is recorded."""


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
