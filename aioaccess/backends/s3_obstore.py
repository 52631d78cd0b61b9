"""The aiobotocore S3 client subset aioaccess uses, on top of obstore (Rust ``object_store``).

An alternative measured behind the same container/store-handler interface
(``make_s3_client(client="obstore")``); needs ``pip install obstore``.
Requests run on obstore's own Rust runtime, so the event loop only awaits
them.  What it cannot do like S3's API: ``create_bucket`` (not in obstore),
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
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from .s3_fast import _Body

__all__ = ["ObstoreFailure", "ObstoreS3Client", "make_obstore_s3_client"]

T = TypeVar("T")


class ObstoreFailure(BotoCoreError):
    """An obstore operation failed (not a missing key)."""

    fmt = "{operation} failed: {error}"


class ObstoreS3Client:
    """One obstore ``S3Store`` per bucket, all with the same endpoint, credentials and options."""

    def __init__(self, endpoint_url: str | None, credentials: Any, region_name: str, *,
                 connect_timeout: float = 5.0, read_timeout: float = 20.0, max_attempts: int = 3,
                 max_pool_connections: int = 64) -> None:
        try:
            import obstore
        except ImportError as exc:
            raise ImportError("the obstore S3 client needs obstore: pip install obstore") from exc
        if credentials is None:
            raise NoCredentialsError()
        self._obstore = obstore
        frozen = credentials.get_frozen_credentials()
        self._options: dict[str, Any] = {
            "access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key, "region": region_name,
            "client_options": {"allow_http": True, "connect_timeout": f"{connect_timeout}s",
                               "timeout": f"{read_timeout + connect_timeout}s",
                               "pool_max_idle_per_host": str(max_pool_connections)},
            "retry_config": {"max_retries": max(0, max_attempts - 1)},
        }
        if frozen.token:
            self._options["token"] = frozen.token
        if endpoint_url:
            self._options["endpoint"] = endpoint_url.rstrip("/")
            self._options["virtual_hosted_style_request"] = False
        self._stores: dict[str, Any] = {}

    def _store(self, bucket: str) -> Any:
        store = self._stores.get(bucket)
        if store is None:
            from obstore.store import S3Store

            store = self._stores[bucket] = S3Store(bucket, **self._options)
        return store

    async def _call(self, operation: str, awaitable: Awaitable[T], missing: str = "NoSuchKey") -> T:
        from obstore.exceptions import BaseError, NotFoundError

        try:
            return await awaitable
        except (NotFoundError, FileNotFoundError) as exc:
            raise ClientError({"Error": {"Code": missing, "Message": str(exc)}}, operation) from exc  # type: ignore[arg-type]
        except (BaseError, OSError) as exc:
            raise ObstoreFailure(operation=operation, error=exc) from exc

    async def close(self) -> None:
        self._stores.clear()

    async def __aenter__(self) -> ObstoreS3Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:  # noqa: N803
        result = await self._call("PutObject", self._obstore.put_async(self._store(Bucket), Key, bytes(Body)))
        return {"ETag": result.get("e_tag") or ""}

    async def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        async def get() -> bytes:
            result = await self._obstore.get_async(self._store(Bucket), Key)
            return bytes(await result.bytes_async())

        data = await self._call("GetObject", get())
        return {"Body": _Body(data), "ContentLength": len(data)}

    async def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        meta = await self._call("HeadObject", self._obstore.head_async(self._store(Bucket), Key), "404")
        return {"ContentLength": meta["size"], "ETag": meta.get("e_tag") or ""}

    async def head_bucket(self, *, Bucket: str) -> dict[str, Any]:  # noqa: N803
        await self.list_objects_v2(Bucket=Bucket, MaxKeys=1)
        return {}

    async def create_bucket(self, *, Bucket: str) -> dict[str, Any]:  # noqa: N803
        raise NotImplementedError("obstore cannot create buckets")

    async def list_objects_v2(self, *, Bucket: str, MaxKeys: int = 1000, StartAfter: str | None = None,  # noqa: N803
                              ContinuationToken: str | None = None, Prefix: str | None = None) -> dict[str, Any]:  # noqa: N803
        stream = self._obstore.list(self._store(Bucket), Prefix, offset=ContinuationToken or StartAfter,
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
        client = self

        class _Paginator:
            async def _pages(self, Bucket: str, PaginationConfig: Mapping[str, Any] | None = None,  # noqa: N803
                             Prefix: str | None = None) -> AsyncIterator[dict[str, Any]]:
                size = int((PaginationConfig or {}).get("PageSize") or 1000)
                token = None
                while True:
                    page = await client.list_objects_v2(Bucket=Bucket, MaxKeys=size, ContinuationToken=token,
                                                        Prefix=Prefix)
                    yield page
                    token = page.get("NextContinuationToken")
                    if not token:
                        return

            def paginate(self, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
                return self._pages(**kwargs)

        return _Paginator()

    async def delete_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        await self._call("DeleteObject", self._obstore.delete_async(self._store(Bucket), Key))
        return {}

    async def delete_objects(self, *, Bucket: str, Delete: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N803
        keys = [obj["Key"] for obj in Delete["Objects"]]
        await self._call("DeleteObjects", self._obstore.delete_async(self._store(Bucket), keys))
        return {"Deleted": [{"Key": k} for k in keys]}


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
