"""Benchmark harness behind ``aioaccess bench``: load driver, S3 and Thrift ops, latency proxy, report.

Names are imported on first use (PEP 562), so parsing the command line loads none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._extras import lazy_attributes

__all__ = ["LatencyProxy", "Op", "Records", "cpu_seconds", "latency_proxy", "percentile", "run_phase", "summarize"]

__getattr__ = lazy_attributes(globals(), {
    "summarize": ".analyze", "run_phase": ".driver", "LatencyProxy": ".proxy", "latency_proxy": ".proxy",
    "Records": ".record", "Op": ".stats", "cpu_seconds": ".stats", "percentile": ".stats",
})

if TYPE_CHECKING:
    from .analyze import summarize
    from .driver import run_phase
    from .proxy import LatencyProxy, latency_proxy
    from .record import Records
    from .stats import Op, cpu_seconds, percentile
