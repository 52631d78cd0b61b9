"""``s3://BUCKET`` and ``s3://BUCKET/PREFIX/``: where a corpus lives, parsed in one place; client names.

A corpus under a key prefix keeps concrete-python's hashed layout inside
it: the object of ``id`` is ``PREFIX/`` + ``prefix_s3_key(id, prefix_len)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["DEFAULT_S3_CLIENT", "S3_CLIENTS", "S3Location", "parse_s3_url"]

#: The S3 clients ``make_s3_client`` (and every ``--s3-client`` flag) can make; the first is the default.
S3_CLIENTS = ("obstore", "aiobotocore")
DEFAULT_S3_CLIENT = S3_CLIENTS[0]


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket and a key prefix (``""`` or ending in ``/``)."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_url(url: str) -> S3Location:
    """``s3://BUCKET[/PREFIX[/]]`` -> S3Location; ValueError naming the problem otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "s3":
        raise ValueError(f"expected s3://BUCKET or s3://BUCKET/PREFIX/, not {url!r}")
    if not parts.netloc or "@" in parts.netloc or ":" in parts.netloc:
        raise ValueError(f"no bucket name in {url!r} (expected s3://BUCKET or s3://BUCKET/PREFIX/)")
    if parts.query or parts.fragment:
        raise ValueError(f"an S3 location takes no query or fragment: {url!r}")
    path = parts.path.strip("/")
    segments = path.split("/") if path else []
    bad = next((s for s in segments if s in ("", ".", "..")), None)
    if bad is not None:
        raise ValueError(f"bad key prefix in {url!r}: empty, '.' or '..' path segments are not allowed")
    return S3Location(parts.netloc, "".join(f"{s}/" for s in segments))
