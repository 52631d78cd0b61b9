"""Pure-Python compact protocol: a validating scanner plus thriftpy2's codec.

The scanner walks compact bytes without building objects (``skip``,
``read_string_field``); ``decode``/``encode`` use thriftpy2's pure-Python
``TCompactProtocol`` after the scanner has bounded the input.  The compiled
``_speedups`` module has the same functions with the same signatures.
"""

from __future__ import annotations

import gc
import json
from typing import Any

from thriftpy2.protocol.apache_json import TApacheJSONProtocol
from thriftpy2.protocol.compact import TCompactProtocol
from thriftpy2.thrift import TType
from thriftpy2.transport import TMemoryBuffer

from .errors import CodecError

_T_STRUCT, _T_MAP, _T_SET, _T_LIST = TType.STRUCT, TType.MAP, TType.SET, TType.LIST

__all__ = ["MAX_DEPTH", "decode", "encode", "gc_track", "gc_untrack", "read_string_field", "skip", "to_tjson"]

#: Deepest nesting of structs and containers any codec accepts.
MAX_DEPTH = 64

# Compact wire types.
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise CodecError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise CodecError("varint longer than 10 bytes")


def _skip_value(buf: memoryview, pos: int, end: int, ctype: int, depth: int) -> int:
    if ctype in (_TRUE, _FALSE):
        # Only reached for bools inside containers: one byte each.
        if pos >= end:
            raise CodecError("truncated bool")
        return pos + 1
    if ctype == _BYTE:
        if pos >= end:
            raise CodecError("truncated byte")
        return pos + 1
    if ctype in (_I16, _I32, _I64):
        return _varint(buf, pos, end)[1]
    if ctype == _DOUBLE:
        if pos + 8 > end:
            raise CodecError("truncated double")
        return pos + 8
    if ctype == _BINARY:
        size, pos = _varint(buf, pos, end)
        if size > end - pos:
            raise CodecError(f"string length {size} exceeds the {end - pos} bytes left")
        return pos + size
    if ctype == _STRUCT:
        return _skip_struct(buf, pos, end, depth + 1)
    if ctype in (_LIST, _SET):
        if depth + 1 > MAX_DEPTH:
            raise CodecError(f"nesting deeper than {MAX_DEPTH}")
        if pos >= end:
            raise CodecError("truncated list header")
        head = buf[pos]
        pos += 1
        size, etype = head >> 4, head & 0x0F
        if size == 15:
            size, pos = _varint(buf, pos, end)
        if size > end - pos:
            raise CodecError(f"list of {size} elements exceeds the {end - pos} bytes left")
        for _ in range(size):
            pos = _skip_value(buf, pos, end, etype, depth + 1)
        return pos
    if ctype == _MAP:
        if depth + 1 > MAX_DEPTH:
            raise CodecError(f"nesting deeper than {MAX_DEPTH}")
        size, pos = _varint(buf, pos, end)
        if size == 0:
            return pos
        if pos >= end:
            raise CodecError("truncated map header")
        if 2 * size > end - pos:
            raise CodecError(f"map of {size} entries exceeds the {end - pos} bytes left")
        kv = buf[pos]
        pos += 1
        ktype, vtype = kv >> 4, kv & 0x0F
        for _ in range(size):
            pos = _skip_value(buf, pos, end, ktype, depth + 1)
            pos = _skip_value(buf, pos, end, vtype, depth + 1)
        return pos
    raise CodecError(f"unknown compact type {ctype}")


def _field_header(buf: memoryview, pos: int, end: int, last_fid: int) -> tuple[int, int, int]:
    """Return (compact type, field id, position after the header); type 0 is STOP."""
    if pos >= end:
        raise CodecError("truncated struct: no STOP")
    head = buf[pos]
    pos += 1
    ctype = head & 0x0F
    if ctype == _STOP:
        return _STOP, 0, pos
    delta = head >> 4
    if delta:
        return ctype, last_fid + delta, pos
    raw, pos = _varint(buf, pos, end)
    return ctype, (raw >> 1) ^ -(raw & 1), pos


