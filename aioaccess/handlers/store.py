"""StoreCommunicationService handlers: check the id, write durably, then acknowledge."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import ClassVar

from .. import __version__, codec
from ..backends.directory_writer import DEFAULT_TEMP_MAX_AGE, DirectoryWriter, is_temp_name
from ..codec import CodecError
from ..codec.compact import missing_required
from ..exceptions import BackendUnavailable, InvalidCommId, InvalidCommunication
from ..schema import Communication, ServiceInfo

__all__ = ["DEFAULT_TEMP_MAX_AGE", "DirectoryBackedStoreHandler", "StoreHandler", "is_temp_name", "validate_comm_id"]

logger = logging.getLogger("aioaccess.handlers.store")

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
    try:
        size = len(comm_id.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: no file, key or wire string can hold it
        raise InvalidCommId(comm_id.encode("utf-8", "backslashreplace").decode(), "id is not valid Unicode") from None
    if size > MAX_ID_BYTES:
        raise InvalidCommId(comm_id, f"id is longer than {MAX_ID_BYTES} bytes")
    return comm_id


class StoreHandler:
    """Base of the store handlers: ``store`` and ``store_raw`` written once.

    A subclass implements ``_put_raw(comm_id, raw)``, which returns only once
    the bytes are durable in its backend; only then is the call acknowledged.
    """

    NAME: ClassVar[str] = "StoreHandler"
    #: ``store_raw`` refuses bytes that are not exactly one valid Communication, so the server may hand
    #: it a store call's argument bytes without scanning them first.
    checks_raw: ClassVar[bool] = True

    async def about(self) -> ServiceInfo:
        return ServiceInfo(name=self.NAME, version=__version__)

    async def alive(self) -> bool:
        return True

    def check_id(self, comm_id: object) -> str:
        """Apply the id rules of this backend (stricter in subclasses)."""
        return validate_comm_id(comm_id)

    async def store(self, communication: Communication) -> None:
        """Store a Communication object (encoded once, here)."""
        if communication is None:
            raise InvalidCommId("None", "no Communication was given")
        comm_id = self.check_id(communication.id)
        try:
            raw = codec.write_communication_to_buffer(communication)
        except CodecError as exc:
            reason = missing_required(communication)
            if reason is None:  # e.g. an int out of range: the caller's values do not encode
                raise
            raise InvalidCommunication(comm_id, reason) from exc
        await self._put_raw(comm_id, raw)

    async def store_raw(self, comm_id: str | None, raw: bytes) -> None:
        """Store a Communication's compact bytes exactly as they arrived, once ``codec.validate`` accepts them:
        what concrete-python can read back, every required field present at any depth."""
        comm_id = self.check_id(comm_id)
        try:
            end = codec.validate(raw, Communication, 0)
        except CodecError as exc:
            raise InvalidCommunication(comm_id, str(exc)) from exc
        if end != len(raw):
            raise InvalidCommunication(comm_id, f"{len(raw) - end} bytes follow the Communication")
        await self._put_raw(comm_id, raw)

    async def _put_raw(self, comm_id: str, raw: bytes) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release the backend's resources."""


class DirectoryBackedStoreHandler(DirectoryWriter, StoreHandler):
    """Writes each Communication to ``[ID].comm`` in ``store_path``, atomically.

    Ids that could name anything outside ``store_path`` are refused.  Bytes
    go to a temporary file in the same directory, are fsynced (unless
    ``fsync=False``) and renamed into place, so a reader or a crash never
    sees half a file and the last complete store of an id wins.

    A process killed mid-store leaves its temporary file behind; on
    construction, such files (regular files named ``.tmp-XXXXXXXX.part``)
    last modified over ``temp_max_age`` seconds ago are removed.  Younger ones
    are left alone: they may be stores in flight in another process sharing
    the directory (``--workers``).  ``temp_max_age=None`` removes nothing.
    """

    NAME = "DirectoryBackedStoreHandler"

    def check_id(self, comm_id: object) -> str:
        comm_id = validate_comm_id(comm_id)
        if "/" in comm_id or "\\" in comm_id or os.sep in comm_id:
            raise InvalidCommId(comm_id, "id contains a path separator")
        if ".." in comm_id:
            raise InvalidCommId(comm_id, "id contains '..'")
        if len((comm_id + ".comm").encode("utf-8")) > self.name_max:
            raise InvalidCommId(comm_id, f"'{{id}}.comm' is longer than the file-system limit of {self.name_max} bytes")
        return comm_id

    async def _put_raw(self, comm_id: str, raw: bytes) -> None:
        path = self.path_for(comm_id)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._write, path, raw)
        except OSError as exc:
            # Disk full, file too large, directory gone, I/O error: a backend fault (ServicesException
            # to the caller, who may retry), as with Redis and S3; the temp file is already removed.
            raise BackendUnavailable("directory", f"writing {os.path.basename(path)} failed: "
                                                  f"{exc.strerror or exc}") from exc
