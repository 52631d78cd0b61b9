"""What every ``aioaccess bench`` run shares: payloads, the sweep over concurrency levels, the report.

A bench command parses its flags (``aioaccess.cli.bench``, ``cli.bench_s3``)
and runs its ops through these: :func:`sweep` runs each phase at each
``--concurrency`` level, :func:`make_report` and :func:`finish` print and save
the result.  Bad settings found while running raise
:class:`~aioaccess.app.errors.SetupError` (one line, exit status 2).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import os
import platform
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..app.errors import SetupError

if TYPE_CHECKING:
    from .payloads import Payload
    from .record import Records

__all__ = ["endpoint_through_proxy", "finish", "load_payloads", "make_report", "now", "sweep"]

logger = logging.getLogger("aioaccess.cli.bench")


async def load_payloads(args: argparse.Namespace) -> list[Payload]:
    from .payloads import load_corpus, synthetic

    if args.corpus:
        payloads = await load_corpus(args.corpus, args.payloads, args)
        if not payloads:
            raise SetupError(f"corpus {args.corpus!r} holds no Communications")
        return payloads
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, synthetic, args.payloads, args.size, args.seed)


async def sweep(args: argparse.Namespace, labels: list[str],
                run_one: Callable[[str, int, Callable[[int], None] | None], Awaitable[Records]],
                server_pid: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Run every phase (``run_one(label, concurrency, on_progress)``) at every concurrency level; the rows."""
    from .analyze import summarize
    from .report import Progress
    from .stats import proc_cpu_seconds

    rows: list[dict[str, Any]] = []
    with Progress(progress and not args.no_progress) as bar:
        for concurrency in args.concurrency:
            for label in labels:
                on_progress = bar.phase(f"{label} c={concurrency}", args.count)
                server0 = proc_cpu_seconds(server_pid) if server_pid else None
                records = await run_one(label, concurrency, on_progress)
                server1 = proc_cpu_seconds(server_pid) if server_pid else None
                phase_rows = summarize(records, label, concurrency)
                issued = sum(row["issued"] for row in phase_rows)
                if server0 is not None and server1 is not None:
                    for row in phase_rows:  # the server's CPU over the whole phase, split by share of calls
                        row["server_cpu_s"] = (server1 - server0) * row["issued"] / max(issued, 1)
                        row["server_cpu_s_per_1000_ops"] = (server1 - server0) / issued * 1000 if issued else 0.0
                rows.extend(phase_rows)
                logger.debug("%s c=%d: %s", label, concurrency, phase_rows)
    return rows


def make_report(args: argparse.Namespace, kind: str, target: str, rows: list[dict[str, Any]],
            extra: dict[str, Any]) -> dict[str, Any]:
    from .report import bottlenecks

    config = {k: v for k, v in sorted(vars(args).items()) if k not in ("func", "argv") and not callable(v)}
    return {
        "tool": "aioaccess bench",
        "version": __version__,
        "kind": kind,
        "target": target,
        "started": extra.pop("started"),
        "config": config,
        "environment": {"python": platform.python_version(), "platform": platform.platform(),
                        "cpus": os.cpu_count(), "loop": type(asyncio.get_running_loop()).__module__},
        "results": rows,
        "bottlenecks": bottlenecks({"results": rows}),
        **extra,
    }


def finish(args: argparse.Namespace, report: dict[str, Any]) -> int:
    from .report import print_table, write_json, write_plot

    print_table(report)
    if args.json:
        write_json(report, args.json)
        print(f"report written to {args.json}", file=sys.stderr)
    if args.plot:
        write_plot(report, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    failed = sum(r["error_count"] for r in report["results"])
    return 1 if failed and failed == sum(r["issued"] for r in report["results"]) else 0


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


async def endpoint_through_proxy(args: argparse.Namespace, host: str, port: int,
                                 stack: AsyncExitStack) -> tuple[str, int]:
    """``(host, port)`` to connect to: the endpoint itself, or a latency proxy process in front of it."""
    from .proxy import start_proxy_process

    if not args.latency_ms:
        return host, port
    try:
        return await start_proxy_process(host, port, args.latency_ms, stack)
    except RuntimeError as exc:
        raise SetupError(str(exc)) from exc
