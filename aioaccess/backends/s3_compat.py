"""The aiobotocore-shaped pieces of the obstore S3 client: its errors, response body and key rules.

Not-found errors become botocore ``ClientError`` (``NoSuchKey``/``404``, a
missing bucket keeps ``NoSuchBucket``), other failures ``ObstoreFailure`` (a
``BotoCoreError``) with a one-line message, so ``s3_call`` treats them as it
treats aiobotocore's.
"""

from __future__ import annotations

import re

from botocore.exceptions import BotoCoreError, ClientError

__all__ = ["Body", "ObstoreFailure", "failure", "key_problem", "not_found"]


class ObstoreFailure(BotoCoreError):
    """An obstore operation failed (not a missing key)."""

    fmt = "{operation} failed: {error}"


class Body:
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

    async def __aenter__(self) -> Body:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._data = b""


def key_problem(key: str) -> str | None:
    """Why object_store cannot address ``key`` exactly (it would refuse or rewrite it), or None."""
    if "/" not in key:
        return None if key not in (".", "..") else "a '.' or '..' path segment"
    if key.startswith("/") or key.endswith("/"):
        return "a leading or trailing '/'"
    for segment in key.split("/"):
        if not segment:
            return "an empty path segment ('//')"
        if segment in (".", ".."):
            return "a '.' or '..' path segment"
    return None


_XML_FIELD = re.compile(r"<(Code|Message)>([^<]*)</\1>")


def brief(exc: BaseException) -> tuple[str, str | None]:
    """(one-line message, S3 error code) of an obstore error (its text holds the XML body and a debug dump)."""
    text = str(exc).split("\n\nDebug source", 1)[0]
    fields = dict(_XML_FIELD.findall(text))
    head = " ".join(text.split("<?xml", 1)[0].split()).rstrip(":")
    if fields:
        head += f": {fields.get('Code', '')} {fields.get('Message', '')}".rstrip()
    return head, fields.get("Code")


def not_found(exc: BaseException, operation: str, code: str) -> ClientError:
    """botocore's ClientError for an obstore not-found error (a missing bucket keeps its own code)."""
    message, s3_code = brief(exc)
    if s3_code == "NoSuchBucket":
        code = s3_code
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)  # type: ignore[arg-type]


def failure(exc: BaseException, operation: str) -> ObstoreFailure:
    return ObstoreFailure(operation=operation, error=brief(exc)[0])
