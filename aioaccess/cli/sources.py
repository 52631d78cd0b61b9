"""SOURCE and TARGET arguments -> containers and store handlers.

Detection mirrors concrete-python's fetch-server: point it at a directory,
a zip, a Communications file, ``redis://``, ``s3://`` or ``fetch://`` and it
picks the container.  ``sample:`` is the small corpus shipped with aioaccess.
Remote backends are checked at startup (Redis PING, S3 HEAD bucket, a fetch
count), so a bad SOURCE or TARGET fails at once in one line.
"""

from __future__ import annotations

import argparse
import logging
import os
import tarfile
import zipfile
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from ..backends import CommunicationContainer, DirectoryBackedCommunicationContainer
from ..backends.s3_url import DEFAULT_S3_CLIENT, S3_CLIENTS
from ..codec import CodecError
from ..exceptions import AioaccessError, BackendUnavailable
from ..handlers import DirectoryBackedStoreHandler
from .errors import UsageError
from .redis_sources import pipe_source, pipe_target, uses_pipe
from .tls_options import client_tls

__all__ = ["add_backend_options", "open_source", "open_target", "parse_fetch_url", "sample_path"]

Opener = Callable[[str, argparse.Namespace, AsyncExitStack], Awaitable[Any]]


def sample_path() -> str:
    """Path of the sample corpus shipped inside the package."""
    return str(resources.files("aioaccess") / "_sample" / "sample.tar.gz")


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """Options every SOURCE/TARGET kind may need."""
    group = parser.add_argument_group("backend options")
    group.add_argument("--redis-key", help="hash key holding the Communications (redis:// sources and targets)")
    group.add_argument("--prefix-len", type=int, default=4,
                       help="length of the hex MD5 prefix of S3 keys (default: 4)")
    group.add_argument("--endpoint-url", help="S3 endpoint URL (default: AWS; credentials from the environment)")
    group.add_argument("--max-file-size", type=int, default=1 << 30,
                       help="largest Communications file loaded into memory, in bytes (default: 1 GiB)")
    group.add_argument("--backend-timeout", type=float, default=10.0,
                       help="seconds a Redis, S3 or upstream fetch operation may take before the call fails "
                       "with ServicesException (default: 10)")
    group.add_argument("--backend-concurrency", type=int, default=64,
                       help="S3 requests / upstream connections kept in flight at most (default: 64)")
    group.add_argument("--shards", type=int, default=-1,
                       help="Redis layout: N hash buckets KEY:{b} (b = crc32(id) mod N) instead of one hash KEY "
                       "(default: one hash on redis://, 64 buckets on redis+cluster://)")
    group.add_argument("--redis-wait-replicas", type=int, default=0,
                       help="acknowledge a Redis store only once this many replicas have it (WAIT; default: 0)")
    group.add_argument("--redis-client", choices=("pipe", "redis-py"),
                       default=os.environ.get("AIOACCESS_REDIS_CLIENT") or "pipe",
                       help="Redis client: pipe (default; pipelined, coalesced, hiredis) or redis-py "
                       "(its pool; rediss:// always uses it); default from $AIOACCESS_REDIS_CLIENT")
    group.add_argument("--s3-client", default=DEFAULT_S3_CLIENT, choices=S3_CLIENTS,
                       help="S3 client: obstore (default; Rust object_store) or aiobotocore (the full botocore "
                       "stack); both take credentials from botocore's chain (environment, profiles, SSO, roles)")
    group.add_argument("--s3-list-ttl", type=float, default=5.0, metavar="SECONDS",
                       help="S3 sources: getCommunicationCount and getCommunicationIDs pages may be this many "
                       "seconds old (listings are cached, with cursors, so paging costs the page, not the "
                       "bucket); 0 lists on every call (default: 5)")


