"""concrete-python's file writers, async: ``async with CommunicationWriterTGZ(path) as w: await w.write(comm)``.

Each writer opens, writes and closes in a worker thread.  Re-exported by :mod:`aioaccess.file_io`.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import tarfile
import time
import zipfile
from types import TracebackType
from typing import Any

from . import codec
from .schema import Communication

__all__ = [
    "CommunicationWriter",
    "CommunicationWriterTGZ",
    "CommunicationWriterTar",
    "CommunicationWriterZip",
    "write_communication_to_file",
]


async def write_communication_to_file(communication: Communication,
                                      communication_filename: str | os.PathLike[str]) -> None:
    """Write a Communication to a file (compact protocol) in a worker thread."""
    raw = codec.write_communication_to_buffer(communication)

    def write() -> None:
        with open(communication_filename, "wb") as f:
            f.write(raw)

    await asyncio.to_thread(write)


class _Writer:
    """Shared by the writers: ``async with``, ``await open(name)``, ``await close()``; I/O in a worker thread."""

    _file: Any = None

    def __init__(self, filename: str | os.PathLike[str] | None = None) -> None:
        self._filename = filename

    async def open(self, filename: str | os.PathLike[str]) -> None:
        """Open ``filename`` for writing."""
        self._file = await asyncio.to_thread(self._open, os.fspath(filename))

    def _open(self, filename: str) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        """Close the file (flushing compressed data)."""
        file, self._file = self._file, None
        if file is not None:
            await asyncio.to_thread(file.close)

    async def __aenter__(self) -> Any:
        if self._file is None and self._filename is not None:
            await self.open(self._filename)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def _check_open(self) -> Any:
        if self._file is None:
            raise ValueError("the writer is not open: use `async with` or `await writer.open(filename)`")
        return self._file


class CommunicationWriter(_Writer):
    """``async with CommunicationWriter("foo.concrete") as w: await w.write(comm)``: concatenated Communications."""

    def __init__(self, filename: str | os.PathLike[str] | None = None, gzip: bool = False) -> None:
        super().__init__(filename)
        self.gzip = gzip

    def _open(self, filename: str) -> Any:
        return gzip.open(filename, "wb") if self.gzip else open(filename, "wb")

    async def write(self, comm: Communication) -> None:
        await asyncio.to_thread(self._check_open().write, codec.write_communication_to_buffer(comm))


class CommunicationWriterTar(_Writer):
    """Communications as members of a .tar (``gzip=True``: .tar.gz), named ``ID.concrete`` by default."""

    def __init__(self, tar_filename: str | os.PathLike[str] | None = None, gzip: bool = False) -> None:
        super().__init__(tar_filename)
        self.gzip = gzip

    def _open(self, filename: str) -> Any:
        return tarfile.open(filename, "w:gz" if self.gzip else "w")

    async def write(self, comm: Communication, comm_filename: str | None = None) -> None:
        await self.write_raw(codec.write_communication_to_buffer(comm), comm_filename)

    async def write_raw(self, raw: bytes, comm_filename: str | None = None) -> None:
        """Add a Communication given as compact bytes (named ``ID.concrete`` by default)."""
        info = tarfile.TarInfo(comm_filename if comm_filename is not None else _member_name(raw))
        info.size, info.mode, info.mtime = len(raw), 0o644, time.time()
        info.uid, info.gid, info.uname, info.gname = _owner()
        await asyncio.to_thread(self._check_open().addfile, info, io.BytesIO(raw))


class CommunicationWriterTGZ(CommunicationWriterTar):
    """A :class:`CommunicationWriterTar` writing a .tar.gz."""

    def __init__(self, tar_filename: str | os.PathLike[str] | None = None) -> None:
        super().__init__(tar_filename, gzip=True)


class CommunicationWriterZip(_Writer):
    """Communications as members of a .zip, named ``ID.concrete`` by default."""

    def _open(self, filename: str) -> Any:
        return zipfile.ZipFile(filename, "w")

    async def write(self, comm: Communication, comm_filename: str | None = None) -> None:
        await self.write_raw(codec.write_communication_to_buffer(comm), comm_filename)

    async def write_raw(self, raw: bytes, comm_filename: str | None = None) -> None:
        """Add a Communication given as compact bytes (named ``ID.concrete`` by default)."""
        name = comm_filename if comm_filename is not None else _member_name(raw)
        await asyncio.to_thread(self._check_open().writestr, name, raw)


def _member_name(raw: bytes) -> str:
    return f"{codec.read_string_field(raw, 1)}.concrete"


def _owner() -> tuple[int, int, str, str]:
    """uid, gid, user and group names for tar members, as concrete-python sets them."""
    if os.name == "nt":
        return 0, 0, "", ""
    import grp
    import pwd

    uid, gid = os.getuid(), os.getgid()
    try:
        return uid, gid, pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
    except KeyError:
        return uid, gid, "", ""
