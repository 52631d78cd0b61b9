"""Every Communication of one file, held in memory as compact bytes.

The file may hold a single Communication (``.comm``, ``.concrete``),
several concatenated, or a ``.tar``; any of these optionally gzipped or
bzip2ed (``.gz``, ``.tar.gz``, ``.tgz``, ``.bz2``).  The file is read and
split in a worker thread, each Communication is checked once, and reads
afterwards are dictionary lookups.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import io
import logging
import os
import tarfile
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from .. import codec
from ..codec import CodecError
from ..exceptions import AioaccessError, CorruptCommunication
from .base import CommunicationContainer

__all__ = ["DEFAULT_MAX_FILE_SIZE", "FileTooLarge", "MemoryBackedCommunicationContainer", "split_communications"]

logger = logging.getLogger("aioaccess.backends.memory")

#: concrete-python's default limit: 1 GiB.
DEFAULT_MAX_FILE_SIZE = 1 << 30


class FileTooLarge(AioaccessError, ValueError):
    """A Communications file larger than the container may load."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(f"will not load {path!r} into memory: the file's size ({_fmt(size)}) is larger than "
                         f"max_file_size ({_fmt(limit)}); raise max_file_size to load it")
        self.path = path
        self.size = size
        self.limit = limit


def _fmt(n: int) -> str:
    """``1.50 GiB (1610612736 bytes)``: human size with the exact count."""
    value, unit = float(n), "bytes"
    for next_unit in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, next_unit
    return f"{n} bytes" if unit == "bytes" else f"{value:.2f} {unit} ({n} bytes)"


def split_communications(buf: bytes, where: str = "buffer") -> Iterator[bytes]:
    """Yield each compact Communication of concatenated ``buf`` (checked with ``codec.skip``)."""
    pos, n = 0, len(buf)
    index = 0
    while pos < n:
        try:
            end = codec.skip(buf, pos)
        except CodecError as exc:
            raise CorruptCommunication(f"{where}#{index}", f"at byte {pos}: {exc}") from exc
        yield buf[pos:end]
        pos = end
        index += 1


def _decompress(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:3] == b"BZh":
        return bz2.decompress(data)
    return data


def _is_tar(data: bytes) -> bool:
    return len(data) >= 262 and data[257:262] == b"ustar"


def load_communications(path: str, max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> dict[str, bytes]:
    """Read ``path`` and return id -> compact bytes, in file order (blocking)."""
    size = os.path.getsize(path)
    if size > max_file_size:
        raise FileTooLarge(path, size, max_file_size)
    with open(path, "rb") as f:
        data = _decompress(f.read())
    pieces: list[tuple[str, bytes]] = []
    if _is_tar(data):
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                extracted = tar.extractfile(member)
                assert extracted is not None
                content = _decompress(extracted.read())
                pieces.extend((member.name, raw) for raw in split_communications(content, member.name))
    else:
        pieces.extend((path, raw) for raw in split_communications(data, os.path.basename(path)))
    comms: dict[str, bytes] = {}
    for where, raw in pieces:
        try:
            comm_id = codec.read_string_field(raw, 1)
        except CodecError as exc:
            raise CorruptCommunication(where, str(exc)) from exc
        if comm_id is None:
            raise CorruptCommunication(where, "the Communication has no id")
        if comm_id in comms:
            logger.warning("Communication id %r appears more than once in %s; keeping the last", comm_id, path)
        comms[comm_id] = raw
    return comms


class MemoryBackedCommunicationContainer(CommunicationContainer):
    """Maps ids to the Communications of one file, all loaded into memory.

    A file bigger than ``max_file_size`` is refused (``FileTooLarge``) before
    anything is read.  Loading runs in a worker thread on ``async with``, on
    ``await container.load()``, or lazily on first use.
    """

    NAME = "memory"
    VALIDATE_ON_READ = False  # every Communication was checked at load
    INLINE_SAFE = True

    def __init__(self, communications_file: str | os.PathLike[str],
                 max_file_size: int = DEFAULT_MAX_FILE_SIZE, add_references: bool = True) -> None:
        self.add_references = add_references
        self.communications_file = os.fspath(communications_file)
        self.max_file_size = max_file_size
        size = os.path.getsize(self.communications_file)  # FileNotFoundError early
        if size > max_file_size:
            raise FileTooLarge(self.communications_file, size, max_file_size)
        self.comm_id_to_raw: dict[str, bytes] | None = None
        self.raw_table: dict[str, bytes] = {}  # filled by load(); then the same dict as comm_id_to_raw
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, communications_file: str | os.PathLike[str],
                   max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> MemoryBackedCommunicationContainer:
        """Create the container and load the file."""
        container = cls(communications_file, max_file_size)
        await container.load()
        return container

    async def load(self) -> dict[str, bytes]:
        """Load the file (once) in a worker thread."""
        if self.comm_id_to_raw is not None:
            return self.comm_id_to_raw
        async with self._lock:
            if self.comm_id_to_raw is None:
                comms = await asyncio.to_thread(load_communications, self.communications_file, self.max_file_size)
                logger.info("Loaded %d Communications from %s", len(comms), self.communications_file)
                self.raw_table.update(comms)
                self.comm_id_to_raw = self.raw_table
        return self.comm_id_to_raw

    async def __aenter__(self) -> Any:
        await self.load()
        return self

    async def _get_raw_many(self, ids: Sequence[str]) -> dict[str, bytes]:
        comms = self.comm_id_to_raw if self.comm_id_to_raw is not None else await self.load()
        return {i: comms[i] for i in ids if i in comms}

    async def _iter_ids(self) -> AsyncIterator[str]:
        for comm_id in list(await self.load()):
            yield comm_id

    async def _count(self) -> int:
        return len(await self.load())

    async def _contains(self, comm_id: str) -> bool:
        return comm_id in await self.load()

    async def _ids(self, offset: int, count: int | None) -> list[str]:
        return list(await self.load())[offset:][:count]
