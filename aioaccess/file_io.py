"""concrete-python's ``concrete.util.file_io``, async: read and write Communications in files and archives.

``async for comm, filename in CommunicationReader(path)`` reads what concrete-python's
reader reads: a file of one or more concatenated Communications (plain, .gz or
.bz2), a .tar / .tar.gz / .tar.bz2, a .zip, or (``recursive=True``) a directory
of those.  Opening, inflating, splitting and decoding run in a worker thread,
a batch at a time, so a large archive never stalls the event loop; memory is
bounded by the largest file or archive member.  The writers are async context
managers with ``await writer.write(comm)``.
"""

from __future__ import annotations

import asyncio
import bz2
import collections
import gc
import gzip
import mimetypes
import os
import tarfile
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from . import codec
from .backends.memory import split_communications
from .file_writers import (
    CommunicationWriter,
    CommunicationWriterTar,
    CommunicationWriterTGZ,
    CommunicationWriterZip,
    write_communication_to_file,
)
from .schema import Communication

__all__ = [
    "CommunicationReader",
    "CommunicationWriter",
    "CommunicationWriterTGZ",
    "CommunicationWriterTar",
    "CommunicationWriterZip",
    "FileType",
    "iter_files",
    "read_communication_from_file",
    "write_communication_to_file",
]

#: Communications (and bytes) a reader decodes per trip to its worker thread, at most: small batches keep few
#: objects alive between GC pauses, which keeps the collections that follow them short.
BATCH_COUNT, BATCH_BYTES = 64, 16 << 10


class _FileTypes:
    """concrete-python's ``FileType``: ``FileType.TAR_GZ``, ``FileType.lookup("tar-gz")``, ``CHOICES``."""

    def __init__(self, *names: str) -> None:
        self.CHOICES = names
        for i, name in enumerate(names):
            setattr(self, name.replace("-", "_").upper(), i)

    def lookup(self, ft: int | str) -> int:
        if isinstance(ft, int):
            return ft
        if isinstance(ft, str) and ft in self.CHOICES:
            return self.CHOICES.index(ft)
        raise ValueError(f"unknown filetype {ft!r} (choices: {', '.join(self.CHOICES)})")


FileType: Any = _FileTypes("auto", "zip", "tar", "tar-gz", "tar-bz2", "stream", "stream-gz", "stream-bz2")
_TAR_MODES = {FileType.TAR: "r|", FileType.TAR_GZ: "r|gz", FileType.TAR_BZ2: "r|bz2"}
_STREAM_OPEN = {FileType.STREAM: open, FileType.STREAM_GZ: gzip.open, FileType.STREAM_BZ2: bz2.open}


