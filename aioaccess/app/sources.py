"""SOURCE and TARGET arguments -> containers and store handlers.

Detection mirrors concrete-python's fetch-server: point it at a directory,
a zip, a Communications file, ``redis://``, ``s3://`` or ``fetch://`` and it
picks the container.  ``sample:`` is the small corpus shipped with aioaccess.
Remote backends are checked at startup (Redis PING, S3 HEAD bucket, a fetch
count), so a bad SOURCE or TARGET fails at once in one line.
"""

from __future__ import annotations

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
from ..backends.s3_url import S3_CLIENTS
from ..codec import CodecError
from ..exceptions import AioaccessError, BackendUnavailable
from ..handlers import DirectoryBackedStoreHandler
from .errors import SetupError
from .redis_sources import pipe_source, pipe_target, uses_pipe
from .tls import client_tls

__all__ = ["open_source", "open_target", "parse_fetch_url", "sample_path"]

#: ``args``: a :class:`~aioaccess.app.config.BackendOptions` (or any object with its attributes).
Opener = Callable[[str, Any, AsyncExitStack], Awaitable[Any]]


def sample_path() -> str:
    """Path of the sample corpus shipped inside the package."""
    return str(resources.files("aioaccess") / "_sample" / "sample.tar.gz")


async def open_source(spec: str, args: Any, stack: AsyncExitStack) -> CommunicationContainer:
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
    raise SetupError(f"source {spec!r} does not exist (expected a directory, a .zip or Communications file, "
                     "redis://, s3:// or fetch://)")


async def open_target(spec: str, args: Any, stack: AsyncExitStack) -> Any:
    """Open the store handler TARGET names."""
    opener = _TARGET_SCHEMES.get(spec.split("://", 1)[0]) if "://" in spec else None
    if opener is not None:
        return await opener(spec, args, stack)
    if os.path.isdir(spec):
        return DirectoryBackedStoreHandler(spec, fsync=getattr(args, "fsync", not getattr(args, "no_fsync", False)))
    raise SetupError(f"target {spec!r} is not an existing directory, redis://, redis+cluster:// or s3:// URL")


