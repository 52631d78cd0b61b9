"""Communications in an S3 bucket at ``key_prefix + prefix_s3_key(id, prefix_len)``.

``prefix_s3_key``/``unprefix_s3_key`` give concrete-python's keys (the first
``prefix_len`` hex digits of the MD5 of the UTF-8 id, prepended).  S3
failures become ``BackendUnavailable``; a missing key is a missing id.
Client construction (obstore by default, or aiobotocore) lives in
``make_s3_client`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from hashlib import md5
from typing import Any, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from ..exceptions import BackendUnavailable
from .base import CommunicationContainer, check_raw
from .s3_deadline import within
from .s3_listing import DEFAULT_LIST_TTL, ListingCache
from .s3_url import DEFAULT_S3_CLIENT, S3_CLIENTS

__all__ = [
    "DEFAULT_S3_CLIENT",
    "DEFAULT_S3_CONCURRENCY",
    "DEFAULT_S3_KEY_PREFIX_LEN",
    "DEFAULT_S3_TIMEOUT",
    "S3BackedCommunicationContainer",
    "S3_CLIENTS",
    "check_bucket",
    "make_s3_client",
    "prefix_s3_key",
    "read_object",
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
                         region_name: str | None = None, client: str = DEFAULT_S3_CLIENT,
                         **options: Any) -> AsyncIterator[Any]:
    """One long-lived S3 client, closed on exit.

    ``client`` is ``"obstore"`` (default: ``s3_obstore.ObstoreS3Client``,
    Rust ``object_store`` under the aiobotocore call subset aioaccess uses)
    or ``"aiobotocore"``.  Credentials and region come from botocore's
    chain (environment, profiles, SSO, instance roles) for both.  Retries:
    ``max_attempts`` in all; the connection pool holds
    ``max_pool_connections`` (size it to the concurrency used).  Extra
    ``options`` go to aiobotocore's ``AioConfig``.  An unknown client, or one
    whose package is not installed, is a ``ValueError`` saying so.
    """
    if client not in S3_CLIENTS:
        raise ValueError(f"unknown S3 client {client!r} (choose {' or '.join(S3_CLIENTS)})")
    if client == "obstore":
        try:
            from .s3_obstore import make_obstore_s3_client
        except ImportError as exc:
            raise ValueError(f"the obstore S3 client needs obstore ({exc}): pip install obstore, "
                             "or choose --s3-client aiobotocore") from exc
        async with make_obstore_s3_client(endpoint_url, max_attempts=max_attempts, connect_timeout=connect_timeout,
                                          read_timeout=read_timeout, max_pool_connections=max_pool_connections,
                                          region_name=region_name) as obs:
            yield obs
        return
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


_FAILURES = (BotoCoreError, aiohttp.ClientError, OSError)  # TimeoutError is an OSError


def _unavailable(exc: BaseException, what: str, timeout: float | None) -> BackendUnavailable:
    if isinstance(exc, TimeoutError):
        return BackendUnavailable("s3", f"{what} got no answer within {timeout} s")
    return BackendUnavailable("s3", f"{what} failed: {exc}")


async def s3_call(awaitable: Awaitable[T], what: str, timeout: float | None) -> T:
    """Await an S3 request; failures and overruns become BackendUnavailable (ClientError 404s pass through).

    The timeout needs no Task (``s3_deadline.within``), so calls over obstore can run without one.
    """
    try:
        return await within(awaitable, timeout)
    except ClientError as exc:
        if _error_code(exc) in _MISSING_CODES:
            raise
        raise _unavailable(exc, what, timeout) from exc
    except _FAILURES as exc:
        raise _unavailable(exc, what, timeout) from exc


async def read_object(client: Any, bucket: str, key: str) -> bytes:
    """The bytes of one object (``ClientError`` if missing), by the client's cheapest call."""
    get_bytes = getattr(client, "get_bytes", None)
    if get_bytes is not None:
        return await get_bytes(bucket, key)
    response = await client.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as stream:
        return bytes(await stream.read())


