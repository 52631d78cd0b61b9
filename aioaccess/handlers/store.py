"""StoreCommunicationService handlers: check the id, write durably, then acknowledge."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import stat
import tempfile
import time
from typing import ClassVar

from .. import __version__, codec
from ..codec import CodecError
from ..codec.compact import missing_required
from ..exceptions import BackendUnavailable, InvalidCommId, InvalidCommunication
from ..schema import Communication, ServiceInfo

__all__ = ["DEFAULT_TEMP_MAX_AGE", "DirectoryBackedStoreHandler", "StoreHandler", "is_temp_name", "validate_comm_id"]

logger = logging.getLogger("aioaccess.handlers.store")

#: Longest id any store accepts, in UTF-8 bytes.
MAX_ID_BYTES = 1024

#: Seconds after which a DirectoryBackedStoreHandler's temporary file counts as a crash's leftover.
DEFAULT_TEMP_MAX_AGE = 3600.0

_TEMP_PREFIX, _TEMP_SUFFIX = ".tmp-", ".part"
# tempfile.mkstemp(prefix, suffix) names: 8 characters of tempfile's [a-z0-9_] between them.
_TEMP_NAME = re.compile(re.escape(_TEMP_PREFIX) + r"[a-z0-9_]{8}" + re.escape(_TEMP_SUFFIX))


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one DirectoryBackedStoreHandler gives its temporary files."""
    return _TEMP_NAME.fullmatch(name) is not None


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


class DirectoryBackedStoreHandler(StoreHandler):
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

    def __init__(self, store_path: str | os.PathLike[str], *, fsync: bool = True,
                 temp_max_age: float | None = DEFAULT_TEMP_MAX_AGE) -> None:
        self.store_path = os.path.realpath(os.fspath(store_path))
        if not os.path.isdir(self.store_path):
            raise FileNotFoundError(f"no such directory: {self.store_path}")
        if temp_max_age is not None and not temp_max_age >= 0:
            raise ValueError(f"temp_max_age must be >= 0 or None, not {temp_max_age}")
        self.fsync = fsync
        umask = os.umask(0)
        os.umask(umask)
        self.file_mode = 0o666 & ~umask
        try:
            self.name_max = os.pathconf(self.store_path, "PC_NAME_MAX")
        except (OSError, ValueError):
            self.name_max = 255
        if temp_max_age is not None:
            self.remove_stale_temp_files(temp_max_age)

    def remove_stale_temp_files(self, max_age: float = DEFAULT_TEMP_MAX_AGE) -> int:
        """Remove this handler's temporary files not modified for ``max_age`` seconds; return how many.

        Only regular files directly in ``store_path`` whose names match the temporary-file
        pattern exactly are removed (not symlinks, directories or look-alike names).
        """
        cutoff = time.time() - max_age
        removed = 0
        try:
            with os.scandir(self.store_path) as entries:
                for entry in entries:
                    if is_temp_name(entry.name) and self._remove_if_stale(entry, cutoff):
                        removed += 1
        except OSError as exc:
            logger.warning("Cannot list %s for leftover temporary files: %s", self.store_path, exc.strerror or exc)
        if removed:
            logger.info("Removed %d leftover temporary files older than %g s from %s", removed, max_age,
                        self.store_path)
        else:
            logger.debug("No leftover temporary files older than %g s in %s", max_age, self.store_path)
        return removed

    @staticmethod
    def _remove_if_stale(entry: os.DirEntry[str], cutoff: float) -> bool:
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_mtime > cutoff:
                return False
            os.unlink(entry.path)
        except FileNotFoundError:  # renamed into place, or removed by a sibling process
            return False
        except OSError as exc:
            logger.warning("Cannot remove leftover temporary file %s: %s", entry.path, exc.strerror or exc)
            return False
        return True

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
        fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self.store_path)
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
