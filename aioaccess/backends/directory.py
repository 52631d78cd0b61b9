"""Communications stored one per file under a directory tree."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence

from ..exceptions import CorruptCommunication
from .base import CommunicationContainer, check_raw

__all__ = ["DirectoryBackedCommunicationContainer", "read_file_nowait"]

logger = logging.getLogger("aioaccess.backends.directory")

_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", None)


#: What identifies one version of a file: inode, size, mtime and ctime (ns).
_Version = tuple[int, int, int, int]

#: Bytes of file contents a directory container keeps by default.
DEFAULT_CACHE_BYTES = 128 << 20


def _version(st: os.stat_result) -> _Version:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_versioned_nowait(path: str) -> tuple[bytes, _Version] | None:
    if _RWF_NOWAIT is None:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        buf = bytearray(st.st_size)
        try:
            n = os.preadv(fd, [buf], 0, _RWF_NOWAIT)
        except (BlockingIOError, OSError):
            return None
        return (bytes(buf), _version(st)) if n == st.st_size else None
    finally:
        os.close(fd)


def read_file_nowait(path: str) -> bytes | None:
    """Read a whole file only if it is already in the page cache; None when it is not.

    Uses ``preadv(RWF_NOWAIT)`` so the event loop never waits on the disk;
    callers fall back to a thread for anything this cannot answer.
    """
    got = _read_versioned_nowait(path)
    return None if got is None else got[0]


def _read_file(path: str) -> tuple[bytes, _Version]:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        return f.read(), _version(st)


def _gunzip(comm_id: str, path: str, data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise CorruptCommunication(comm_id, f"{path} does not gunzip: {exc}") from exc


class DirectoryBackedCommunicationContainer(CommunicationContainer):
    """Maps ids to files found (recursively) under ``directory_path``.

    As in concrete-python, the id is the file name without its extension,
    the index is built once at start, and ``.gz`` files are gunzipped.
    Reads never block the event loop: a file already in the page cache is
    read in place, anything else in a worker thread.

    Each version of a file (inode, size, mtime, ctime) is checked once, and up
    to ``cache_bytes`` of contents are kept: a read of a cached file costs one
    ``stat`` confirming the file is unchanged (0 turns the cache off).
    """

    NAME = "directory"
    VALIDATE_ON_READ = False  # checked once per file version, in _accept
    INLINE_SAFE = True

    def __init__(self, directory_path: str | os.PathLike[str],
                 comm_extensions: Iterable[str] = (".comm", ".concrete", ".gz"),
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.cache_bytes = cache_bytes
        self._cache: dict[str, tuple[_Version, bytes]] = {}
        self._cached_bytes = 0
        self._checked: dict[str, _Version] = {}
        self.directory_path = os.fspath(directory_path)
        if not os.path.isdir(self.directory_path):
            raise FileNotFoundError(f"no such directory: {self.directory_path}")
        self.comm_extensions = tuple(comm_extensions)
        self.comm_id_to_comm_path: dict[str, str] = {}
        for root, _dirs, files in os.walk(self.directory_path):
            for basename in files:
                comm_id, extension = os.path.splitext(basename)
                if extension in self.comm_extensions:
                    self.comm_id_to_comm_path[comm_id] = os.path.join(root, basename)
        logger.info("Indexed %d Communication files under %s", len(self.comm_id_to_comm_path), self.directory_path)

    def _read_now(self, comm_id: str, path: str) -> bytes | None:
        entry = self._cache.get(path)
        if entry is not None:
            try:
                unchanged = _version(os.stat(path)) == entry[0]
            except FileNotFoundError:
                unchanged = False
            if unchanged:
                return entry[1]
            self._forget(path)
        got = _read_versioned_nowait(path)
        if got is None:
            return None
        data, version = got
        if path.endswith(".gz"):
            if len(data) > 65536:
                return None  # leave big decompressions to the thread
            data = _gunzip(comm_id, path, data)
        return self._accept(comm_id, path, version, data)

    def _accept(self, comm_id: str, path: str, version: _Version, data: bytes) -> bytes:
        """Check ``data`` unless this version of the file was checked before; cache it if it fits."""
        if self._checked.get(path) != version:
            check_raw(comm_id, data)
            self._checked[path] = version
        if len(data) <= self.cache_bytes // 4:
            self._forget(path)
            while self._cached_bytes + len(data) > self.cache_bytes:
                self._forget(next(iter(self._cache)))  # oldest first
            self._cache[path] = (version, data)
            self._cached_bytes += len(data)
        return data

    def _forget(self, path: str) -> None:
        entry = self._cache.pop(path, None)
        if entry is not None:
            self._cached_bytes -= len(entry[1])

    @staticmethod
    def _read_blocking(paths: list[tuple[str, str]]) -> dict[str, tuple[_Version, bytes]]:
        found = {}
        for comm_id, path in paths:
            try:
                data, version = _read_file(path)
            except FileNotFoundError:
                logger.error("Communication file %s has gone", path)
                continue
            found[comm_id] = (version, _gunzip(comm_id, path, data) if path.endswith(".gz") else data)
        return found

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        slow: list[tuple[str, str]] = []
        for comm_id in ids:
            path = self.comm_id_to_comm_path.get(comm_id)
            if path is None:
                continue
            try:
                data = self._read_now(comm_id, path)
            except FileNotFoundError:
                logger.error("Communication file %s has gone", path)
                continue
            if data is None:
                slow.append((comm_id, path))
            else:
                found[comm_id] = data
        if slow:
            read = await asyncio.get_running_loop().run_in_executor(None, self._read_blocking, slow)
            for comm_id, path in slow:
                if comm_id in read:
                    version, data = read[comm_id]
                    found[comm_id] = self._accept(comm_id, path, version, data)
            found = {i: found[i] for i in ids if i in found}
        return found

    async def _iter_ids(self) -> AsyncIterator[str]:
        for comm_id in list(self.comm_id_to_comm_path):
            yield comm_id

    async def _count(self) -> int:
        return len(self.comm_id_to_comm_path)

    async def _contains(self, comm_id: str) -> bool:
        return comm_id in self.comm_id_to_comm_path

    async def _ids(self, offset: int, count: int | None) -> list[str]:
        return list(self.comm_id_to_comm_path)[offset:][:count]
