"""``aioaccess bench s3|fetch|store|compare``: throughput and latency of S3 and of any Concrete server.

Each run sweeps ``--concurrency`` levels; at each level every op runs as one
phase of ``--count`` ops or ``--duration`` seconds (``--mix``: all ops
interleaved in one phase), closed loop, or open loop at ``--rate`` ops/s.
The report gives, per op and level, ops/s, MB/s, latency percentiles (and
time to first byte for S3 GET), errors by kind, the client's CPU per 1,000
ops and a per-second series, measured over the window where every worker
ran (see ``bench.analyze``); ``--json`` and ``--plot`` save it, ``bench
compare`` prints the ratios of two saved runs.  ``--latency-ms`` puts a
delaying TCP proxy in front of the endpoint.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from ..bench.payloads import parse_size
from .bench_s3 import add_s3_parser
from .errors import UsageError
from .run import run
from .sources import add_backend_options
from .tls_options import add_client_tls_options, client_tls

if TYPE_CHECKING:  # the harness is imported when a bench runs, not when the command line is parsed
    from ..bench.record import Records

__all__ = ["check_common", "register"]

logger = logging.getLogger("aioaccess.cli.bench")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}") from exc
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 1, not {text!r}")
    return values


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("load")
    g.add_argument("--concurrency", "-c", type=_int_list, default=[1, 16, 64],
                   help="comma-separated concurrency levels to sweep (default: 1,16,64)")
    how_long = g.add_mutually_exclusive_group()
    how_long.add_argument("--count", "-n", type=int, default=None,
                          help="ops per op and concurrency level (default: 1000)")
    how_long.add_argument("--duration", "-d", type=float, default=None,
                          help="seconds per op and concurrency level, instead of --count (ramp-up and ramp-down "
                          "are left out: only the time every worker ran is measured)")
    g.add_argument("--rate", type=float, default=None, metavar="OPS_PER_S",
                   help="open loop: schedule this many ops/s in all, whatever the answers do, with at most the "
                   "concurrency level in flight; latency counts from each op's scheduled time (default: closed loop)")
    g.add_argument("--timeout", type=float, default=30.0, help="seconds one op may take (default: 30)")
    g.add_argument("--latency-ms", type=float, default=0.0,
                   help="add this many ms each way with a local TCP proxy in front of the endpoint (default: 0)")
    g.add_argument("--server-pid", type=int, metavar="PID",
                   help="also report the CPU per 1,000 ops of this local process (the server, moto, ...)")
    g.add_argument("--seed", type=int, default=0, help="seed of the synthetic payloads and op choices")
    g.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="event loop (default: auto = uvloop when installed)")
    p = common.add_argument_group("payloads")
    p.add_argument("--corpus", metavar="SOURCE",
                   help="payloads from SOURCE (anything fetch-server serves; default: synthetic Communications)")
    p.add_argument("--size", type=parse_size, default=(6000, 6000),
                   help="bytes per synthetic Communication: 6000, 6KB, 4KiB, or a uniform range 4KiB-64KiB "
                   "(default: 6000); with --corpus the sizes are the corpus's")
    p.add_argument("--payloads", type=int, default=64,
                   help="distinct payloads, cycled (synthetic) or read from --corpus at most (default: 64)")
    o = common.add_argument_group("output")
    o.add_argument("--json", metavar="FILE", help="write the report as JSON")
    o.add_argument("--plot", metavar="FILE.png",
                   help="plot ops/s and p99 against concurrency, and ops/s second by second (needs matplotlib)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar (off anyway when not a terminal)")
    add_backend_options(common)
    return common


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="measure S3 or a Concrete fetch/store server; compare two runs",
                           description="Throughput, latency and client CPU of S3 (put/get/head/delete/list) or "
                           "of any Concrete fetch or store server, swept over concurrency levels.")
    kinds = bench.add_subparsers(dest="bench_kind", required=True, metavar="KIND")
    common = _common_options()
    add_s3_parser(kinds, common)

    p = kinds.add_parser("fetch", parents=[common], help="call fetch on a FetchCommunicationService",
                         description="Framed-compact fetch calls (pre-built) against HOST:PORT: any "
                         "FetchCommunicationService (aioaccess, concrete-python, ...).")
    p.add_argument("target", metavar="HOST:PORT")
    p.add_argument("--ids-from", metavar="FILE", help="ids to fetch, one per line (default: ask the server)")
    p.add_argument("--ids", type=int, default=1000, help="ids to ask the server for (default: 1000)")
    p.add_argument("--batch", type=int, default=1, help="ids per fetch call (default: 1)")
    add_client_tls_options(p)
    p.set_defaults(func=bench_fetch)

    p = kinds.add_parser("store", parents=[common], help="call store on a StoreCommunicationService",
                         description="Framed-compact store calls (pre-built from --corpus or synthetic "
                         "Communications) against HOST:PORT: any StoreCommunicationService.")
    p.add_argument("target", metavar="HOST:PORT")
    add_client_tls_options(p)
    p.set_defaults(func=bench_store)

    p = kinds.add_parser("compare", help="ratios of two or more saved reports (--json files)",
                         description="Match the rows of saved reports by op, phase and concurrency and print "
                         "each report's ops/s, latency and client CPU per op as a ratio to the first.")
    p.add_argument("reports", nargs="+", metavar="REPORT.json")
    p.set_defaults(func=bench_compare)


# -- shared -------------------------------------------------------------------
def _host_port(spec: str) -> tuple[str, int]:
    host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"expected HOST:PORT, not {spec!r}")
    return host.strip("[]"), int(port)


def check_common(args: argparse.Namespace) -> None:
    from ..bench.stats import proc_cpu_seconds

    if args.count is None and args.duration is None:
        args.count = 1000
    if args.count is not None and args.count < 1:
        raise UsageError(f"--count must be >= 1, not {args.count}")
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be > 0, not {args.duration}")
    if args.latency_ms < 0:
        raise UsageError(f"--latency-ms must be >= 0, not {args.latency_ms}")
    if args.rate is not None and args.rate <= 0:
        raise UsageError(f"--rate must be > 0, not {args.rate}")
    if args.payloads < 1:
        raise UsageError(f"--payloads must be >= 1, not {args.payloads}")
    if args.server_pid is not None and proc_cpu_seconds(args.server_pid) is None:
        raise UsageError(f"--server-pid {args.server_pid}: no such local process")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise UsageError("--plot needs matplotlib: pip install 'aioaccess[bench]'") from exc


# -- fetch / store ------------------------------------------------------------
def bench_fetch(args: argparse.Namespace) -> int:
    check_common(args)
    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, not {args.batch}")
    return run(_bench_thrift(args, "fetch"), args.loop)


def bench_store(args: argparse.Namespace) -> int:
    check_common(args)
    return run(_bench_thrift(args, "store"), args.loop)


async def _fetch_ids(args: argparse.Namespace, host: str, port: int) -> list[str]:
    if args.ids_from:
        try:
            with open(args.ids_from) as f:
                ids = [line.strip() for line in f if line.strip()]
        except OSError as exc:
            raise UsageError(f"cannot read --ids-from {args.ids_from!r}: {exc.strerror or exc}") from exc
    else:
        from ..client import FetchCommunicationClient

        try:
            async with FetchCommunicationClient.connect(host, port, timeout=args.timeout,
                                                        ssl=client_tls(args)) as client:
                ids = await client.getCommunicationIDs(0, args.ids)
        except (ConnectionError, OSError) as exc:
            raise UsageError(f"cannot reach the fetch service at {host}:{port}: {exc}") from exc
    if not ids:
        raise UsageError("no ids to fetch (the server lists none; give --ids-from FILE)")
    return ids


async def _bench_thrift(args: argparse.Namespace, method: str) -> int:
    from ..bench.driver import run_phase
    from ..bench.session import endpoint_through_proxy, finish, load_payloads, make_report, now, sweep
    from ..bench.thrift import FramedCaller, build_fetch_frames, build_store_frames

    host, port = _host_port(args.target)
    started = now()
    extra: dict[str, Any] = {"started": started, "tls": client_tls(args) is not None}
    call: Callable[[int], Awaitable[int]]
    if method == "fetch":
        ids = await _fetch_ids(args, host, port)
        frames = build_fetch_frames(ids, args.batch, 1024, seed=args.seed)
        extra["ids"] = len(ids)
    else:
        payloads = await load_payloads(args)
        store_frames = build_store_frames(payloads)
        extra["payloads"] = {"count": len(payloads),
                             "bytes_mean": sum(len(r) for _, r in payloads) / len(payloads)}
    async with AsyncExitStack() as stack:
        phost, pport = await endpoint_through_proxy(args, host, port, stack)
        caller = FramedCaller(phost, pport, method, ssl=client_tls(args))
        stack.push_async_callback(caller.aclose)
        if method == "fetch":
            async def call(index: int) -> int:
                return await caller.call(frames[index % len(frames)])
        else:
            async def call(index: int) -> int:
                frame, size = store_frames[index % len(store_frames)]
                await caller.call(frame)
                return size
        async def run_one(label: str, concurrency: int, on_progress: Callable[[int], None] | None) -> Records:
            return await run_phase({method: call}, concurrency, count=args.count, duration=args.duration,
                                   rate=args.rate, timeout=args.timeout, seed=args.seed, on_progress=on_progress)

        rows = await sweep(args, [method], run_one, server_pid=args.server_pid)
        report = make_report(args, method, f"{host}:{port}", rows, extra)
    return finish(args, report)


# -- compare ------------------------------------------------------------------
def bench_compare(args: argparse.Namespace) -> int:
    from ..bench.compare import compare, load_reports, print_comparison

    try:
        reports = load_reports(args.reports)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    print_comparison(compare(reports))
    return 0
