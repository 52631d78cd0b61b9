"""``aioaccess bench s3|fetch|store``: throughput and latency of S3 and of any Concrete server.

Each run sweeps ``--concurrency`` levels; at each level every op runs as one
closed-loop phase of ``--count`` ops or ``--duration`` seconds (``--mix``:
all ops interleaved in one phase).  The report gives, per op and level,
ops/s, MB/s, latency percentiles, errors by kind and the client's CPU
seconds per 1,000 ops; ``--json`` and ``--plot`` save it.  ``--latency-ms``
puts a delaying TCP proxy in front of the endpoint.
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
from typing import Any
from urllib.parse import urlsplit

from .. import __version__
from ..bench.payloads import Payload, load_corpus, synthetic
from ..bench.stats import Op, PhaseResult, proc_cpu_seconds, run_phase
from .errors import UsageError
from .run import run
from .sources import add_backend_options
from .tls_options import add_client_tls_options, client_tls

__all__ = ["register"]

logger = logging.getLogger("aioaccess.cli.bench")

#: S3 clients ``--client`` can pick: name -> what it is.
S3_CLIENTS = ("aiobotocore", "obstore")


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
                          help="seconds per op and concurrency level, instead of --count")
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
    p.add_argument("--size", type=int, default=6000, help="bytes per synthetic Communication (default: 6000)")
    p.add_argument("--payloads", type=int, default=64,
                   help="distinct payloads, cycled (synthetic) or read from --corpus at most (default: 64)")
    o = common.add_argument_group("output")
    o.add_argument("--json", metavar="FILE", help="write the report as JSON")
    o.add_argument("--plot", metavar="FILE.png", help="plot ops/s and p99 against concurrency (needs matplotlib)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar (off anyway when not a terminal)")
    add_backend_options(common)
    return common


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="measure S3 or a Concrete fetch/store server",
                           description="Throughput, latency and client CPU of S3 (put/get/list) or of any "
                           "Concrete fetch or store server, swept over concurrency levels.")
    kinds = bench.add_subparsers(dest="bench_kind", required=True, metavar="KIND")
    common = _common_options()

    p = kinds.add_parser("s3", parents=[common], help="PUT/GET/LIST objects in an S3 bucket",
                         description="PUT, GET and LIST Communications in s3://BUCKET (any S3 API: "
                         "--endpoint-url for MinIO, Ceph, moto...), keyed as concrete-python keys them. "
                         "What the run wrote is deleted at the end unless --keep.")
    p.add_argument("target", metavar="s3://BUCKET")
    p.add_argument("--ops", default="put,get",
                   help="ops to run, in order, each as its own phase: put, get, list; with --mix, one phase "
                   "choosing among them by weight, e.g. put=1,get=8,list=1 (default: put,get)")
    p.add_argument("--mix", action="store_true", help="interleave the --ops in one phase per concurrency level")
    p.add_argument("--keep", action="store_true", help="keep the objects the run wrote")
    p.add_argument("--list-max-keys", type=int, default=1000, help="keys per LIST page (default: 1000)")
    p.add_argument("--max-attempts", type=int, default=1,
                   help="S3 attempts per op, retries included (default: 1, so errors show)")
    p.add_argument("--client", choices=S3_CLIENTS, default="aiobotocore",
                   help="S3 client: aiobotocore (default) or obstore")
    p.set_defaults(func=bench_s3)

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


# -- shared -------------------------------------------------------------------
def _host_port(spec: str) -> tuple[str, int]:
    host, sep, port = spec.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"expected HOST:PORT, not {spec!r}")
    return host.strip("[]"), int(port)


def _check_common(args: argparse.Namespace) -> None:
    if args.count is None and args.duration is None:
        args.count = 1000
    if args.count is not None and args.count < 1:
        raise UsageError(f"--count must be >= 1, not {args.count}")
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be > 0, not {args.duration}")
    if args.latency_ms < 0:
        raise UsageError(f"--latency-ms must be >= 0, not {args.latency_ms}")
    if args.payloads < 1:
        raise UsageError(f"--payloads must be >= 1, not {args.payloads}")
    if args.server_pid is not None and proc_cpu_seconds(args.server_pid) is None:
        raise UsageError(f"--server-pid {args.server_pid}: no such local process")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise UsageError("--plot needs matplotlib: pip install 'aioaccess[bench]'") from exc


async def _payloads(args: argparse.Namespace) -> list[Payload]:
    if args.corpus:
        payloads = await load_corpus(args.corpus, args.payloads, args)
        if not payloads:
            raise UsageError(f"corpus {args.corpus!r} holds no Communications")
        return payloads
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, synthetic, args.payloads, args.size, args.seed)


class _Progress:
    """A rich progress bar on stderr, or nothing when it is not a terminal."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True,
                                 disable=not (enabled and console.is_terminal))

    def __enter__(self) -> _Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def phase(self, label: str, total: int | None) -> Callable[[int], None]:
        task = self.progress.add_task(label, total=total)
        return lambda done: self.progress.update(task, completed=done)


