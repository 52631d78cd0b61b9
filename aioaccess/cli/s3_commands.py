"""``aioaccess s3 list|fetch|store``: concrete-python's s3-list-concrete.py, s3-fetch-concrete.py and
s3-store-concrete.py, with no server in between, many requests in flight and a progress bar.

Keys are concrete-python's (``prefix_s3_key(id, prefix_len)``), so buckets written by either side read
on the other.  The bucket is opened through ``open_source`` / ``open_target`` (the S3 container and
store handler every other command uses).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ..app.config import BackendOptions
from ..backends.s3 import DEFAULT_S3_KEY_PREFIX_LEN
from ..backends.s3_url import DEFAULT_S3_CLIENT, S3_CLIENTS
from .errors import UsageError
from .progress import progress_bar
from .run import run

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s3 = sub.add_parser("s3", help="list, fetch and store Communications in an S3 bucket (no server needed)",
                        description="concrete-python's s3-list-concrete.py, s3-fetch-concrete.py and "
                        "s3-store-concrete.py: the same bucket layout, many requests in flight.")
    kinds = s3.add_subparsers(dest="s3_command", required=True, metavar="{list,fetch,store}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--prefix-len", type=int, default=DEFAULT_S3_KEY_PREFIX_LEN,
                        help=f"S3 keys are prefixed with hashes of this length (default: {DEFAULT_S3_KEY_PREFIX_LEN})")
    common.add_argument("--endpoint-url", help="S3 endpoint URL (default: AWS; credentials from the environment)")
    common.add_argument("--s3-client", default=DEFAULT_S3_CLIENT, choices=S3_CLIENTS,
                        help=f"S3 client (default: {DEFAULT_S3_CLIENT})")
    common.add_argument("--concurrency", type=int, default=32, help="S3 requests in flight (default: 32)")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per S3 request (default: 30)")
    common.add_argument("--no-progress", action="store_true", help="no progress bar (also off when stderr is not "
                        "a TTY)")
    common.add_argument("-l", "--loglevel", "--log-level", default=argparse.SUPPRESS, type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), help="log level (default: INFO)")
    parents = [common]
    p = kinds.add_parser("list", parents=parents, help="print the id of every Communication in BUCKET")
    p.add_argument("bucket_name", metavar="BUCKET", help="a bucket name, or s3://BUCKET/PREFIX/")
    p.set_defaults(func=s3_command)
    p = kinds.add_parser("fetch", parents=parents, help="write every Communication of BUCKET to a .tar.gz")
    p.add_argument("bucket_name", metavar="BUCKET", help="a bucket name, or s3://BUCKET/PREFIX/")
    p.add_argument("output_path", metavar="OUTPUT.tar.gz", help="members are named ID.concrete")
    p.set_defaults(func=s3_command)
    p = kinds.add_parser("store", parents=parents, help="store the Communications of files and archives in BUCKET")
    p.add_argument("input_path", metavar="INPUT", help="a file, .gz, .bz2, .tar(.gz), .zip, directory, or - "
                   "(Communications concatenated on stdin)")
    p.add_argument("bucket_name", metavar="BUCKET", help="a bucket name, or s3://BUCKET/PREFIX/")
    p.set_defaults(func=s3_command)


def s3_command(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise UsageError(f"--concurrency must be >= 1, not {args.concurrency}")
    if args.s3_command == "store" and args.input_path != "-" and not os.path.exists(args.input_path):
        raise UsageError(f"input {args.input_path!r} does not exist")
    return run(_S3_COMMANDS[args.s3_command](args))


def _backend_args(args: argparse.Namespace) -> BackendOptions:
    """The backend options ``open_source``/``open_target`` read: their defaults, and this command's flags."""
    return BackendOptions(prefix_len=args.prefix_len, endpoint_url=args.endpoint_url, s3_client=args.s3_client,
                          backend_timeout=args.timeout, backend_concurrency=args.concurrency)


def _location(bucket: str) -> str:
    """BUCKET (concrete-python's scripts' argument) or s3://BUCKET[/PREFIX/]."""
    return bucket if bucket.startswith("s3://") else f"s3://{bucket}"


async def _list(args: argparse.Namespace) -> int:
    from ..app.s3_tools import list_ids

    async for comm_id in list_ids(_location(args.bucket_name), _backend_args(args)):
        print(comm_id)
    return 0


async def _fetch(args: argparse.Namespace) -> int:
    from ..app.s3_tools import fetch_to_tgz

    progress = progress_bar(args.no_progress, count=True)
    bar = progress.add_task("fetching", total=None)
    started = time.perf_counter()
    with progress:
        fetched, total = await fetch_to_tgz(_location(args.bucket_name), args.output_path, _backend_args(args),
                                            chunk=args.concurrency * 4,
                                            on_ids=lambda n: progress.update(bar, total=n),
                                            on_chunk=lambda n: progress.update(bar, advance=n))
    print(f"fetched {fetched} of {total} into {args.output_path} in {time.perf_counter() - started:.2f} s",
          file=sys.stderr)
    return 0 if fetched == total else 1


async def _store(args: argparse.Namespace) -> int:
    from ..app.s3_tools import store_into

    progress = progress_bar(args.no_progress, count=True)
    bar = progress.add_task("storing", total=None)
    started = time.perf_counter()
    with progress:
        stored, failed = await store_into(_location(args.bucket_name), args.input_path, _backend_args(args),
                                          concurrency=args.concurrency,
                                          on_done=lambda n: progress.update(bar, advance=1, description=f"stored {n}"))
    print(f"stored {stored}, failed {failed} in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return 1 if failed else 0


_S3_COMMANDS = {"list": _list, "fetch": _fetch, "store": _store}
