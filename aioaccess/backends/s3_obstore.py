"""The aiobotocore S3 client subset aioaccess uses, on top of obstore (Rust ``object_store``).

This is the default S3 client (``make_s3_client(client="obstore")``).
Signing, retries, redirects and connection pooling are object_store's;
requests run on obstore's own Rust runtime, so the event loop only awaits
them.  Credentials come from botocore's chain (environment, config files,
profiles, SSO, instance roles); refreshable ones are handed to obstore as a
credential provider, so object_store asks for new ones before they expire.

Where it differs from S3's API: ``create_bucket`` is delegated to a
short-lived aiobotocore client (object_store cannot create buckets),
``Prefix`` in listings is a path prefix (``"a/"`` lists ``a/...``), list
continuation tokens are the last key of the previous page (``StartAfter``
semantics), and keys follow object_store's path rules (no empty, ``.`` or
``..`` segments, no leading or trailing ``/``).  Not-found errors become
botocore ``ClientError`` (``NoSuchKey``/``404``), other failures
``ObstoreFailure`` (a ``BotoCoreError``), so ``s3_call`` treats them as it
treats aiobotocore's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import re
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

from botocore.exceptions import NoCredentialsError

from .s3_compat import Body, ObstoreFailure, failure, key_problem, not_found
from .s3_deadline import within

__all__ = ["Body", "ObstoreFailure", "ObstoreS3Client", "key_problem", "make_obstore_s3_client"]

T = TypeVar("T")

#: End of the range a one-call GET asks for: past the end of any object.
_WHOLE = 1 << 62
#: obstore's words for a whole-object range the endpoint did not serve as one (200, or 416 for an empty object).
_RANGE_REFUSED = re.compile(r"non-partial|\b416\b|InvalidRange")


class _BotocoreCredentials:
    """obstore credential provider over botocore's refreshable credentials (refreshed by botocore)."""

    def __init__(self, credentials: Any, ttl: float = 300.0) -> None:
        self.credentials = credentials
        self.ttl = datetime.timedelta(seconds=ttl)

    def __call__(self) -> dict[str, Any]:
        frozen = self.credentials.get_frozen_credentials()
        return {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key, "token": frozen.token,
                "expires_at": datetime.datetime.now(datetime.UTC) + self.ttl}


