"""Communications stored one per file under a directory tree."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence

from ..exceptions import CorruptCommunication
from .base import CommunicationContainer

__all__ = ["DirectoryBackedCommunicationContainer", "read_file_nowait"]

logger = logging.getLogger("aioaccess.backends.directory")

_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", None)


def read_file_nowait(path: str) -> bytes | None:
    """Read a whole file only if it is already in the page cache; None when it is not.

    Uses ``preadv(RWF_NOWAIT)`` so the event loop never waits on the disk;
    callers fall back to a thread for anything this cannot answer.
    """
    if _RWF_NOWAIT is None:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        buf = bytearray(size)
        try:
            n = os.preadv(fd, [buf], 0, _RWF_NOWAIT)
        except (BlockingIOError, OSError):
            return None
        return bytes(buf) if n == size else None
    finally:
        os.close(fd)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


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
    """

    NAME = "directory"

    def __init__(self, directory_path: str | os.PathLike[str],
                 comm_extensions: Iterable[str] = (".comm", ".concrete", ".gz")) -> None:
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
        data = read_file_nowait(path)
        if data is not None and path.endswith(".gz"):
            if len(data) > 65536:
                return None  # leave big decompressions to the thread
            data = _gunzip(comm_id, path, data)
        return data

    @staticmethod
    def _read_blocking(paths: list[tuple[str, str]]) -> dict[str, bytes]:
        found = {}
        for comm_id, path in paths:
            try:
                data = _read_file(path)
            except FileNotFoundError:
                logger.error("Communication file %s has gone", path)
                continue
            found[comm_id] = _gunzip(comm_id, path, data) if path.endswith(".gz") else data
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
            found.update(await asyncio.get_running_loop().run_in_executor(None, self._read_blocking, slow))
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
