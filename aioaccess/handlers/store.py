"""StoreCommunicationService handlers: check the id, write durably, then acknowledge."""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import ClassVar

from .. import __version__, codec
from ..backends.base import check_raw
from ..exceptions import BackendUnavailable, InvalidCommId
from ..schema import Communication, ServiceInfo

__all__ = ["DirectoryBackedStoreHandler", "StoreHandler", "validate_comm_id"]

#: Longest id any store accepts, in UTF-8 bytes.
MAX_ID_BYTES = 1024


def validate_comm_id(comm_id: object) -> str:
    """Return ``comm_id`` if every store can take it, else raise InvalidCommId naming the rule."""
    if not isinstance(comm_id, str):
        raise InvalidCommId(repr(comm_id), "the Communication has no id")
    if not comm_id:
        raise InvalidCommId(comm_id, "id is empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in comm_id):
        raise InvalidCommId(comm_id, "id contains NUL or control characters")
    if len(comm_id.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidCommId(comm_id, f"id is longer than {MAX_ID_BYTES} bytes")
    return comm_id


class StoreHandler:
    """Base of the store handlers: ``store`` and ``store_raw`` written once.

    A subclass implements ``_put_raw(comm_id, raw)``, which returns only once
    the bytes are durable in its backend; only then is the call acknowledged.
    """

    NAME: ClassVar[str] = "StoreHandler"

    async def about(self) -> ServiceInfo:
        return ServiceInfo(name=self.NAME, version=__version__)

    async def alive(self) -> bool:
        return True

    def check_id(self, comm_id: object) -> str:
        """Apply the id rules of this backend (stricter in subclasses)."""
        return validate_comm_id(comm_id)

    async def store(self, communication: Communication) -> None:
        """Store a Communication object (encoded once, here)."""
        comm_id = self.check_id(communication.id)
        await self._put_raw(comm_id, codec.write_communication_to_buffer(communication))

    async def store_raw(self, comm_id: str | None, raw: bytes) -> None:
        """Store a Communication's compact bytes exactly as they arrived."""
        comm_id = self.check_id(comm_id)
        await self._put_raw(comm_id, check_raw(comm_id, raw))

    async def _put_raw(self, comm_id: str, raw: bytes) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release the backend's resources."""


class DirectoryBackedStoreHandler(StoreHandler):
    """Writes each Communication to ``[ID].comm`` in ``store_path``, atomically.

    Ids that could name anything outside ``store_path`` are refused.  Bytes
    go to a temporary file in the same directory, are fsynced (unless
    ``fsync=False``) and renamed into place, so a reader or a crash never
    sees half a file and the last complete store of an id wins.
    """

    NAME = "DirectoryBackedStoreHandler"

    def __init__(self, store_path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.store_path = os.path.realpath(os.fspath(store_path))
        if not os.path.isdir(self.store_path):
            raise FileNotFoundError(f"no such directory: {self.store_path}")
        self.fsync = fsync
        umask = os.umask(0)
        os.umask(umask)
        self.file_mode = 0o666 & ~umask
        try:
            self.name_max = os.pathconf(self.store_path, "PC_NAME_MAX")
        except (OSError, ValueError):
            self.name_max = 255

    def check_id(self, comm_id: object) -> str:
        comm_id = validate_comm_id(comm_id)
        if "/" in comm_id or "\\" in comm_id or os.sep in comm_id:
            raise InvalidCommId(comm_id, "id contains a path separator")
        if ".." in comm_id:
            raise InvalidCommId(comm_id, "id contains '..'")
        if len((comm_id + ".comm").encode("utf-8")) > self.name_max:
            raise InvalidCommId(comm_id, f"'{{id}}.comm' is longer than the file-system limit of {self.name_max} bytes")
        return comm_id

    def path_for(self, comm_id: str) -> str:
        """The file an id is stored in; refuses anything outside ``store_path``."""
        path = os.path.realpath(os.path.join(self.store_path, comm_id + ".comm"))
        if os.path.commonpath([path, self.store_path]) != self.store_path or os.path.dirname(path) != self.store_path:
            raise InvalidCommId(comm_id, "id resolves outside the store directory")
        return path

    async def _put_raw(self, comm_id: str, raw: bytes) -> None:
        path = self.path_for(comm_id)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._write, path, raw)
        except OSError as exc:
            # Disk full, file too large, directory gone, I/O error: a backend fault (ServicesException
            # to the caller, who may retry), as with Redis and S3; the temp file is already removed.
            raise BackendUnavailable("directory", f"writing {os.path.basename(path)} failed: "
                                                  f"{exc.strerror or exc}") from exc

    def _write(self, path: str, raw: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=self.store_path)
        try:
            os.fchmod(fd, self.file_mode)
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        if self.fsync:
            dfd = os.open(self.store_path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
