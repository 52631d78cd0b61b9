"""``aioaccess bench s3``: PUT/GET/HEAD/DELETE/LIST against ``s3://BUCKET[/PREFIX/]``, in one or N processes."""

from __future__ import annotations

import argparse
import logging
import math
import uuid
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

from ..backends.s3_url import S3_CLIENTS, parse_s3_url
from .errors import UsageError
from .run import run

__all__ = ["add_s3_parser"]

logger = logging.getLogger("aioaccess.cli.bench")



def add_s3_parser(kinds: Any, common: argparse.ArgumentParser) -> None:
    p = kinds.add_parser("s3", parents=[common], help="PUT/GET/HEAD/DELETE/LIST objects in an S3 bucket",
                         description="PUT, GET, HEAD, DELETE and LIST Communications in s3://BUCKET/PREFIX/ "
                         "(any S3 API: --endpoint-url for MinIO, Ceph, rclone, moto...), keyed as "
                         "concrete-python keys them. What the run wrote is deleted at the end unless --keep.")
    p.add_argument("target", metavar="s3://BUCKET[/PREFIX/]")
    p.add_argument("--ops", default="put,get",
                   help="ops to run, in order, each as its own phase: put, get, head, delete, list; with --mix, "
                   "one phase choosing among them by weight, e.g. put=1,get=8,list=1 (default: put,get)")
    p.add_argument("--mix", action="store_true", help="interleave the --ops in one phase per concurrency level")
    p.add_argument("--procs", type=int, default=1,
                   help="worker processes sharing each concurrency level (and --rate); their results are merged, "
                   "so one Python process's CPU is not the limit (default: 1)")
    p.add_argument("--objects", type=int, default=100,
                   help="objects written before the first phase for GET and HEAD to read (default: 100)")
    p.add_argument("--keep", action="store_true", help="keep the objects the run wrote")
    p.add_argument("--list-max-keys", type=int, default=1000, help="keys per LIST page (default: 1000)")
    p.add_argument("--max-attempts", type=int, default=1,
                   help="S3 attempts per op, retries included (default: 1, so errors show)")
    # --s3-client comes from the backend options; the benchmark's default is the product's default client
    p.set_defaults(func=bench_s3)


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


def _bucket_prefix(target: str) -> tuple[str, str]:
    try:
        where = parse_s3_url(target)
    except ValueError as exc:
        raise UsageError(f"bad target (expected s3://BUCKET or s3://BUCKET/PREFIX/): {exc}") from exc
    return where.bucket, where.prefix


def bench_s3(args: argparse.Namespace) -> int:
    from .bench import check_common

    check_common(args)
    if args.s3_client not in S3_CLIENTS:
        raise UsageError(f"unknown S3 client {args.s3_client!r} for bench s3 (choose {' or '.join(S3_CLIENTS)})")
    if args.procs < 1:
        raise UsageError(f"--procs must be >= 1, not {args.procs}")
    if args.objects < 1:
        raise UsageError(f"--objects must be >= 1, not {args.objects}")
    return run(_bench_s3(args), args.loop)


def _specs(args: argparse.Namespace, ops: list[str], weights: dict[str, float] | None, concurrency: int,
           procs: int) -> list[dict[str, Any] | None]:
    """What each process runs of one phase: its share of the workers, the ops and the rate (None: nothing)."""
    from ..bench.workers import split

    workers = split(concurrency, procs)
    active = [i for i, n in enumerate(workers) if n]
    counts = split(args.count, len(active)) if args.count is not None else [None] * len(active)
    specs: list[dict[str, Any] | None] = [None] * procs
    for k, i in enumerate(active):
        specs[i] = {"ops": ops, "weights": weights, "concurrency": workers[i], "count": counts[k],
                    "duration": args.duration, "rate": args.rate / len(active) if args.rate else None,
                    "rate_offset": k / len(active), "timeout": args.timeout, "seed": args.seed, "start_at": None}
    return specs