async def _sweep(args: argparse.Namespace, phases: list[tuple[str, dict[str, Op], dict[str, float] | None]],
                 server_pid: int | None = None) -> list[dict[str, Any]]:
    """Run every phase at every concurrency level; return the report rows."""
    rows: list[dict[str, Any]] = []
    with _Progress(not args.no_progress) as progress:
        for concurrency in args.concurrency:
            for label, ops, weights in phases:
                on_progress = progress.phase(f"{label} c={concurrency}", args.count)
                server0 = proc_cpu_seconds(server_pid) if server_pid else None
                result: PhaseResult = await run_phase(ops, concurrency, count=args.count, duration=args.duration,
                                                      weights=weights, timeout=args.timeout, seed=args.seed,
                                                      on_progress=on_progress)
                server1 = proc_cpu_seconds(server_pid) if server_pid else None
                phase_rows = result.rows(label)
                if server0 is not None and server1 is not None:
                    for row in phase_rows:
                        row["server_cpu_s"] = server1 - server0
                        row["server_cpu_s_per_1000_ops"] = (server1 - server0) / row["issued"] * 1000 \
                            if row["issued"] else 0.0
                rows.extend(phase_rows)
                logger.debug("%s c=%d: %s", label, concurrency, phase_rows)
    return rows


def _report(args: argparse.Namespace, kind: str, target: str, rows: list[dict[str, Any]],
            extra: dict[str, Any]) -> dict[str, Any]:
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
        **extra,
    }


