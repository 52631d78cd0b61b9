"""Where a corpus lives in Redis: concrete-python's single hash, or ``shards`` hash buckets, and its id index.

Single hash (``shards=0``, the default of ``redis://``; concrete-python's layout)
    field = Communication id (UTF-8), value = compact Thrift bytes, all in hash ``KEY``;
    id index: sorted set ``KEY:ids``.
Sharded (``shards=N``, N >= 1; the default of ``redis+cluster://``)
    bucket ``b = crc32(utf8(id)) mod N`` (zlib/IEEE CRC-32, unsigned); the Communication is
    field ``id`` of hash ``KEY:{b}`` (``b`` in decimal; ``{b}`` is a Redis Cluster hash tag,
    so a bucket's keys share one slot), id index: sorted set ``KEY:{b}:ids``.

An id index holds every id of its hash with score 0 (so it is ordered by id bytes);
aioaccess's stores update it in the same ``MULTI``/``EXEC`` as the hash.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable

__all__ = ["FieldNames", "RedisLayout"]

logger = logging.getLogger("aioaccess.backends.redis")


class RedisLayout:
    """The keys of corpus ``key`` under ``shards`` buckets (0: one hash)."""

    def __init__(self, key: str, shards: int = 0) -> None:
        if shards < 0:
            raise ValueError(f"shards must be >= 0, not {shards}")
        self.key = key
        self.shards = shards
        n = max(shards, 1)
        if shards:
            self.hash_keys = [f"{key}:{{{b}}}".encode() for b in range(n)]
        else:
            self.hash_keys = [key.encode()]
        self.index_keys = [k + b":ids" for k in self.hash_keys]

    def bucket(self, comm_id: str) -> int:
        """The bucket of ``comm_id`` (always 0 for a single hash)."""
        return zlib.crc32(comm_id.encode("utf-8")) % self.shards if self.shards else 0

    def group(self, ids: list[str] | tuple[str, ...]) -> dict[int, list[str]]:
        """``ids`` by bucket, each list in request order."""
        if not self.shards:
            return {0: list(ids)}
        groups: dict[int, list[str]] = {}
        for comm_id in ids:
            groups.setdefault(self.bucket(comm_id), []).append(comm_id)
        return groups

    def __repr__(self) -> str:
        return f"RedisLayout({self.key!r}, shards={self.shards})"


class FieldNames:
    """Hash field names (or index members) as Communication ids.

    A name that is not UTF-8 cannot be an id: it is skipped, with one warning, repeated
    only when the number skipped changes.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.reported = 0  # how many names the last warning reported

    def ids(self, names: Iterable[bytes | str]) -> list[str]:
        ids: list[str] = []
        bad: list[bytes] = []
        for name in names:
            if isinstance(name, str):
                ids.append(name)
                continue
            try:
                ids.append(name.decode("utf-8"))
            except UnicodeDecodeError:
                bad.append(name)
        if len(bad) != self.reported:
            self.reported = len(bad)
            if bad:
                logger.warning("Skipping %d field names of Redis hash %s that are not UTF-8 (so not Communication "
                               "ids), e.g. %r", len(bad), self.key, bad[0][:64])
        return ids