async def _cleanup(pool: Any, keep: bool) -> dict[str, Any]:
    """Every process deletes what it wrote (unless ``keep``); the counts, summed."""
    from ..bench.workers import WorkerFailed

    try:
        parts = await pool.call("cleanup", [keep] * pool.procs)
    except WorkerFailed as exc:
        logger.warning("Cleanup failed, benchmark objects may be left: %s", exc)
        return {"failed": f"{exc}"}
    cleanup: dict[str, Any] = {k: sum(p[k] for p in parts) for k in parts[0]}
    if keep:
        cleanup["kept"] = True
    return cleanup


async def _bench_s3(args: argparse.Namespace) -> int:
    from ..bench.record import Records
    from ..bench.session import endpoint_through_proxy, finish, load_payloads, make_report, now, sweep
    from ..bench.workers import LocalPool, ProcPool, WorkerFailed, split, start_time

    bucket, prefix = _bucket_prefix(args.target)
    ops = _parse_ops(args.ops)
    ep = urlsplit(args.endpoint_url or "")
    if args.latency_ms and (ep.scheme != "http" or not ep.hostname):
        raise UsageError("--latency-ms needs a plain --endpoint-url http://HOST:PORT (the proxy is plain TCP)")
    started = now()
    payloads = await load_payloads(args)
    async with AsyncExitStack() as stack:
        endpoint = args.endpoint_url
        if args.latency_ms:
            host, port = await endpoint_through_proxy(args, ep.hostname, ep.port or 80, stack)  # type: ignore[arg-type]
            endpoint = f"http://{host}:{port}"
        config = {"endpoint_url": endpoint, "s3_client": args.s3_client, "max_attempts": args.max_attempts,
                  "timeout": args.timeout, "pool": math.ceil(max(args.concurrency) / args.procs), "bucket": bucket,
                  "prefix": prefix, "prefix_len": args.prefix_len, "list_max_keys": args.list_max_keys,
                  "payloads": payloads, "run_id": uuid.uuid4().hex[:12], "loop": args.loop}
        try:
            pool: LocalPool | ProcPool = await stack.enter_async_context(
                LocalPool(config) if args.procs == 1 else ProcPool(config, args.procs))
            await pool.call("check", [None] * pool.procs)
        except WorkerFailed as exc:
            raise UsageError(f"a bench worker process failed: {exc}") from exc
        except (ImportError, ValueError) as exc:
            raise UsageError(f"cannot use the S3 client {args.s3_client!r}: {exc}") from exc
        except Exception as exc:
            reason = getattr(exc, "reason", exc)
            raise UsageError(f"S3 bucket {bucket!r} at {args.endpoint_url or 'AWS'} is not usable: {reason}") from exc
        if args.mix:
            phases = [("mix", list(ops), ops)]
        else:
            phases = [(name, [name], None) for name in ops]

        async def run_one(label: str, concurrency: int, on_progress: Any) -> Records:
            _, names, weights = next(p for p in phases if p[0] == label)
            specs = _specs(args, names, weights, concurrency, pool.procs)
            if "delete" in names:
                await pool.call("top_up", specs)
            start_at = start_time(pool)
            specs = [s and {**s, "start_at": start_at} for s in specs]
            return Records.merge([r for r in await pool.call("phase", specs, on_progress) if r is not None])

        try:
            if "get" in ops or "head" in ops:
                await pool.call("seed", [max(1, n) for n in split(args.objects, pool.procs)])
            rows = await sweep(args, [p[0] for p in phases], run_one, server_pid=args.server_pid,
                               progress=pool.procs == 1)
        except WorkerFailed as exc:
            raise UsageError(f"a bench worker process failed: {exc}") from exc
        finally:
            cleanup = await _cleanup(pool, args.keep)
        result = make_report(args, "s3", args.target, rows, {
            "started": started, "endpoint_url": args.endpoint_url, "client": args.s3_client, "procs": args.procs,
            "payloads": {"count": len(payloads), "bytes_mean": sum(len(r) for _, r in payloads) / len(payloads)},
            "cleanup": cleanup})
    return finish(args, result)