class S3BackedCommunicationContainer(CommunicationContainer):
    """Maps ids to the objects of ``bucket`` at ``key_prefix + prefix_s3_key(id, prefix_len)``.

    Get-many issues concurrent GETs, at most ``max_concurrency`` in flight
    per container.  ``ids(offset, count)`` and ``count`` go through a
    ``ListingCache``: sequential pages cost one LIST per ``list_page_size``
    ids, and a count or page is at most ``list_ttl`` seconds old (0: list
    on every call).  ``client`` is an S3 client from ``make_s3_client``,
    owned by the caller.  Over a client whose calls wait only on plain futures
    (obstore's ``TASK_FREE``), the server steps calls without a Task.
    """

    NAME = "s3"

    def __init__(self, client: Any, bucket: str, prefix_len: int = DEFAULT_S3_KEY_PREFIX_LEN,
                 add_references: bool = True, *,
                 max_concurrency: int = DEFAULT_S3_CONCURRENCY, timeout: float | None = DEFAULT_S3_TIMEOUT,
                 list_page_size: int = 1000, key_prefix: str = "", list_ttl: float = DEFAULT_LIST_TTL) -> None:
        self.add_references = add_references
        self.client = client
        self.bucket = bucket
        self.prefix_len = prefix_len
        self.key_prefix = key_prefix
        self.timeout = timeout
        self.list_page_size = list_page_size
        self.max_concurrency = max_concurrency
        self._limit = asyncio.Semaphore(max_concurrency)
        self._strip = len(key_prefix) + prefix_len
        self.listing = ListingCache(self._list_page, list_ttl)
        get_bytes = getattr(client, "get_bytes", None)  # obstore: one call, no response dict
        self._read: Callable[[str, str], Awaitable[bytes]] = get_bytes or partial(read_object, client)
        self._key_problem: Callable[[str], str | None] | None = getattr(client, "key_problem", None)
        #: obstore's calls wait only on plain futures and timeouts are ``within``: no Task needed.
        self.INLINE_SAFE = self.TASK_FREE = bool(getattr(client, "TASK_FREE", False))  # type: ignore[misc]

    def key(self, comm_id: str) -> str:
        """The object key of ``comm_id``; BackendUnavailable if the client cannot address it exactly."""
        key = self.key_prefix + prefix_s3_key(comm_id, self.prefix_len)
        problem = self._key_problem and self._key_problem(key)
        if problem:
            raise BackendUnavailable("s3", f"the obstore S3 client cannot read key {key!r} ({problem}); "
                                     "use --s3-client aiobotocore")
        return key

    async def _get_one(self, comm_id: str) -> bytes | None:
        key = self.key(comm_id)
        async with self._limit:
            try:
                return await within(self._read(self.bucket, key), self.timeout)  # no Task needed (obstore)
            except ClientError as exc:
                if _error_code(exc) in _MISSING_CODES:
                    return None
                raise _unavailable(exc, f"GET s3://{self.bucket}/{key}", self.timeout) from exc
            except _FAILURES as exc:
                raise _unavailable(exc, f"GET s3://{self.bucket}/{key}", self.timeout) from exc

    async def get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        if len(ids) != 1:
            return await super().get_raw_many(ids)
        # One id (the fetch server's common call): one GET, two fewer coroutine layers per resume.
        comm_id = ids[0]
        raw = await self._get_one(comm_id)
        if raw is None:
            return {}
        if self.VALIDATE_ON_READ:
            check_raw(comm_id, raw)
        return {comm_id: raw}

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

        # Tasks, but no TaskGroup: the call itself may be running outside a Task (TASK_FREE).
        loop = asyncio.get_running_loop()
        workers = [loop.create_task(worker()) for _ in range(min(self.max_concurrency, len(unique)))]
        try:
            await asyncio.gather(*workers)
        finally:  # the first failure (or a cancellation) stops the rest
            for task in workers:
                task.cancel()
        return {i: found[i] for i in unique if i in found}

    async def _list_page(self, start_after: str | None) -> tuple[list[str], str | None, bool]:
        """One LIST request: (ids, last key, more pages) of the keys after ``start_after``."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "MaxKeys": self.list_page_size}
        if self.key_prefix:
            kwargs["Prefix"] = self.key_prefix
        if start_after is not None:
            kwargs["StartAfter"] = start_after
        page = await s3_call(self.client.list_objects_v2(**kwargs), f"LIST s3://{self.bucket}/{self.key_prefix}",
                             self.timeout)
        keys = [obj["Key"] for obj in page.get("Contents", ())]
        strip = self._strip
        return [k[strip:] for k in keys], (keys[-1] if keys else start_after), bool(page.get("IsTruncated"))

    async def _iter_ids(self) -> AsyncIterator[str]:
        after: str | None = None
        while True:
            ids, after, more = await self._list_page(after)
            for comm_id in ids:
                yield comm_id
            if not more or not ids:
                return

    async def _count(self) -> int:
        return await self.listing.count()

    async def _ids(self, offset: int, count: int | None) -> list[str]:
        if offset < 0 or count is None or count < 0:
            ids = [i async for i in self._iter_ids()]
            return ids[offset:][:count]
        return await self.listing.ids(offset, count)

    async def _contains(self, comm_id: str) -> bool:
        key = self.key(comm_id)
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