def _skip_struct(buf: memoryview, pos: int, end: int, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise CodecError(f"nesting deeper than {MAX_DEPTH}")
    fid = 0
    while True:
        ctype, fid, pos = _field_header(buf, pos, end, fid)
        if ctype == _STOP:
            return pos
        if ctype not in (_TRUE, _FALSE):  # a bool field's value is its type
            pos = _skip_value(buf, pos, end, ctype, depth)


def skip(buf: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """Validate one compact struct at ``offset``; return the offset just past it."""
    view = memoryview(buf)
    if offset < 0 or offset > len(view):
        raise CodecError(f"offset {offset} outside a {len(view)}-byte buffer")
    return _skip_struct(view, offset, len(view), 1)


def read_string_field(buf: bytes | bytearray | memoryview, field_id: int, offset: int = 0) -> str | None:
    """Return top-level string field ``field_id`` of the struct at ``offset``, or None if absent."""
    view = memoryview(buf)
    end = len(view)
    pos, fid = offset, 0
    while True:
        ctype, fid, pos = _field_header(view, pos, end, fid)
        if ctype == _STOP:
            return None
        if fid == field_id and ctype == _BINARY:
            size, pos = _varint(view, pos, end)
            if size > end - pos:
                raise CodecError(f"string length {size} exceeds the {end - pos} bytes left")
            try:
                return bytes(view[pos : pos + size]).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CodecError(f"field {field_id} is not valid UTF-8") from exc
        if ctype not in (_TRUE, _FALSE):
            pos = _skip_value(view, pos, end, ctype, 1)


def decode(buf: bytes | bytearray | memoryview, cls: type, offset: int = 0) -> tuple[Any, int]:
    """Decode one struct of thriftpy2 class ``cls`` at ``offset``; return (object, end offset)."""
    end = skip(buf, offset)
    # strict_decode: invalid UTF-8 raises (thriftpy2 would hand back bytes), as the C codec does.
    proto = TCompactProtocol(TMemoryBuffer(bytes(memoryview(buf)[offset:end])), strict_decode=True)
    obj = cls()
    # No collection while the tree is built (they would traverse it again and again); the
    # objects stay tracked, as only the compiled codec can leave them out of the collector.
    paused = gc.isenabled()
    gc.disable()
    try:
        proto.read_struct(obj)
    except UnicodeDecodeError as exc:
        raise CodecError(f"invalid UTF-8 in a {cls.__name__}") from exc
    except Exception as exc:  # thriftpy2 raises assorted types on bad input
        raise CodecError(f"cannot decode {cls.__name__}: {exc}") from exc
    finally:
        if paused:
            gc.enable()
    return obj, end


def _check_value(spec: Any, value: Any, path: str, depth: int) -> None:
    """Check required fields inside ``value`` of type ``spec`` (a ttype or (ttype, sub-spec))."""
    if value is None or not isinstance(spec, tuple):
        return
    if depth > MAX_DEPTH:
        raise CodecError(f"{path}: nesting deeper than {MAX_DEPTH}")
    ttype, sub = spec[0], spec[1]
    if ttype == _T_STRUCT:
        _check_required(value, path, depth + 1)
    elif ttype in (_T_LIST, _T_SET):
        for i, item in enumerate(value):
            _check_value(sub, item, f"{path}[{i}]", depth + 1)
    elif ttype == _T_MAP:
        for k, v in value.items():
            _check_value(sub[0], k, f"{path}.key", depth + 1)
            _check_value(sub[1], v, f"{path}[{k!r}]", depth + 1)


def _check_required(obj: Any, path: str, depth: int = 1) -> None:
    for field in obj.thrift_spec.values():
        name, required = field[1], field[-1]
        value = getattr(obj, name, None)
        if value is None:
            if required is True:
                raise CodecError(f"{path}.{name}: required field is None")
        elif len(field) == 4:
            _check_value((field[0], field[2]), value, f"{path}.{name}", depth)


def encode(obj: Any) -> bytes:
    """Encode a thriftpy2 struct in the compact protocol, fields in id order.

    A required field left None raises CodecError, as in the compiled codec.
    """
    _check_required(obj, type(obj).__name__)
    buf = TMemoryBuffer()
    TCompactProtocol(buf).write_struct(obj)
    return buf.getvalue()


def to_tjson(buf: bytes | bytearray | memoryview, cls: type, offset: int = 0) -> tuple[bytes, int]:
    """Transcode one compact struct into Apache TJSONProtocol struct text."""
    obj, end = decode(buf, cls, offset)
    doc = TApacheJSONProtocol(None)._thrift_to_dict(obj)
    return json.dumps(doc, separators=(",", ":")).encode("utf-8"), end



def gc_track(obj: Any) -> Any:
    """Return ``obj``: what this codec builds stays under the cyclic GC (the compiled codec's twin re-tracks)."""
    return obj


def gc_untrack(obj: Any) -> Any:
    """Return ``obj`` unchanged: only the compiled codec can take objects out of the cyclic GC."""
    return obj
