"""Benchmark harness behind ``aioaccess bench``: closed-loop driver, S3 and Thrift ops, latency proxy, report."""

from __future__ import annotations

from .proxy import LatencyProxy, latency_proxy
from .stats import Op, OpStats, PhaseResult, cpu_seconds, percentile, run_phase

__all__ = ["LatencyProxy", "Op", "OpStats", "PhaseResult", "cpu_seconds", "latency_proxy", "percentile", "run_phase"]
