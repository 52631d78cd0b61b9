"""Communications stored one per member of a zip file."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import zipfile
from collections.abc import AsyncIterator, Iterable, Sequence

from .base import CommunicationContainer

__all__ = ["ZipFileBackedCommunicationContainer"]

logger = logging.getLogger("aioaccess.backends.zip")


class ZipFileBackedCommunicationContainer(CommunicationContainer):
    """Maps ids to members of the zip file at ``zipfile_path``.

    As in concrete-python, the id is the member's base name without its
    extension and the index of names is built when the container is made.
    Members are read (and inflated) in a worker thread, so the event loop
    never waits on the disk or on zlib.
    """

    NAME = "zip"

    def __init__(self, zipfile_path: str | os.PathLike[str],
                 comm_extensions: Iterable[str] = (".comm", ".concrete")) -> None:
        self.zipfile_path = os.fspath(zipfile_path)
        self.comm_extensions = tuple(comm_extensions)
        self.zipfile = zipfile.ZipFile(self.zipfile_path, "r")
        self._lock = threading.Lock()  # one reader of the shared file handle at a time
        self.comm_id_to_filename: dict[str, str] = {}
        for info in self.zipfile.infolist():
            if info.is_dir():
                continue
            comm_id, extension = os.path.splitext(os.path.basename(info.filename))
            if extension in self.comm_extensions:
                self.comm_id_to_filename[comm_id] = info.filename
        logger.info("Indexed %d Communications in %s", len(self.comm_id_to_filename), self.zipfile_path)

    def _read_blocking(self, members: list[tuple[str, str]]) -> dict[str, bytes]:
        with self._lock:
            return {comm_id: self.zipfile.read(name) for comm_id, name in members}

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        members = [(i, self.comm_id_to_filename[i]) for i in ids if i in self.comm_id_to_filename]
        if not members:
            return {}
        return await asyncio.to_thread(self._read_blocking, members)

    async def _iter_ids(self) -> AsyncIterator[str]:
        for comm_id in list(self.comm_id_to_filename):
            yield comm_id

    async def _count(self) -> int:
        return len(self.comm_id_to_filename)

    async def _contains(self, comm_id: str) -> bool:
        return comm_id in self.comm_id_to_filename

    async def _ids(self, offset: int, count: int | None) -> list[str]:
        return list(self.comm_id_to_filename)[offset:][:count]

    async def aclose(self) -> None:
        """Close the zip file."""
        self.zipfile.close()
