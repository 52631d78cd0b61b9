"""A small S3 client for the hot paths: SigV4-signed requests over one aiohttp session.

It speaks the subset of the aiobotocore client API that aioaccess uses
(``put_object``, ``get_object``, ``head_object``, ``head_bucket``,
``list_objects_v2`` and its paginator, ``delete_objects``, ``create_bucket``),
with the same keyword arguments, result keys and ``botocore`` ``ClientError``
on S3 errors, so containers and store handlers take either client.

What it leaves out is what costs aiobotocore ~1 ms of CPU per request: the
event-hook chain, the endpoint rule set, parameter validation, the user
agent, model-driven serialization and parsing.  It signs every payload
(``x-amz-content-sha256``), never sends ``Expect: 100-continue`` (one round
trip per PUT instead of two), keeps connections alive, and retries
connection errors, 5xx and throttling with jittered exponential backoff.
Credentials and region come from botocore's usual chain (environment,
config files, instance roles); refreshable credentials are refreshed off
the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import hmac
import logging
import random
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from yarl import URL

__all__ = ["FastS3Client", "make_fast_s3_client"]

logger = logging.getLogger("aioaccess.backends.s3_fast")

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_RETRY_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError",
                          "ServiceUnavailable", "RequestTimeTooSkewed"})
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def _quote_path(text: str) -> str:
    return quote(text, safe="/~")


def _quote_query(text: str) -> str:
    return quote(text, safe="-_.~")


class _Body:
    """A fully read response body with aiobotocore's StreamingBody surface (``async with``, ``read``)."""

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, amt: int | None = None) -> bytes:
        data = self._data
        if amt is None:
            self._data = b""
            return data
        self._data = data[amt:]
        return data[:amt]

    async def __aenter__(self) -> _Body:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._data = b""

    def close(self) -> None:
        self._data = b""


