"""Communications in an S3 bucket at ``prefix_s3_key(id, prefix_len)``.

``prefix_s3_key``/``unprefix_s3_key`` give concrete-python's keys (the first
``prefix_len`` hex digits of the MD5 of the UTF-8 id, prepended).  S3
failures become ``BackendUnavailable``; a missing key is a missing id.
Client construction lives in ``make_s3_client`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Sequence
from hashlib import md5
from typing import Any, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from ..exceptions import BackendUnavailable
from .base import CommunicationContainer

__all__ = [
    "DEFAULT_S3_CONCURRENCY",
    "DEFAULT_S3_KEY_PREFIX_LEN",
    "DEFAULT_S3_TIMEOUT",
    "S3BackedCommunicationContainer",
    "check_bucket",
    "make_s3_client",
    "prefix_s3_key",
    "s3_call",
    "unprefix_s3_key",
]

logger = logging.getLogger("aioaccess.backends.s3")

#: concrete-python's default prefix length.
DEFAULT_S3_KEY_PREFIX_LEN = 4
#: Requests one container or store handler keeps in flight at most.
DEFAULT_S3_CONCURRENCY = 64
#: Seconds one S3 operation (retries included) may take before BackendUnavailable.
DEFAULT_S3_TIMEOUT = 30.0

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})

T = TypeVar("T")


def prefix_s3_key(key_str: str, prefix_len: int) -> str:
    """``key_str`` with the first ``prefix_len`` hex digits of its MD5 prepended (as concrete-python)."""
    return md5(key_str.encode("utf-8")).hexdigest()[:prefix_len] + key_str


def unprefix_s3_key(prefixed_key_str: str, prefix_len: int) -> str:
    """``prefixed_key_str`` without its first ``prefix_len`` characters (as concrete-python)."""
    return prefixed_key_str[prefix_len:]


def _drop_expect_continue(request: Any, **kwargs: Any) -> None:
    """PutObject without ``Expect: 100-continue``: one round trip per PUT instead of two, and less CPU."""
    request.headers.pop("Expect", None)


@contextlib.asynccontextmanager
async def make_s3_client(endpoint_url: str | None = None, *, max_attempts: int = 3, connect_timeout: float = 5.0,
                         read_timeout: float = 20.0, max_pool_connections: int = DEFAULT_S3_CONCURRENCY,
                         region_name: str | None = None, client: str | None = None,
                         **options: Any) -> AsyncIterator[Any]:
    """One long-lived S3 client, closed on exit.

    Credentials and region come from the standard AWS environment.  Retries
    use botocore's ``standard`` mode with ``max_attempts``; the connection
    pool holds ``max_pool_connections`` (size it to the concurrency used).
    Extra ``options`` go to ``AioConfig``.  ``client`` picks the
    implementation (default: ``$AIOACCESS_S3_CLIENT``, else aiobotocore):
    ``"aiobotocore"``, ``"fast"`` for ``s3_fast.FastS3Client`` (same API
    subset, 2.5-6x less CPU per request), or ``"obstore"`` for
    ``s3_obstore.ObstoreS3Client`` (needs obstore; cannot create buckets).
    """
    kind = client or os.environ.get("AIOACCESS_S3_CLIENT") or "aiobotocore"
    if kind == "fast":
        from .s3_fast import make_fast_s3_client

        async with make_fast_s3_client(endpoint_url, max_attempts=max_attempts, connect_timeout=connect_timeout,
                                       read_timeout=read_timeout, max_pool_connections=max_pool_connections,
                                       region_name=region_name) as fast:
            yield fast
        return
    if kind == "obstore":
        from .s3_obstore import make_obstore_s3_client

        async with make_obstore_s3_client(endpoint_url, max_attempts=max_attempts, connect_timeout=connect_timeout,
                                          read_timeout=read_timeout, max_pool_connections=max_pool_connections,
                                          region_name=region_name) as obs:
            yield obs
        return
    if kind != "aiobotocore":
        raise ValueError(f"unknown S3 client {kind!r} (choose aiobotocore, fast or obstore)")
    config = AioConfig(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
        **options,
    )
    session = get_session()
    async with session.create_client("s3", endpoint_url=endpoint_url, region_name=region_name,
                                     config=config) as s3:
        s3.meta.events.register("before-send.s3.PutObject", _drop_expect_continue)
        yield s3


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


async def s3_call(awaitable: Awaitable[T], what: str, timeout: float | None) -> T:
    """Await an S3 request; failures and overruns become BackendUnavailable (ClientError 404s pass through)."""
    try:
        async with asyncio.timeout(timeout):
            return await awaitable
    except TimeoutError as exc:
        raise BackendUnavailable("s3", f"{what} got no answer within {timeout} s") from exc
    except ClientError as exc:
        if _error_code(exc) in _MISSING_CODES:
            raise
        raise BackendUnavailable("s3", f"{what} failed: {exc}") from exc
    except (BotoCoreError, aiohttp.ClientError, OSError) as exc:
        raise BackendUnavailable("s3", f"{what} failed: {exc}") from exc


class S3BackedCommunicationContainer(CommunicationContainer):
    """Maps ids to the objects of ``bucket``, keyed ``prefix_s3_key(id, prefix_len)``.

    Get-many issues concurrent GETs, at most ``max_concurrency`` in flight
    per container; iteration and ``count`` list the bucket with a paginator
    and strip the prefixes.  ``client`` is an aiobotocore S3 client (see
    ``make_s3_client``) owned by the caller.
    """

    NAME = "s3"

    def __init__(self, client: Any, bucket: str, prefix_len: int = DEFAULT_S3_KEY_PREFIX_LEN,
                 add_references: bool = True, *,
                 max_concurrency: int = DEFAULT_S3_CONCURRENCY, timeout: float | None = DEFAULT_S3_TIMEOUT,
                 list_page_size: int = 1000) -> None:
        self.add_references = add_references
        self.client = client
        self.bucket = bucket
        self.prefix_len = prefix_len
        self.timeout = timeout
        self.list_page_size = list_page_size
        self.max_concurrency = max_concurrency
        self._limit = asyncio.Semaphore(max_concurrency)

    async def _get_one(self, comm_id: str) -> bytes | None:
        key = prefix_s3_key(comm_id, self.prefix_len)

        async def get() -> bytes:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as stream:
                return bytes(await stream.read())

        async with self._limit:
            try:
                return await s3_call(get(), f"GET s3://{self.bucket}/{key}", self.timeout)
            except ClientError:  # only the "no such key" codes reach here
                return None

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        unique = list(dict.fromkeys(ids))
        if len(unique) == 1:
            raw = await self._get_one(unique[0])
            return {} if raw is None else {unique[0]: raw}
        # A fixed set of workers, not a task per id: a fetch of millions of ids
        # must not create millions of tasks.
        found: dict[str, bytes] = {}
        todo = iter(unique)

        async def worker() -> None:
            for comm_id in todo:
                raw = await self._get_one(comm_id)
                if raw is not None:
                    found[comm_id] = raw

        try:
            async with asyncio.TaskGroup() as tg:
                for _ in range(min(self.max_concurrency, len(unique))):
                    tg.create_task(worker())
        except BaseExceptionGroup as group:  # the first failure cancelled the rest: report it alone
            raise group.exceptions[0]  # noqa: B904 - keeps its own cause
        return {i: found[i] for i in unique if i in found}

    async def _iter_ids(self) -> AsyncIterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, PaginationConfig={"PageSize": self.list_page_size}).__aiter__()
        while True:
            try:
                page = await s3_call(pages.__anext__(), f"LIST s3://{self.bucket}", self.timeout)
            except StopAsyncIteration:
                return
            for obj in page.get("Contents", ()):
                yield unprefix_s3_key(obj["Key"], self.prefix_len)

    async def _count(self) -> int:
        n = 0
        async for _ in self._iter_ids():
            n += 1
        return n

    async def _ids(self, offset: int, count: int | None) -> list[str]:
        if offset < 0 or count is None or count < 0:
            ids = [i async for i in self._iter_ids()]
            return ids[offset:][:count]
        # Listing is in key order: stop once the requested page is complete.
        page: list[str] = []
        if count == 0:
            return page
        position = 0
        async with contextlib.aclosing(self._iter_ids()) as ids:
            async for comm_id in ids:
                if position >= offset:
                    page.append(comm_id)
                    if len(page) == count:
                        break
                position += 1
        return page

    async def _contains(self, comm_id: str) -> bool:
        key = prefix_s3_key(comm_id, self.prefix_len)
        try:
            await s3_call(self.client.head_object(Bucket=self.bucket, Key=key),
                          f"HEAD s3://{self.bucket}/{key}", self.timeout)
        except ClientError:
            return False
        return True

    async def check_bucket(self) -> None:
        """Check the bucket exists and answers (BackendUnavailable if not)."""
        await check_bucket(self.client, self.bucket, self.timeout)


async def check_bucket(client: Any, bucket: str, timeout: float | None = DEFAULT_S3_TIMEOUT) -> None:
    """``head_bucket``; a missing bucket or unreachable endpoint raises BackendUnavailable."""
    try:
        await s3_call(client.head_bucket(Bucket=bucket), f"HEAD bucket s3://{bucket}", timeout)
    except ClientError as exc:  # 404: the bucket does not exist
        raise BackendUnavailable("s3", f"bucket {bucket!r} does not exist") from exc