def _finish(args: argparse.Namespace, report: dict[str, Any]) -> int:
    from ..bench.report import print_table, write_json, write_plot

    print_table(report)
    if args.json:
        write_json(report, args.json)
        print(f"report written to {args.json}", file=sys.stderr)
    if args.plot:
        write_plot(report, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    failed = sum(r["error_count"] for r in report["results"])
    return 1 if failed and failed == sum(r["issued"] for r in report["results"]) else 0


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


async def _endpoint_through_proxy(args: argparse.Namespace, host: str, port: int,
                                  stack: AsyncExitStack) -> tuple[str, int]:
    """``(host, port)`` to connect to: the endpoint itself, or a latency proxy in front of it.

    The proxy runs in its own process (``python -m aioaccess.bench.proxy``),
    so its CPU is not counted as the client's and it does not share the
    client's event loop.
    """
    if not args.latency_ms:
        return host, port
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioaccess.bench.proxy", f"{host}:{port}", "--delay-ms", str(args.latency_ms),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)

    async def stop() -> None:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()

    stack.push_async_callback(stop)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode().strip()
    except TimeoutError:
        line = ""
    phost, _, pport = line.rpartition(":")
    if not pport.isdigit():
        raise UsageError("the latency proxy did not start")
    logger.info("Latency proxy (pid %d) %s:%s -> %s:%d, +%g ms each way", proc.pid, phost, pport, host, port,
                args.latency_ms)
    return phost, int(pport)


# -- s3 -----------------------------------------------------------------------
def _parse_ops(text: str) -> dict[str, float]:
    from ..bench.s3 import S3_OPS

    ops: dict[str, float] = {}
    for part in text.split(","):
        name, _, weight = part.strip().partition("=")
        if name not in S3_OPS:
            raise UsageError(f"unknown op {name!r} in --ops (choose from {', '.join(S3_OPS)})")
        try:
            ops[name] = float(weight) if weight else 1.0
        except ValueError as exc:
            raise UsageError(f"bad weight {weight!r} for op {name!r} in --ops") from exc
    return ops


def bench_s3(args: argparse.Namespace) -> int:
    _check_common(args)
    return run(_bench_s3(args), args.loop)


async def _bench_s3(args: argparse.Namespace) -> int:
    from ..backends.s3 import check_bucket
    from ..bench.s3 import S3Bench
    from ..exceptions import BackendUnavailable

    parts = urlsplit(args.target)
    bucket = parts.netloc
    if parts.scheme != "s3" or not bucket or parts.path.strip("/"):
        raise UsageError(f"expected s3://BUCKET, not {args.target!r}")
    ops = _parse_ops(args.ops)
    ep = urlsplit(args.endpoint_url or "")
    if args.latency_ms and (ep.scheme != "http" or not ep.hostname):
        raise UsageError("--latency-ms needs a plain --endpoint-url http://HOST:PORT (the proxy is plain TCP)")
    started = _now()
    payloads = await _payloads(args)
    async with AsyncExitStack() as stack:
        endpoint = args.endpoint_url
        if args.latency_ms:
            host, port = await _endpoint_through_proxy(args, ep.hostname, ep.port or 80, stack)  # type: ignore[arg-type]
            endpoint = f"http://{host}:{port}"
        client = await stack.enter_async_context(_s3_client(args, endpoint))
        try:
            await check_bucket(client, bucket, timeout=args.timeout)
        except BackendUnavailable as exc:
            raise UsageError(f"S3 bucket {bucket!r} at {args.endpoint_url or 'AWS'} is not usable: "
                             f"{exc.reason}") from exc
        bench = S3Bench(client, bucket, payloads, prefix_len=args.prefix_len, list_max_keys=args.list_max_keys)
        all_ops = bench.ops()
        if args.mix:
            phases = [("mix", {name: all_ops[name] for name in ops}, ops)]
        else:
            phases = [(name, {name: all_ops[name]}, None) for name in ops]
        cleanup: dict[str, Any] = {}
        try:
            if "get" in ops:
                await bench.seed(min(len(payloads), 100))
            rows = await _sweep(args, phases, server_pid=args.server_pid)
        finally:
            if args.keep:
                cleanup = {"written": len(set(bench.issued_keys)), "kept": True}
            else:
                cleanup = await bench.cleanup()
        report = _report(args, "s3", args.target, rows, {
            "started": started, "endpoint_url": args.endpoint_url, "client": args.client,
            "payloads": {"count": len(payloads), "bytes_mean": sum(len(r) for _, r in payloads) / len(payloads)},
            "cleanup": cleanup})
    return _finish(args, report)


def _s3_client(args: argparse.Namespace, endpoint: str | None) -> Any:
    """The S3 client ``--client`` names, as an async context manager."""
    from ..backends.s3 import make_s3_client

    return make_s3_client(endpoint, client=args.client, max_attempts=args.max_attempts,
                          connect_timeout=min(args.timeout, 10.0), read_timeout=args.timeout,
                          max_pool_connections=max(args.concurrency))


# -- fetch / store ------------------------------------------------------------
def bench_fetch(args: argparse.Namespace) -> int:
    _check_common(args)
    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, not {args.batch}")
    return run(_bench_thrift(args, "fetch"), args.loop)


def bench_store(args: argparse.Namespace) -> int:
    _check_common(args)
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
    from ..bench.thrift import FramedCaller, build_fetch_frames, build_store_frames

    host, port = _host_port(args.target)
    started = _now()
    extra: dict[str, Any] = {"started": started, "tls": client_tls(args) is not None}
    call: Callable[[int], Awaitable[int]]
    if method == "fetch":
        ids = await _fetch_ids(args, host, port)
        frames = build_fetch_frames(ids, args.batch, 1024, seed=args.seed)
        extra["ids"] = len(ids)
    else:
        payloads = await _payloads(args)
        store_frames = build_store_frames(payloads)
        extra["payloads"] = {"count": len(payloads),
                             "bytes_mean": sum(len(r) for _, r in payloads) / len(payloads)}
    async with AsyncExitStack() as stack:
        phost, pport = await _endpoint_through_proxy(args, host, port, stack)
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
        rows = await _sweep(args, [(method, {method: call}, None)], server_pid=args.server_pid)
        report = _report(args, method, f"{host}:{port}", rows, extra)
    return _finish(args, report)
