"""Reading a Communication file without blocking the event loop: in place when the page cache holds it."""

from __future__ import annotations

import gzip
import logging
import os
import zlib

from ..exceptions import CorruptCommunication

__all__ = ["gunzip", "read_blocking", "read_file_nowait", "read_versioned_nowait"]

logger = logging.getLogger("aioaccess.backends.directory")

_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", None)


def read_versioned_nowait(path: str) -> tuple[bytes, os.stat_result] | None:
    """The file's bytes and ``fstat`` if the page cache holds all of it; None otherwise (or without RWF_NOWAIT)."""
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
        return (bytes(buf), st) if n == st.st_size else None
    finally:
        os.close(fd)


def read_file_nowait(path: str) -> bytes | None:
    """Read a whole file only if it is already in the page cache; None when it is not.

    Uses ``preadv(RWF_NOWAIT)`` so the event loop never waits on the disk;
    callers fall back to a thread for anything this cannot answer.
    """
    got = read_versioned_nowait(path)
    return None if got is None else got[0]


def _read_file(path: str) -> tuple[bytes, os.stat_result]:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        return f.read(), st


def gunzip(comm_id: str, path: str, data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise CorruptCommunication(comm_id, f"{path} does not gunzip: {exc}") from exc


def read_blocking(paths: list[tuple[str, str]]) -> dict[str, tuple[bytes, os.stat_result]]:
    """(id, path) -> id: (bytes, stat), gunzipped for ``.gz``; for a worker thread. A file gone is logged."""
    found = {}
    for comm_id, path in paths:
        try:
            data, st = _read_file(path)
        except FileNotFoundError:
            logger.error("Communication file %s has gone", path)
            continue
        found[comm_id] = (gunzip(comm_id, path, data) if path.endswith(".gz") else data, st)
    return found
