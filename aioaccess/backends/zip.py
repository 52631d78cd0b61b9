"""Communications stored one per member of a zip file."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import zipfile
import zlib
from collections.abc import Iterable, Sequence

from .base import CommunicationContainer, IdIndexed, check_raw
from .directory import DEFAULT_CACHE_BYTES

__all__ = ["ZipFileBackedCommunicationContainer"]

logger = logging.getLogger("aioaccess.backends.zip")

_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", None)
_LOCAL_HEADER = b"PK\x03\x04"


class ZipFileBackedCommunicationContainer(IdIndexed, CommunicationContainer):
    """Maps ids to members of the zip file at ``zipfile_path``.

    As in concrete-python, the id is the member's base name without its
    extension and the index of names is built when the container is made.
    Members are read (and inflated) in a worker thread, so the event loop
    never waits on the disk or on zlib; an uncompressed member already in the
    page cache is read in place with ``preadv(RWF_NOWAIT)`` instead.  Each
    member's CRC and bytes are checked on its first read, and up to
    ``cache_bytes`` of members are kept (the archive is read once, at open).
    """

    NAME = "zip"
    VALIDATE_ON_READ = False  # each member is checked once, on first read
    INLINE_SAFE = True

    def __init__(self, zipfile_path: str | os.PathLike[str],
                 comm_extensions: Iterable[str] = (".comm", ".concrete"), add_references: bool = True,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.add_references = add_references
        self.cache_bytes = cache_bytes
        self._cache: dict[str, bytes] = {}  # checked members, oldest first, up to cache_bytes
        self.raw_table = self._cache  # the zip is read once at open, as in concrete-python: never stale
        self._cached_bytes = 0
        self.zipfile_path = os.fspath(zipfile_path)
        self.comm_extensions = tuple(comm_extensions)
        self.zipfile = zipfile.ZipFile(self.zipfile_path, "r")
        self._lock = threading.Lock()  # one reader of the shared file handle at a time
        self.comm_id_to_filename: dict[str, str] = {}
        self._checked: set[str] = set()
        # comm_id -> (offset, size, CRC) of an uncompressed member's bytes in the file
        self._stored: dict[str, tuple[int, int, int]] = {}
        self._fd = os.open(self.zipfile_path, os.O_RDONLY | os.O_CLOEXEC) if _RWF_NOWAIT is not None else -1
        for info in self.zipfile.infolist():
            if info.is_dir():
                continue
            comm_id, extension = os.path.splitext(os.path.basename(info.filename))
            if extension in self.comm_extensions:
                self.comm_id_to_filename[comm_id] = info.filename
                self._stored.pop(comm_id, None)
                if self._fd >= 0 and info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 1:
                    head = os.pread(self._fd, 30, info.header_offset)
                    if len(head) == 30 and head[:4] == _LOCAL_HEADER:
                        start = info.header_offset + 30 + int.from_bytes(head[26:28], "little") + int.from_bytes(
                            head[28:30], "little")
                        self._stored[comm_id] = (start, info.file_size, info.CRC)
        logger.info("Indexed %d Communications in %s", len(self.comm_id_to_filename), self.zipfile_path)

    def _read_blocking(self, members: list[tuple[str, str]]) -> dict[str, bytes]:
        with self._lock:
            return {comm_id: self.zipfile.read(name) for comm_id, name in members}

    def _read_now(self, comm_id: str) -> bytes | None:
        """An uncompressed member's bytes if the page cache holds them, else None."""
        where = self._stored.get(comm_id)
        if where is None:
            return None
        start, size, crc = where
        buf = bytearray(size)
        try:
            n = os.preadv(self._fd, [buf], start, _RWF_NOWAIT)  # type: ignore[arg-type]
        except OSError:
            return None
        if n != size:
            return None
        data = bytes(buf)
        if comm_id not in self._checked and zlib.crc32(data) != crc:
            return None  # zipfile.read (in the thread) reports the bad CRC
        return data

    def _check(self, comm_id: str, data: bytes) -> bytes:
        if comm_id not in self._checked:
            check_raw(comm_id, data)
            self._checked.add(comm_id)
        if len(data) <= self.cache_bytes // 4 and comm_id not in self._cache:
            while self._cached_bytes + len(data) > self.cache_bytes:
                self._cached_bytes -= len(self._cache.pop(next(iter(self._cache))))
            self._cache[comm_id] = data
            self._cached_bytes += len(data)
        return data

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        slow: list[tuple[str, str]] = []
        for comm_id in ids:
            data = self._cache.get(comm_id)
            if data is not None:
                found[comm_id] = data
                continue
            name = self.comm_id_to_filename.get(comm_id)
            if name is None:
                continue
            data = self._read_now(comm_id)
            if data is None:
                slow.append((comm_id, name))
            else:
                found[comm_id] = self._check(comm_id, data)
        if slow:
            for comm_id, data in (await asyncio.to_thread(self._read_blocking, slow)).items():
                found[comm_id] = self._check(comm_id, data)
            found = {i: found[i] for i in ids if i in found}
        return found

    @property
    def id_index(self) -> dict[str, str]:
        return self.comm_id_to_filename

    async def aclose(self) -> None:
        """Close the zip file."""
        self.zipfile.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
