"""Compact-protocol codec: the compiled ``_speedups`` when built, else pure Python.

``IMPLEMENTATION`` says which is active ("c" or "python").  Set the environment
variable ``AIOACCESS_PURE_PYTHON=1`` to force the pure-Python codec.

The compiled codec leaves decoded objects that cannot be part of a reference
cycle out of Python's cyclic garbage collector (see ``gc_track``).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import compact
from .errors import CodecError

if TYPE_CHECKING:
    from ..schema import Communication

__all__ = [
    "IMPLEMENTATION",
    "CodecError",
    "add_references_to_communication",
    "decode",
    "decode_struct",
    "encode",
    "encode_struct",
    "gc_track",
    "gc_untrack",
    "read_communication_from_buffer",
    "read_string_field",
    "skip",
    "to_tjson",
    "validate",
    "write_communication_to_buffer",
]


def _load() -> tuple[ModuleType, str]:
    if os.environ.get("AIOACCESS_PURE_PYTHON", "") not in ("", "0"):
        return compact, "python"
    try:
        from . import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return compact, "python"
    return _speedups, "c"


_impl, IMPLEMENTATION = _load()

decode = _impl.decode
encode = _impl.encode
skip = _impl.skip
validate = _impl.validate
read_string_field = _impl.read_string_field
to_tjson = _impl.to_tjson
gc_track = _impl.gc_track
gc_untrack = _impl.gc_untrack

from .references import add_references_to_communication  # noqa: E402 - needs _impl


def decode_struct(buf: bytes | bytearray | memoryview, cls: type) -> Any:
    """Decode a whole buffer holding one struct of thriftpy2 class ``cls``."""
    return decode(buf, cls, 0)[0]


def encode_struct(obj: Any) -> bytes:
    """Encode any thriftpy2 struct in the compact protocol."""
    return encode(obj)


def read_communication_from_buffer(buf: bytes | bytearray | memoryview, add_references: bool = True) -> Communication:
    """Deserialize compact bytes into a Communication (concrete-python's name and default).

    With ``add_references`` (the default, as in concrete-python), calls
    :func:`add_references_to_communication` on it.
    """
    from ..schema import Communication

    comm = decode(buf, Communication, 0)[0]
    if add_references:
        add_references_to_communication(comm)
    return comm


def write_communication_to_buffer(comm: Communication) -> bytes:
    """Serialize a Communication to compact bytes (concrete-python's name)."""
    return encode(comm)