async def _open_file_source(path: str, args: Any, stack: AsyncExitStack) -> CommunicationContainer:
    try:
        if zipfile.is_zipfile(path):
            from ..backends.zip import ZipFileBackedCommunicationContainer

            return await stack.enter_async_context(ZipFileBackedCommunicationContainer(path))
        from ..backends.memory import MemoryBackedCommunicationContainer

        return await stack.enter_async_context(
            MemoryBackedCommunicationContainer(path, max_file_size=args.max_file_size))
    except (AioaccessError, CodecError, OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise SetupError(f"cannot load source {path!r}: {exc}") from exc


# -- redis://HOST:PORT/DB --------------------------------------------------
async def _open_redis(spec: str, args: Any, stack: AsyncExitStack) -> Any:
    from ..backends.redis import make_redis_client, redis_call

    if not args.redis_key:
        raise SetupError(f"{spec} needs --redis-key KEY (the hash holding the Communications)")
    try:
        client = make_redis_client(spec, socket_timeout=args.backend_timeout,
                                   connect_timeout=min(args.backend_timeout, 5.0))
    except ValueError as exc:
        raise SetupError(f"bad Redis URL {spec!r}: {exc}") from exc
    stack.push_async_callback(client.aclose)
    try:
        await redis_call(client.ping(), "PING", args.backend_timeout)
    except BackendUnavailable as exc:
        raise SetupError(f"cannot reach Redis at {spec}: {exc.reason}") from exc
    return client


async def _redis_source(spec: str, args: Any, stack: AsyncExitStack) -> CommunicationContainer:
    from ..backends.redis import RedisHashBackedCommunicationContainer

    if uses_pipe(spec, args):
        return await pipe_source(spec, args, stack)

    client = await _open_redis(spec, args, stack)
    return RedisHashBackedCommunicationContainer(client, args.redis_key, timeout=args.backend_timeout)


async def _redis_target(spec: str, args: Any, stack: AsyncExitStack) -> Any:
    from ..handlers.redis_store import RedisHashBackedStoreHandler

    if uses_pipe(spec, args):
        return await pipe_target(spec, args, stack)

    client = await _open_redis(spec, args, stack)
    return RedisHashBackedStoreHandler(client, args.redis_key, timeout=args.backend_timeout)


# -- s3://BUCKET[/PREFIX/] -----------------------------------------------------
async def _open_s3(spec: str, args: Any, stack: AsyncExitStack) -> tuple[Any, Any]:
    from botocore.exceptions import BotoCoreError

    from ..backends.s3 import check_bucket, make_s3_client
    from ..backends.s3_url import parse_s3_url

    try:
        where = parse_s3_url(spec)
    except ValueError as exc:
        raise SetupError(f"bad S3 source/target: {exc}") from exc
    if args.s3_client not in S3_CLIENTS:
        raise SetupError(f"unknown S3 client {args.s3_client!r} (--s3-client / s3_client: choose "
                         f"{' or '.join(S3_CLIENTS)})")
    if args.s3_list_ttl < 0:
        raise SetupError(f"--s3-list-ttl must be >= 0, not {args.s3_list_ttl}")
    if args.prefix_len < 0:
        raise SetupError(f"--prefix-len must be >= 0, not {args.prefix_len}")
    if logging.getLogger().level > logging.DEBUG:  # "Found credentials in ..." is noise unless debugging
        for name in ("aiobotocore.credentials", "botocore.credentials"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        client = await stack.enter_async_context(make_s3_client(
            args.endpoint_url, connect_timeout=min(args.backend_timeout, 5.0), read_timeout=args.backend_timeout,
            max_pool_connections=args.backend_concurrency, client=args.s3_client))
    except (BotoCoreError, ValueError) as exc:
        raise SetupError(f"cannot make an S3 client: {exc}") from exc
    endpoint = args.endpoint_url or "AWS"
    try:
        await check_bucket(client, where.bucket, timeout=args.backend_timeout)
    except BackendUnavailable as exc:
        raise SetupError(f"S3 bucket {where.bucket!r} at {endpoint} is not usable: {exc.reason}") from exc
    return client, where


async def _s3_source(spec: str, args: Any, stack: AsyncExitStack) -> CommunicationContainer:
    from ..backends.s3 import S3BackedCommunicationContainer

    client, where = await _open_s3(spec, args, stack)
    return S3BackedCommunicationContainer(client, where.bucket, args.prefix_len, key_prefix=where.prefix,
                                          max_concurrency=args.backend_concurrency, timeout=args.backend_timeout,
                                          list_ttl=args.s3_list_ttl)


async def _s3_target(spec: str, args: Any, stack: AsyncExitStack) -> Any:
    from ..handlers.s3_store import S3BackedStoreHandler

    client, where = await _open_s3(spec, args, stack)
    return S3BackedStoreHandler(client, where.bucket, args.prefix_len, key_prefix=where.prefix,
                                max_concurrency=args.backend_concurrency, timeout=args.backend_timeout)


# -- fetch://HOST:PORT -----------------------------------------------------
def parse_fetch_url(spec: str) -> tuple[str, int]:
    """(host, port) of ``fetch://HOST:PORT``; SetupError for anything else."""
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise SetupError(f"bad fetch source {spec!r}: expected fetch://HOST:PORT")
    return parts.hostname, port


async def _fetch_source(spec: str, args: Any, stack: AsyncExitStack) -> CommunicationContainer:
    from ..backends.fetch import FetchBackedCommunicationContainer

    host, port = parse_fetch_url(spec)
    container = FetchBackedCommunicationContainer(host, port, max_connections=args.backend_concurrency,
                                                  timeout=args.backend_timeout, ssl=client_tls(args, upstream=True))
    stack.push_async_callback(container.aclose)
    try:
        await container.count()
    except BackendUnavailable as exc:
        raise SetupError(f"cannot reach the fetch service at {host}:{port}: {exc.reason}") from exc
    except Exception as exc:  # it answered, but not as a FetchCommunicationService
        raise SetupError(f"{host}:{port} is not a usable fetch service: {exc}") from exc
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