async def open_source(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> CommunicationContainer:
    """Open the container SOURCE names; its resources close with ``stack``."""
    if spec in ("sample", "sample:"):
        spec = sample_path()
    opener = _SOURCE_SCHEMES.get(spec.split("://", 1)[0]) if "://" in spec else None
    if opener is not None:
        return await opener(spec, args, stack)
    if os.path.isdir(spec):
        return DirectoryBackedCommunicationContainer(spec)
    if os.path.isfile(spec):
        return await _open_file_source(spec, args, stack)
    raise UsageError(f"source {spec!r} does not exist (expected a directory, a .zip or Communications file, "
                     "redis://, s3:// or fetch://)")


async def open_target(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> Any:
    """Open the store handler TARGET names."""
    opener = _TARGET_SCHEMES.get(spec.split("://", 1)[0]) if "://" in spec else None
    if opener is not None:
        return await opener(spec, args, stack)
    if os.path.isdir(spec):
        return DirectoryBackedStoreHandler(spec, fsync=not getattr(args, "no_fsync", False))
    raise UsageError(f"target {spec!r} is not an existing directory, redis://, redis+cluster:// or s3:// URL")


async def _open_file_source(path: str, args: argparse.Namespace, stack: AsyncExitStack) -> CommunicationContainer:
    try:
        if zipfile.is_zipfile(path):
            from ..backends.zip import ZipFileBackedCommunicationContainer

            return await stack.enter_async_context(ZipFileBackedCommunicationContainer(path))
        from ..backends.memory import MemoryBackedCommunicationContainer

        return await stack.enter_async_context(
            MemoryBackedCommunicationContainer(path, max_file_size=args.max_file_size))
    except (AioaccessError, CodecError, OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"cannot load source {path!r}: {exc}") from exc


# -- redis://HOST:PORT/DB --------------------------------------------------
async def _open_redis(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> Any:
    from ..backends.redis import make_redis_client, redis_call

    if not args.redis_key:
        raise UsageError(f"{spec} needs --redis-key KEY (the hash holding the Communications)")
    try:
        client = make_redis_client(spec, socket_timeout=args.backend_timeout,
                                   connect_timeout=min(args.backend_timeout, 5.0))
    except ValueError as exc:
        raise UsageError(f"bad Redis URL {spec!r}: {exc}") from exc
    stack.push_async_callback(client.aclose)
    try:
        await redis_call(client.ping(), "PING", args.backend_timeout)
    except BackendUnavailable as exc:
        raise UsageError(f"cannot reach Redis at {spec}: {exc.reason}") from exc
    return client


async def _redis_source(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> CommunicationContainer:
    from ..backends.redis import RedisHashBackedCommunicationContainer

    if uses_pipe(spec, args):
        return await pipe_source(spec, args, stack)

    client = await _open_redis(spec, args, stack)
    return RedisHashBackedCommunicationContainer(client, args.redis_key, timeout=args.backend_timeout)


async def _redis_target(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> Any:
    from ..handlers.redis_store import RedisHashBackedStoreHandler

    if uses_pipe(spec, args):
        return await pipe_target(spec, args, stack)

    client = await _open_redis(spec, args, stack)
    return RedisHashBackedStoreHandler(client, args.redis_key, timeout=args.backend_timeout)


# -- s3://BUCKET[/PREFIX/] -----------------------------------------------------
async def _open_s3(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> tuple[Any, Any]:
    from botocore.exceptions import BotoCoreError

    from ..backends.s3 import check_bucket, make_s3_client
    from ..backends.s3_url import parse_s3_url

    try:
        where = parse_s3_url(spec)
    except ValueError as exc:
        raise UsageError(f"bad S3 source/target: {exc}") from exc
    if args.s3_client not in S3_CLIENTS:
        raise UsageError(f"unknown S3 client {args.s3_client!r} (--s3-client / s3_client: choose "
                         f"{' or '.join(S3_CLIENTS)})")
    if args.s3_list_ttl < 0:
        raise UsageError(f"--s3-list-ttl must be >= 0, not {args.s3_list_ttl}")
    if args.prefix_len < 0:
        raise UsageError(f"--prefix-len must be >= 0, not {args.prefix_len}")
    if logging.getLogger().level > logging.DEBUG:  # "Found credentials in ..." is noise unless debugging
        for name in ("aiobotocore.credentials", "botocore.credentials"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        client = await stack.enter_async_context(make_s3_client(
            args.endpoint_url, connect_timeout=min(args.backend_timeout, 5.0), read_timeout=args.backend_timeout,
            max_pool_connections=args.backend_concurrency, client=args.s3_client))
    except (BotoCoreError, ValueError) as exc:
        raise UsageError(f"cannot make an S3 client: {exc}") from exc
    endpoint = args.endpoint_url or "AWS"
    try:
        await check_bucket(client, where.bucket, timeout=args.backend_timeout)
    except BackendUnavailable as exc:
        raise UsageError(f"S3 bucket {where.bucket!r} at {endpoint} is not usable: {exc.reason}") from exc
    return client, where


async def _s3_source(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> CommunicationContainer:
    from ..backends.s3 import S3BackedCommunicationContainer

    client, where = await _open_s3(spec, args, stack)
    return S3BackedCommunicationContainer(client, where.bucket, args.prefix_len, key_prefix=where.prefix,
                                          max_concurrency=args.backend_concurrency, timeout=args.backend_timeout,
                                          list_ttl=args.s3_list_ttl)


async def _s3_target(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> Any:
    from ..handlers.s3_store import S3BackedStoreHandler

    client, where = await _open_s3(spec, args, stack)
    return S3BackedStoreHandler(client, where.bucket, args.prefix_len, key_prefix=where.prefix,
                                max_concurrency=args.backend_concurrency, timeout=args.backend_timeout)


# -- fetch://HOST:PORT -----------------------------------------------------
def parse_fetch_url(spec: str) -> tuple[str, int]:
    """(host, port) of ``fetch://HOST:PORT``; UsageError for anything else."""
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise UsageError(f"bad fetch source {spec!r}: expected fetch://HOST:PORT")
    return parts.hostname, port


async def _fetch_source(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> CommunicationContainer:
    from ..backends.fetch import FetchBackedCommunicationContainer

    host, port = parse_fetch_url(spec)
    container = FetchBackedCommunicationContainer(host, port, max_connections=args.backend_concurrency,
                                                  timeout=args.backend_timeout, ssl=client_tls(args, upstream=True))
    stack.push_async_callback(container.aclose)
    try:
        await container.count()
    except BackendUnavailable as exc:
        raise UsageError(f"cannot reach the fetch service at {host}:{port}: {exc.reason}") from exc
    except Exception as exc:  # it answered, but not as a FetchCommunicationService
        raise UsageError(f"{host}:{port} is not a usable fetch service: {exc}") from exc
    return container


# Scheme -> opener.
_SOURCE_SCHEMES: dict[str, Opener] = {
    "redis": _redis_source,
    "redis+cluster": _redis_source,
    "rediss": _redis_source,
    "unix": _redis_source,
    "s3": _s3_source,
    "fetch": _fetch_source,
}
_TARGET_SCHEMES: dict[str, Opener] = {
    "redis": _redis_target,
    "redis+cluster": _redis_target,
    "rediss": _redis_target,
    "unix": _redis_target,
    "s3": _s3_target,
}
