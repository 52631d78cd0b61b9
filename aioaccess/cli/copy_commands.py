"""``aioaccess copy SRC DST`` and ``aioaccess redis-index KEY``: flags for :mod:`aioaccess.app.copy` and
:func:`aioaccess.app.redis_sources.index_ids`."""

from __future__ import annotations

import argparse
import sys
import time

from ..app.config import BackendOptions
from .errors import UsageError
from .run import run
from .sources import add_backend_options

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("copy", help="copy every Communication of SRC into DST (resumable)",
                       description="Copy a corpus from any fetch-server SOURCE (directory, .zip, .tar.gz, redis://, "
                       "redis+cluster://, s3://, fetch://) into any store-server TARGET (directory, redis://, "
                       "redis+cluster://, s3://). Ids already in DST are skipped, so an interrupted copy resumes.")
    p.add_argument("source", metavar="SRC")
    p.add_argument("target", metavar="DST")
    p.add_argument("--concurrency", type=int, default=32, help="Communications in flight at once (default: 32)")
    p.add_argument("--target-redis-key", help="hash key in DST (default: --redis-key)")
    p.add_argument("--target-shards", type=int, help="--shards of DST (default: --shards)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (also off when stderr is not a TTY)")
    add_backend_options(p)
    p.set_defaults(func=copy_command)

    p = sub.add_parser("redis-index", help="build the id index of a Redis corpus (fast getCommunicationIDs)",
                       description="Add every id of the hash KEY (or its --shards buckets) to its id index, "
                       "e.g. for a hash written by concrete-python. Safe while stores go on.")
    p.add_argument("redis_key", metavar="KEY")
    p.add_argument("--url", default="redis://localhost:6379/0",
                   help="redis:// or redis+cluster:// URL (default: redis://localhost:6379/0)")
    add_backend_options(p)
    p.set_defaults(func=redis_index_command)


def _target_options(args: argparse.Namespace) -> BackendOptions:
    shards = {} if args.target_shards is None else {"shards": args.target_shards}
    return BackendOptions.from_args(args, redis_key=args.target_redis_key or args.redis_key, **shards)


def copy_command(args: argparse.Namespace) -> int:
    return run(_copy(args))


async def _copy(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..app.copy import CopyTally, copy

    progress = Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(),
                        disable=args.no_progress or not sys.stderr.isatty())
    bar = progress.add_task("copying", total=None)

    def advance(tally: CopyTally) -> None:
        progress.update(bar, advance=1, description=f"copied {tally.copied}, skipped {tally.skipped}")

    with progress:
        tally = await copy(args.source, args.target, BackendOptions.from_args(args), _target_options(args),
                           concurrency=args.concurrency, on_ids=lambda n: progress.update(bar, total=n),
                           on_done=advance)
    print(f"copied {tally.copied}, skipped {tally.skipped}, failed {tally.failed}, "
          f"{tally.bytes / 1e6:.2f} MB in {tally.seconds:.2f} s")
    return 1 if tally.failed else 0


def redis_index_command(args: argparse.Namespace) -> int:
    return run(_redis_index(args))


async def _redis_index(args: argparse.Namespace) -> int:
    from ..app.redis_sources import index_ids

    if not args.url.startswith(("redis://", "unix://", "redis+cluster://")):
        raise UsageError(f"--url must be redis://, unix:// or redis+cluster://, not {args.url!r}")
    started = time.perf_counter()
    n, hashes = await index_ids(args.url, BackendOptions.from_args(args))
    print(f"indexed {n} ids of {args.redis_key} ({hashes} hash(es)) in {time.perf_counter() - started:.2f} s")
    return 0
