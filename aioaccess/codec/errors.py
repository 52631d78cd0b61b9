"""Exceptions shared by the compact-protocol codecs.

Both the compiled codec (``aioaccess.codec._speedups``) and its pure-Python
twin (``aioaccess.codec.compact``) raise :class:`CodecError` for malformed or
hostile input (truncation, bad varints, impossible lengths, nesting too deep,
invalid UTF-8, ...) and for values that cannot be encoded (required field
missing, integer out of range).  Wrong Python *types* handed to ``encode``
raise :class:`TypeError` instead.
"""

from __future__ import annotations

__all__ = ["CodecError"]


class CodecError(ValueError):
    """Malformed Thrift data, or a value that cannot be encoded."""
