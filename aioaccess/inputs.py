"""Communications read from files, directories and archives for the clients that store them."""

from __future__ import annotations

import os
from collections.abc import Iterator

from . import codec
from .codec import CodecError
from .schema import Communication

__all__ = ["plain_total", "read_batch", "split_communications"]

_ARCHIVES = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz")


def split_communications(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """Split one file's bytes into ``(id, raw)`` Communications (files may hold several back to back)."""
    out = []
    pos = 0
    while pos < len(data):
        end = codec.validate(data, Communication, pos)  # what a store accepts: required fields at any depth
        raw = data[pos:end]
        comm_id = codec.read_string_field(raw, 1)
        if comm_id is None:
            raise CodecError(f"a Communication at byte {pos} has no id")
        out.append((comm_id, raw))
        pos = end
    if not out:
        raise CodecError("empty file")
    return out


def plain_total(paths: list[str]) -> int | None:
    """Bytes under ``paths`` when none is an archive (a progress bar's total), else None."""
    total = 0
    for path in paths:
        files = ([os.path.join(root, n) for n in names if not n.startswith(".")]
                 for root, _, names in os.walk(path)) if os.path.isdir(path) else [[path]]
        for group in files:
            for name in group:
                if name.lower().endswith(_ARCHIVES):
                    return None
                total += os.path.getsize(name)
    return total


def read_batch(inputs: Iterator[tuple[str, bytes]], n: int) -> list[tuple[str, bytes]]:
    """The next ``n`` (or fewer) items of ``inputs``."""
    return [item for _, item in zip(range(n), inputs, strict=False)]
