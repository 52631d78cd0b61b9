"""The backend flags of every command that opens a SOURCE or TARGET (opened by :mod:`aioaccess.app.sources`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..app.config import DEFAULT_PREFIX_LEN, default_redis_client
from ..backends.s3_url import DEFAULT_S3_CLIENT, S3_CLIENTS

if TYPE_CHECKING:
    from ..app.sources import open_source, open_target, parse_fetch_url, sample_path

__all__ = ["add_backend_options", "open_source", "open_target", "parse_fetch_url", "sample_path"]


def __getattr__(name: str) -> Any:
    """``open_source``, ``open_target``, ``parse_fetch_url``, ``sample_path``: from :mod:`aioaccess.app.sources`,
    imported on first use (the flags alone stay cheap)."""
    if name in ("open_source", "open_target", "parse_fetch_url", "sample_path"):
        from ..app import sources

        return getattr(sources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """Options every SOURCE/TARGET kind may need."""
    group = parser.add_argument_group("backend options")
    group.add_argument("--redis-key", help="hash key holding the Communications (redis:// sources and targets)")
    group.add_argument("--prefix-len", type=int, default=DEFAULT_PREFIX_LEN,
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
                       default=default_redis_client(),
                       help="Redis client: pipe (default; pipelined, coalesced, hiredis) or redis-py "
                       "(its pool; rediss:// always uses it); default from $AIOACCESS_REDIS_CLIENT")
    group.add_argument("--s3-client", default=DEFAULT_S3_CLIENT, choices=S3_CLIENTS,
                       help="S3 client: obstore (default; Rust object_store) or aiobotocore (the full botocore "
                       "stack); both take credentials from botocore's chain (environment, profiles, SSO, roles)")
    group.add_argument("--s3-list-ttl", type=float, default=5.0, metavar="SECONDS",
                       help="S3 sources: getCommunicationCount and getCommunicationIDs pages may be this many "
                       "seconds old (listings are cached, with cursors, so paging costs the page, not the "
                       "bucket); 0 lists on every call (default: 5)")
