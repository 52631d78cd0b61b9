"""Benchmark harness behind ``aioaccess bench``: load driver, S3 and Thrift ops, latency proxy, report."""

from __future__ import annotations

from .analyze import summarize
from .driver import run_phase
from .proxy import LatencyProxy, latency_proxy
from .record import Records
from .stats import Op, cpu_seconds, percentile

__all__ = ["LatencyProxy", "Op", "Records", "cpu_seconds", "latency_proxy", "percentile", "run_phase", "summarize"]
