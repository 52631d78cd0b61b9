"""The directory container's byte cache: each checked file version kept once, bounded in bytes, oldest out first."""

from __future__ import annotations

import os
import time

from .base import check_raw

__all__ = ["DEFAULT_CACHE_BYTES", "ByteCache"]

#: What identifies one version of a file: inode, size, mtime and ctime (ns).
_Version = tuple[int, int, int, int]

#: A version whose ctime (or mtime) is this recent is not kept while reads are confirmed with stat: a rewrite
#: within the file system's timestamp granularity (a clock tick; 2 s on FAT) could keep the same version.
_RACY_NS = 2_000_000_000

#: Bytes of file contents a directory container keeps by default.
DEFAULT_CACHE_BYTES = 128 << 20


def version(st: os.stat_result) -> _Version:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ByteCache:
    """Mixin of DirectoryBackedCommunicationContainer: ``_cache``, ``_checked`` and :attr:`raw_table`.

    ``_loop`` is not None while the tree is watched; then a plain file's cached bytes also go to :attr:`raw_table`.
    """

    _loop: object | None

    def _init_cache(self, cache_bytes: int) -> None:
        self.cache_bytes = cache_bytes
        self._max_entry = cache_bytes // 4
        self._cache: dict[str, tuple[_Version, bytes]] = {}  # id -> contents, oldest first
        self._cached_bytes = 0
        self._checked: dict[str, _Version] = {}
        #: id -> checked bytes of each cached file the watch covers; empty while not watching.
        self.raw_table: dict[str, bytes] = {}

    def _accept(self, comm_id: str, path: str, st: os.stat_result, data: bytes, fresh: bool) -> bytes:
        """Check ``data`` unless this version of the file was checked before; cache it if ``fresh`` and it fits."""
        v = version(st)
        # Only a plain file's changes all reach the watch on its directory.
        watched = self._loop is not None and st.st_nlink == 1 and not os.path.islink(path)
        if not watched and time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_NS:
            fresh = False  # confirmed with stat, where a rewrite this soon could look unchanged
        if self._checked.get(comm_id) != v:
            check_raw(comm_id, data)
            if fresh:
                self._checked[comm_id] = v
        if fresh and len(data) <= self._max_entry:
            self._forget(comm_id)
            while self._cached_bytes + len(data) > self.cache_bytes:
                self._forget(next(iter(self._cache)))  # oldest first
            self._cache[comm_id] = (v, data)
            self._cached_bytes += len(data)
            if watched:
                self.raw_table[comm_id] = data
        return data

    def _forget(self, comm_id: str) -> None:
        entry = self._cache.pop(comm_id, None)
        if entry is not None:
            self._cached_bytes -= len(entry[1])
            self.raw_table.pop(comm_id, None)

    def _forget_all(self) -> None:
        self.raw_table.clear()
        self._cache.clear()
        self._cached_bytes = 0
        self._checked.clear()