class _Paginator:
    """``list_objects_v2`` pages, as aiobotocore's paginator yields them."""

    def __init__(self, client: FastS3Client) -> None:
        self.client = client

    async def _pages(self, PaginationConfig: Mapping[str, Any] | None = None,  # noqa: N803
                     **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        config = PaginationConfig or {}
        if config.get("PageSize"):
            kwargs["MaxKeys"] = int(config["PageSize"])
        left = config.get("MaxItems")
        token = config.get("StartingToken")
        while True:
            if left is not None:
                kwargs["MaxKeys"] = min(int(left), kwargs.get("MaxKeys", 1000))
            page = await self.client.list_objects_v2(**kwargs, **({"ContinuationToken": token} if token else {}))
            yield page
            if left is not None:
                left -= len(page.get("Contents", ()))
                if left <= 0:
                    return
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def paginate(self, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        return self._pages(**kwargs)


class FastS3Client:
    """S3 requests signed with SigV4 and sent over one aiohttp session (see the module docstring).

    ``endpoint_url`` None means AWS (virtual-hosted style when the bucket
    name allows it); any other endpoint is addressed path-style.
    ``credentials`` is a botocore ``Credentials`` object.  Unlike botocore
    it does not follow a bucket to another region: ``region_name`` must be
    the bucket's (a wrong one fails with the ``ClientError`` S3 sends).
    """

    def __init__(self, endpoint_url: str | None, credentials: Any, region_name: str, *,
                 max_pool_connections: int = 64, connect_timeout: float = 5.0, read_timeout: float = 20.0,
                 max_attempts: int = 3) -> None:
        if credentials is None:
            raise NoCredentialsError()
        self.region = region_name
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"bad endpoint URL {endpoint_url!r}")
        self.max_attempts = max(1, max_attempts)
        self._credentials = credentials
        self._frozen = credentials.get_frozen_credentials()
        self._keys: dict[str, bytes] = {}
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_pool_connections, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout),
            auto_decompress=False, skip_auto_headers=("User-Agent", "Content-Type"),
        )

    # -- plumbing ---------------------------------------------------------
    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> FastS3Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def get_paginator(self, name: str) -> _Paginator:
        if name != "list_objects_v2":
            raise NotImplementedError(f"FastS3Client has no paginator for {name}")
        return _Paginator(self)

    def _url(self, bucket: str, key: str | None) -> tuple[str, str, str]:
        """(scheme://host, Host header, canonical path) of a bucket or object."""
        tail = "" if key is None else _quote_path(key)
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            base_path = parts.path.rstrip("/")
            path = f"{base_path}/{_quote_path(bucket)}" + (f"/{tail}" if key is not None else "")
            return f"{parts.scheme}://{parts.netloc}", parts.netloc, path
        if _DNS_BUCKET.match(bucket):
            host = f"{bucket}.s3.{self.region}.amazonaws.com"
            return f"https://{host}", host, f"/{tail}"
        host = f"s3.{self.region}.amazonaws.com"
        return f"https://{host}", host, f"/{_quote_path(bucket)}" + (f"/{tail}" if key is not None else "")

    async def _creds(self) -> Any:
        refresh_needed = getattr(self._credentials, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            loop = asyncio.get_running_loop()
            self._frozen = await loop.run_in_executor(None, self._credentials.get_frozen_credentials)
        return self._frozen

    def _signing_key(self, secret: str, day: str) -> bytes:
        cache_key = f"{day}/{secret}"
        key = self._keys.get(cache_key)
        if key is None:
            key = hmac.new(("AWS4" + secret).encode(), day.encode(), hashlib.sha256).digest()
            for part in (self.region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {cache_key: key}  # one day, one secret at a time
        return key

    def _sign(self, creds: Any, method: str, host: str, path: str, query: str, payload_hash: str,
              extra: Mapping[str, str], amz_date: str | None = None) -> dict[str, str]:
        """SigV4 headers (``Authorization`` included) for one request; ``amz_date`` defaults to now."""
        amz_date = amz_date or datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        for name, value in extra.items():
            headers[name.lower()] = value
        names = sorted(headers)
        signed = ";".join(names)
        canonical = "\n".join((method, path, query, "".join(f"{n}:{headers[n].strip()}\n" for n in names), signed,
                               payload_hash))
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(creds.secret_key, day), to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                                    f"SignedHeaders={signed}, Signature={signature}")
        return headers

    async def _request(self, operation: str, method: str, bucket: str, key: str | None = None, *,
                       query: Mapping[str, str] | None = None, body: bytes = b"",
                       headers: Mapping[str, str] | None = None) -> tuple[int, Mapping[str, str], bytes]:
        base, host, path = self._url(bucket, key)
        qs = "&".join(f"{_quote_query(k)}={_quote_query(v)}" for k, v in sorted((query or {}).items()))
        url = URL(f"{base}{path}" + (f"?{qs}" if qs else ""), encoded=True)
        payload_hash = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
        for attempt in range(1, self.max_attempts + 1):
            signed = self._sign(await self._creds(), method, host, path, qs, payload_hash, headers or {})
            try:
                async with self._session.request(method, url, data=body or None, headers=signed,
                                                 allow_redirects=False) as response:
                    data = await response.read()
                    status = response.status
                    resp_headers = response.headers
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                if attempt < self.max_attempts:
                    await self._backoff(attempt)
                    continue
                if isinstance(exc, aiohttp.ClientConnectionError | OSError) and not isinstance(
                        exc, aiohttp.ServerDisconnectedError):
                    raise EndpointConnectionError(endpoint_url=str(url)) from exc
                raise
            if status < 300:
                return status, resp_headers, data
            error = self._error(status, resp_headers, data, method)
            if attempt < self.max_attempts and (status in _RETRY_STATUS or error["Error"]["Code"] in _RETRY_CODES):
                await self._backoff(attempt)
                continue
            raise ClientError(error, operation)  # type: ignore[arg-type]
        raise AssertionError("unreachable")

    @staticmethod
    async def _backoff(attempt: int) -> None:
        await asyncio.sleep(random.uniform(0, min(20.0, 0.05 * 2 ** attempt)))

    @staticmethod
    def _error(status: int, headers: Mapping[str, str], data: bytes, method: str) -> dict[str, Any]:
        code, message = str(status), ""
        if data and method != "HEAD":
            try:
                root = ET.fromstring(data)
                code = root.findtext("Code") or code
                message = root.findtext("Message") or ""
            except ET.ParseError:
                message = data[:200].decode("utf-8", "replace")
        return {"Error": {"Code": code, "Message": message},
                "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": dict(headers),
                                     "RequestId": headers.get("x-amz-request-id", "")}}

    @staticmethod
    def _meta(status: int, headers: Mapping[str, str]) -> dict[str, Any]:
        return {"HTTPStatusCode": status, "RequestId": headers.get("x-amz-request-id", "")}

    # -- operations -------------------------------------------------------
    async def put_object(self, *, Bucket: str, Key: str, Body: bytes | bytearray | memoryview) -> dict[str, Any]:  # noqa: N803
        body = bytes(Body)
        status, headers, _ = await self._request("PutObject", "PUT", Bucket, Key, body=body)
        return {"ETag": headers.get("ETag", ""), "ResponseMetadata": self._meta(status, headers)}

    async def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        status, headers, data = await self._request("GetObject", "GET", Bucket, Key)
        return {"Body": _Body(data), "ContentLength": len(data), "ETag": headers.get("ETag", ""),
                "ResponseMetadata": self._meta(status, headers)}

    async def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        status, headers, _ = await self._request("HeadObject", "HEAD", Bucket, Key)
        return {"ContentLength": int(headers.get("Content-Length", 0)), "ETag": headers.get("ETag", ""),
                "ResponseMetadata": self._meta(status, headers)}

    async def head_bucket(self, *, Bucket: str) -> dict[str, Any]:  # noqa: N803
        status, headers, _ = await self._request("HeadBucket", "HEAD", Bucket)
        return {"ResponseMetadata": self._meta(status, headers)}

    async def create_bucket(self, *, Bucket: str) -> dict[str, Any]:  # noqa: N803
        body = b""
        if self.region != "us-east-1":
            body = (f'<CreateBucketConfiguration xmlns="{_NS[1:-1]}"><LocationConstraint>{self.region}'
                    "</LocationConstraint></CreateBucketConfiguration>").encode()
        status, headers, _ = await self._request("CreateBucket", "PUT", Bucket, body=body)
        return {"ResponseMetadata": self._meta(status, headers)}

    async def list_objects_v2(self, *, Bucket: str, MaxKeys: int | None = None, Prefix: str | None = None,  # noqa: N803
                              ContinuationToken: str | None = None, StartAfter: str | None = None) -> dict[str, Any]:  # noqa: N803
        query = {"list-type": "2"}
        for name, value in (("max-keys", MaxKeys), ("prefix", Prefix), ("continuation-token", ContinuationToken),
                            ("start-after", StartAfter)):
            if value is not None:
                query[name] = str(value)
        status, headers, data = await self._request("ListObjectsV2", "GET", Bucket, query=query)
        root = ET.fromstring(data)
        contents = [{"Key": c.findtext(f"{_NS}Key") or "", "Size": int(c.findtext(f"{_NS}Size") or 0),
                     "ETag": c.findtext(f"{_NS}ETag") or "", "LastModified": c.findtext(f"{_NS}LastModified")}
                    for c in root.iter(f"{_NS}Contents")]
        page: dict[str, Any] = {"IsTruncated": root.findtext(f"{_NS}IsTruncated") == "true",
                                "KeyCount": int(root.findtext(f"{_NS}KeyCount") or len(contents)),
                                "Name": Bucket, "ResponseMetadata": self._meta(status, headers)}
        if contents:
            page["Contents"] = contents
        token = root.findtext(f"{_NS}NextContinuationToken")
        if token:
            page["NextContinuationToken"] = token
        return page

    async def delete_objects(self, *, Bucket: str, Delete: Mapping[str, Any]) -> dict[str, Any]:  # noqa: N803
        root = ET.Element("Delete", xmlns=_NS[1:-1])
        if Delete.get("Quiet"):
            ET.SubElement(root, "Quiet").text = "true"
        for obj in Delete["Objects"]:
            ET.SubElement(ET.SubElement(root, "Object"), "Key").text = obj["Key"]
        body = ET.tostring(root, encoding="utf-8", xml_declaration=False)
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        status, headers, data = await self._request("DeleteObjects", "POST", Bucket, query={"delete": ""},
                                                    body=body, headers={"Content-MD5": md5})
        tree = ET.fromstring(data) if data else None
        errors = [] if tree is None else [{"Key": e.findtext(f"{_NS}Key"), "Code": e.findtext(f"{_NS}Code"),
                                           "Message": e.findtext(f"{_NS}Message")} for e in tree.iter(f"{_NS}Error")]
        deleted = [] if tree is None else [{"Key": d.findtext(f"{_NS}Key")} for d in tree.iter(f"{_NS}Deleted")]
        result: dict[str, Any] = {"ResponseMetadata": self._meta(status, headers)}
        if errors:
            result["Errors"] = errors
        if deleted:
            result["Deleted"] = deleted
        return result


@contextlib.asynccontextmanager
async def make_fast_s3_client(endpoint_url: str | None = None, *, max_attempts: int = 3, connect_timeout: float = 5.0,
                              read_timeout: float = 20.0, max_pool_connections: int = 64,
                              region_name: str | None = None, **options: Any) -> AsyncIterator[FastS3Client]:
    """A ``FastS3Client`` with botocore's credential chain, closed on exit (``options`` are ignored)."""
    from botocore.session import get_session

    if options:
        logger.debug("FastS3Client ignores options %s", sorted(options))
    loop = asyncio.get_running_loop()
    session = get_session()
    credentials = await loop.run_in_executor(None, session.get_credentials)
    region = region_name or session.get_config_variable("region") or "us-east-1"
    client = FastS3Client(endpoint_url, credentials, region, max_pool_connections=max_pool_connections,
                          connect_timeout=connect_timeout, read_timeout=read_timeout, max_attempts=max_attempts)
    try:
        yield client
    finally:
        await client.close()