def iter_files(filename: str, filetype: int | str = FileType.AUTO, recursive: bool = False,
               followlinks: bool = False, skip_hidden: bool = False) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, bytes)`` for each file, archive member or stream under ``filename`` (blocking).

    Names are archive member names for archives, the path otherwise (as concrete-python's
    reader reports them); compressed streams are inflated.  ``skip_hidden`` skips
    dot files in directories.
    """
    filetype = FileType.lookup(filetype)
    if filetype == FileType.AUTO and os.path.isdir(filename):
        if not recursive:
            raise ValueError("path is a directory but `recursive` is False")
        for root, dirs, files in os.walk(filename, followlinks=followlinks):
            dirs.sort()
            for name in sorted(files):
                if not (skip_hidden and name.startswith(".")):
                    yield from iter_files(os.path.join(root, name), recursive=True, followlinks=followlinks)
        return
    if filetype == FileType.AUTO:
        if tarfile.is_tarfile(filename):
            filetype = FileType.TAR
        elif zipfile.is_zipfile(filename):
            filetype = FileType.ZIP
        else:
            encoding = mimetypes.guess_type(filename)[1]
            filetype = {"gzip": FileType.STREAM_GZ, "bzip2": FileType.STREAM_BZ2}.get(encoding, FileType.STREAM)
    if filetype in _TAR_MODES:
        with tarfile.open(filename, "r|*" if filetype == FileType.TAR else _TAR_MODES[filetype]) as tar:
            for member in tar:
                base = os.path.basename(member.name)
                if member.isfile() and not base.startswith("._"):  # ._*: macOS tar attribute files
                    f = tar.extractfile(member)
                    assert f is not None
                    yield member.name, f.read()
                tar.members = []  # as concrete-python: O(1) memory over a long archive
    elif filetype == FileType.ZIP:
        with zipfile.ZipFile(filename) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, zf.read(info)
    elif filetype in _STREAM_OPEN:
        f: IO[bytes]
        with _STREAM_OPEN[filetype](filename, "rb") as f:
            yield filename, f.read()
    else:
        raise ValueError(f"unknown filetype {filetype}")


class CommunicationReader:
    """``async for (comm, filename) in CommunicationReader(path)``: every Communication under ``path``.

    Same arguments and defaults as concrete-python's (``add_references=True``
    adds :func:`~aioaccess.codec.add_references_to_communication`'s links).
    A file that holds something other than Communications raises
    ``CorruptCommunication`` when the reader reaches it.
    """

    def __init__(self, filename: str | os.PathLike[str], add_references: bool = True,
                 filetype: int | str = FileType.AUTO, recursive: bool = False, followlinks: bool = False) -> None:
        self.filename = os.fspath(filename)
        self.add_references = add_references
        self.filetype = FileType.lookup(filetype)
        if self.filetype == FileType.AUTO and os.path.isdir(self.filename) and not recursive:
            raise ValueError("path is a directory but `recursive` is False")
        self._raws = self._split(iter_files(self.filename, self.filetype, recursive, followlinks))
        self._ready: collections.deque[tuple[Any, str]] = collections.deque()
        self._lock = asyncio.Lock()
        self._done = False

    def __aiter__(self) -> CommunicationReader:
        return self

    async def __anext__(self) -> tuple[Communication, str]:
        async with self._lock:
            if not self._ready and not self._done:
                batch = await asyncio.to_thread(self._read_batch)
                self._ready.extend(batch)
                self._done = not batch
            if not self._ready:
                raise StopAsyncIteration
            return self._ready.popleft()

    @staticmethod
    def _split(files: Iterator[tuple[str, bytes]]) -> Iterator[tuple[bytes, str]]:
        for name, data in files:
            for raw in split_communications(data, name):
                yield raw, name

    def _read_batch(self) -> list[tuple[Any, str]]:  # in the worker thread
        out: list[tuple[Any, str]] = []
        size = 0
        # Decoding allocates thousands of objects per Communication.  Left on, the cyclic GC would run
        # full collections in this thread, holding the GIL (and so the event loop) for hundreds of ms
        # at a time; with it paused per batch, reading is also ~5x faster.  (The objects are freed by
        # reference counting; the reference cycles add_references makes are collected later.)
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._decode_batch(out, size)
        finally:
            if paused:
                gc.enable()

    def _decode_batch(self, out: list[tuple[Any, str]], size: int) -> list[tuple[Any, str]]:
        for raw, name in self._raws:
            comm = codec.read_communication_from_buffer(raw, add_references=self.add_references)
            out.append((comm, name))
            size += len(raw)
            if len(out) >= BATCH_COUNT or size >= BATCH_BYTES:
                break
        return out

    async def aclose(self) -> None:
        """Close the file or archive being read."""
        async with self._lock:
            self._done = True
            self._ready.clear()
            await asyncio.to_thread(self._raws.close)

    async def __aenter__(self) -> CommunicationReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def read_communication_from_file(communication_filename: str | os.PathLike[str],
                                       add_references: bool = True) -> Communication:
    """The Communication in a file (compact protocol), read in a worker thread."""

    def read() -> Communication:
        with open(communication_filename, "rb") as f:
            return codec.read_communication_from_buffer(f.read(), add_references=add_references)

    return await asyncio.to_thread(read)
