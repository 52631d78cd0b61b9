"""StoreCommunicationService into an S3 bucket (concrete-python's key layout)."""

from __future__ import annotations

import asyncio
from typing import Any

from ..backends.s3 import (
    DEFAULT_S3_CONCURRENCY,
    DEFAULT_S3_KEY_PREFIX_LEN,
    DEFAULT_S3_TIMEOUT,
    prefix_s3_key,
    s3_call,
)
from ..exceptions import BackendUnavailable, InvalidCommId
from .store import StoreHandler, validate_comm_id

__all__ = ["MAX_S3_KEY_BYTES", "S3BackedStoreHandler"]

#: Longest S3 object key, in UTF-8 bytes.
MAX_S3_KEY_BYTES = 1024


class S3BackedStoreHandler(StoreHandler):
    """PUTs each Communication at ``key_prefix + prefix_s3_key(id, prefix_len)`` in ``bucket``.

    The call is acknowledged once S3 has accepted the object.  S3 failures
    become ``BackendUnavailable`` (a ``ServicesException`` to the caller).
    ``client`` is an S3 client from ``make_s3_client``, owned by the caller.
    """

    NAME = "S3BackedStoreHandler"

    def __init__(self, client: Any, bucket: str, prefix_len: int = DEFAULT_S3_KEY_PREFIX_LEN, *,
                 max_concurrency: int = DEFAULT_S3_CONCURRENCY, timeout: float | None = DEFAULT_S3_TIMEOUT,
                 key_prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix_len = prefix_len
        self.key_prefix = key_prefix
        self.timeout = timeout
        self._limit = asyncio.Semaphore(max_concurrency)
        #: Over obstore a store waits only on plain futures (timeouts by ``s3_call``): the server needs no Task.
        self.inline_safe = self.task_free = bool(getattr(client, "TASK_FREE", False))

    def check_id(self, comm_id: object) -> str:
        comm_id = validate_comm_id(comm_id)
        key = self.key_prefix + prefix_s3_key(comm_id, self.prefix_len)
        if len(key.encode("utf-8")) > MAX_S3_KEY_BYTES:
            raise InvalidCommId(comm_id, f"the prefixed S3 key is longer than {MAX_S3_KEY_BYTES} bytes")
        key_problem = getattr(self.client, "key_problem", None)
        problem = key_problem and key_problem(key)
        if problem:
            raise InvalidCommId(comm_id, f"the S3 key has {problem}, which the obstore S3 client cannot store "
                                "exactly (use --s3-client aiobotocore)")
        return comm_id

    async def _put_raw(self, comm_id: str, raw: bytes) -> None:
        key = self.key_prefix + prefix_s3_key(comm_id, self.prefix_len)
        async with self._limit:
            try:
                await s3_call(self.client.put_object(Bucket=self.bucket, Key=key, Body=raw),
                              f"PUT s3://{self.bucket}/{key}", self.timeout)
            except BackendUnavailable:
                raise
            except Exception as exc:  # a 404 on PUT: the bucket has gone
                raise BackendUnavailable("s3", f"PUT s3://{self.bucket}/{key} failed: {exc}") from exc