class ObstoreS3Client:
    """One obstore ``S3Store`` per bucket, all with the same endpoint, credentials and options."""

    #: Its calls wait only on plain asyncio futures (obstore completes them with ``call_soon_threadsafe``),
    #: so callers may run them without a Task (``s3_deadline.within`` for timeouts).
    TASK_FREE = True

    def __init__(self, endpoint_url: str | None, credentials: Any, region_name: str, *,
                 connect_timeout: float = 5.0, read_timeout: float = 20.0, max_attempts: int = 3,
                 max_pool_connections: int = 64) -> None:
        import obstore
        from obstore.exceptions import BaseError, NotFoundError
        from obstore.store import S3Store

        if credentials is None:
            raise NoCredentialsError()
        self._obstore = obstore
        self._S3Store = S3Store
        self._not_found = (NotFoundError, FileNotFoundError)
        self._failures = (BaseError, OSError)
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self._options: dict[str, Any] = {
            "region": region_name,
            "client_options": {"allow_http": True, "connect_timeout": f"{connect_timeout}s",
                               "timeout": f"{read_timeout + connect_timeout}s",
                               "pool_max_idle_per_host": str(max_pool_connections)},
            "retry_config": {"max_retries": max(0, max_attempts - 1)},
        }
        if hasattr(credentials, "refresh_needed"):  # refreshable (instance role, SSO, assume-role, ...)
            self._options["credential_provider"] = _BotocoreCredentials(credentials)
        else:
            frozen = credentials.get_frozen_credentials()
            self._options.update(access_key_id=frozen.access_key, secret_access_key=frozen.secret_key)
            if frozen.token:
                self._options["token"] = frozen.token
        if endpoint_url:
            self._options["endpoint"] = endpoint_url.rstrip("/")
            self._options["virtual_hosted_style_request"] = False
        self._stores: dict[str, Any] = {}
        #: Whether GETs ask for the whole object as one range (one Rust call instead of two); off once the
        #: endpoint answers such a range with 200, which object_store refuses (rclone does).
        self.ranged_get = True

    key_problem = staticmethod(key_problem)

    def store(self, bucket: str) -> Any:
        """The obstore ``S3Store`` of ``bucket`` (one per bucket, reused)."""
        store = self._stores.get(bucket)
        if store is None:
            store = self._stores[bucket] = self._S3Store(bucket, **self._options)
        return store

    async def _call(self, operation: str, awaitable: Awaitable[T], missing: str = "NoSuchKey") -> T:
        try:
            return await awaitable
        except self._not_found as exc:
            raise not_found(exc, operation, missing) from exc
        except self._failures as exc:
            raise failure(exc, operation) from exc

    def get_bytes(self, bucket: str, key: str, timeout: float | None = None) -> Awaitable[bytes]:
        """The object's bytes (``get_object`` without the response dict).

        One Rust call where the endpoint answers a whole-object range with 206 (S3, moto): a GET of
        bytes ``0-`` (2**62); else, or for an empty object, ``get`` then ``bytes`` (two calls: each
        costs a hand-off from obstore's threads to the event loop).  ``timeout``: seconds for the whole
        GET, then ``TimeoutError``; it needs no Task (:func:`~aioaccess.backends.s3_deadline.within`).
        """
        return within(self._get_bytes(bucket, key), timeout)

    async def _get_bytes(self, bucket: str, key: str) -> bytes:
        obstore = self._obstore
        store = self.store(bucket)
        try:
            if self.ranged_get:
                try:
                    whole = await obstore.get_range_async(store, key, start=0, end=_WHOLE)
                    return whole.to_bytes()  # type: ignore[no-any-return]
                except self._failures as exc:
                    refused = _RANGE_REFUSED.search(str(exc))
                    if refused is None or isinstance(exc, self._not_found):
                        raise
                    if refused.group(0) == "non-partial":  # 200 to a whole-object range (rclone): never again
                        self.ranged_get = False
                    # else 416: an empty object; either way, get then bytes below
            result = await obstore.get_async(store, key)
            return (await result.bytes_async()).to_bytes()  # type: ignore[no-any-return]
        except self._not_found as exc:
            raise not_found(exc, "GetObject", "NoSuchKey") from exc
        except self._failures as exc:
            raise failure(exc, "GetObject") from exc

    async def close(self) -> None:
        self._stores.clear()

    async def __aenter__(self) -> ObstoreS3Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:  # noqa: N803
        result = await self._call("PutObject", self._obstore.put_async(self.store(Bucket), Key, Body))
        return {"ETag": result.get("e_tag") or ""}

    async def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        data = await self.get_bytes(Bucket, Key)
        return {"Body": Body(data), "ContentLength": len(data)}

    async def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        meta = await self._call("HeadObject", self._obstore.head_async(self.store(Bucket), Key), "404")
        return {"ContentLength": meta["size"], "ETag": meta.get("e_tag") or ""}

    async def delete_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        await self._call("DeleteObject", self._obstore.delete_async(self.store(Bucket), Key))
        return {}

    async def delete_objects(self, *, Bucket: str, Delete: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N803
        keys = [obj["Key"] for obj in Delete["Objects"]]
        await self._call("DeleteObjects", self._obstore.delete_async(self.store(Bucket), keys))
        return {"Deleted": [{"Key": k} for k in keys]}

    async def head_bucket(self, *, Bucket: str) -> dict[str, Any]:  # noqa: N803
        await self.list_objects_v2(Bucket=Bucket, MaxKeys=1)
        return {}

    async def create_bucket(self, *, Bucket: str) -> dict[str, Any]:  # noqa: N803
        from .s3 import make_s3_client

        async with make_s3_client(self.endpoint_url, client="aiobotocore", region_name=self.region_name) as s3:
            return dict(await s3.create_bucket(Bucket=Bucket))

    async def list_objects_v2(self, *, Bucket: str, MaxKeys: int = 1000, StartAfter: str | None = None,  # noqa: N803
                              ContinuationToken: str | None = None, Prefix: str | None = None) -> dict[str, Any]:  # noqa: N803
        stream = self._obstore.list(self.store(Bucket), Prefix or None, offset=ContinuationToken or StartAfter,
                                    chunk_size=MaxKeys)

        async def first() -> list[Any]:
            async for chunk in stream:
                return list(chunk)
            return []

        chunk = await self._call("ListObjectsV2", first(), "NoSuchBucket")
        page: dict[str, Any] = {"KeyCount": len(chunk), "IsTruncated": len(chunk) >= MaxKeys, "Name": Bucket}
        if chunk:
            page["Contents"] = [{"Key": m["path"], "Size": m["size"], "ETag": m.get("e_tag") or ""} for m in chunk]
            if page["IsTruncated"]:
                page["NextContinuationToken"] = chunk[-1]["path"]
        return page

    def get_paginator(self, name: str) -> Any:
        if name != "list_objects_v2":
            raise NotImplementedError(f"ObstoreS3Client has no paginator for {name}")
        return _Paginator(self)


class _Paginator:
    """``get_paginator("list_objects_v2")``: ``paginate(Bucket=..., Prefix=..., PaginationConfig=...)``."""

    def __init__(self, client: ObstoreS3Client) -> None:
        self.client = client

    async def _pages(self, Bucket: str, PaginationConfig: Mapping[str, Any] | None = None,  # noqa: N803
                     Prefix: str | None = None) -> AsyncIterator[dict[str, Any]]:  # noqa: N803
        size = int((PaginationConfig or {}).get("PageSize") or 1000)
        token = None
        while True:
            page = await self.client.list_objects_v2(Bucket=Bucket, MaxKeys=size, ContinuationToken=token,
                                                     Prefix=Prefix)
            yield page
            token = page.get("NextContinuationToken")
            if not token:
                return

    def paginate(self, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        return self._pages(**kwargs)


@contextlib.asynccontextmanager
async def make_obstore_s3_client(endpoint_url: str | None = None, *, max_attempts: int = 3,
                                 connect_timeout: float = 5.0, read_timeout: float = 20.0,
                                 max_pool_connections: int = 64, region_name: str | None = None,
                                 **options: Any) -> AsyncIterator[ObstoreS3Client]:
    """An ``ObstoreS3Client`` with botocore's credential chain (``options`` are ignored)."""
    from botocore.session import get_session

    loop = asyncio.get_running_loop()
    session = get_session()
    credentials = await loop.run_in_executor(None, session.get_credentials)
    region = region_name or session.get_config_variable("region") or "us-east-1"
    client = ObstoreS3Client(endpoint_url, credentials, region, connect_timeout=connect_timeout,
                             read_timeout=read_timeout, max_attempts=max_attempts,
                             max_pool_connections=max_pool_connections)
    try:
        yield client
    finally:
        await client.close()
