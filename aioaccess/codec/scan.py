"""Pure-Python scanner of compact bytes: ``skip`` and ``validate``, the twins of ``_speedups``'.

Both walk the bytes without building objects and accept and reject exactly what
the compiled codec does (same varint widths and ranges, length bounds, types
and nesting limit).  ``validate`` also follows a thriftpy2 class's schema: it
accepts exactly what ``decode`` accepts and requires every struct, at any
depth, to hold its required fields.
"""

from __future__ import annotations

from typing import Any

from thriftpy2.thrift import TType

from .errors import CodecError

__all__ = ["MAX_DEPTH", "decodable", "field_header", "skip", "skip_value", "validate", "varint"]

#: Deepest nesting of structs and containers any codec accepts.
MAX_DEPTH = 64

# Compact wire types.
_STOP, _TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(13)
# (varint bytes, largest value) of each integer kind, as in Apache Thrift's compact reader.
I16, I32, I64, SIZE = (3, 0xFFFF), (5, 0xFFFFFFFF), (10, 2**64 - 1), (5, 0x7FFFFFFF)
_INT_LIMITS = {_I16: I16, _I32: I32, _I64: I64}
_SCALARS = frozenset((TType.BYTE, TType.I16, TType.I32, TType.I64, TType.DOUBLE, TType.BINARY))
_CTYPE = {TType.BOOL: _TRUE, TType.BYTE: _BYTE, TType.I16: _I16, TType.I32: _I32, TType.I64: _I64,
          TType.DOUBLE: _DOUBLE, TType.STRING: _BINARY, TType.BINARY: _BINARY, TType.LIST: _LIST,
          TType.SET: _SET, TType.MAP: _MAP, TType.STRUCT: _STRUCT}


def varint(buf: memoryview, pos: int, end: int, limits: tuple[int, int] = I64) -> tuple[int, int]:
    """Read an unsigned varint of at most ``limits`` = (bytes, largest value); return (value, new pos)."""
    if pos < end and buf[pos] < 0x80:  # one byte: in range for every kind
        return buf[pos], pos + 1
    maxbytes, maxval = limits
    result = 0
    for i in range(maxbytes):
        if pos >= end:
            raise CodecError(f"truncated input at offset {pos}")
        b = buf[pos]
        pos += 1
        if i == 9 and b > 1:
            raise CodecError(f"varint overflows 64 bits at offset {pos - 1}")
        result |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if result > maxval:
                raise CodecError(f"varint out of range at offset {pos - 1}")
            return result, pos
    raise CodecError(f"varint longer than {maxbytes} bytes at offset {pos}")


def _need(pos: int, n: int, end: int) -> int:
    if n > end - pos:
        raise CodecError(f"truncated input at offset {pos}")
    return pos + n


def _list_header(buf: memoryview, pos: int, end: int) -> tuple[int, int, int]:
    head = buf[_need(pos, 1, end) - 1]
    pos += 1
    size, etype = head >> 4, head & 0x0F
    if size == 15:
        size, pos = varint(buf, pos, end, SIZE)
    if etype > _STRUCT or (etype == _STOP and size):
        raise CodecError(f"invalid list element type at offset {pos}")
    if size > end - pos:
        raise CodecError(f"list length exceeds the remaining input at offset {pos}")
    return size, etype, pos


def _map_header(buf: memoryview, pos: int, end: int) -> tuple[int, int, int, int]:
    size, pos = varint(buf, pos, end, SIZE)
    if size == 0:
        return 0, _STOP, _STOP, pos
    kv = buf[_need(pos, 1, end) - 1]
    ktype, vtype = kv >> 4, kv & 0x0F
    if not (0 < ktype <= _STRUCT and 0 < vtype <= _STRUCT):
        raise CodecError(f"invalid map key/value type at offset {pos}")
    pos += 1
    if size > (end - pos) // 2:
        raise CodecError(f"map length exceeds the remaining input at offset {pos}")
    return size, ktype, vtype, pos


def skip_value(buf: memoryview, pos: int, end: int, ctype: int, depth: int) -> int:
    """Skip one value of compact type ``ctype`` (bools inside containers take a byte)."""
    if ctype in _INT_LIMITS:
        return varint(buf, pos, end, _INT_LIMITS[ctype])[1]
    if ctype in (_TRUE, _FALSE, _BYTE):
        return _need(pos, 1, end)
    if ctype == _DOUBLE:
        return _need(pos, 8, end)
    if ctype == _BINARY:
        size, pos = varint(buf, pos, end, SIZE)
        return _need(pos, size, end)
    if ctype == _STRUCT:
        return _skip_struct(buf, pos, end, depth + 1)
    if ctype in (_LIST, _SET):
        if depth + 1 > MAX_DEPTH:
            raise CodecError(f"nesting too deep at offset {pos}")
        size, etype, pos = _list_header(buf, pos, end)
        for _ in range(size):
            pos = skip_value(buf, pos, end, etype, depth + 1)
        return pos
    if ctype == _MAP:
        if depth + 1 > MAX_DEPTH:
            raise CodecError(f"nesting too deep at offset {pos}")
        size, ktype, vtype, pos = _map_header(buf, pos, end)
        for _ in range(size):
            pos = skip_value(buf, pos, end, ktype, depth + 1)
            pos = skip_value(buf, pos, end, vtype, depth + 1)
        return pos
    raise CodecError(f"invalid type at offset {pos}")


def field_header(buf: memoryview, pos: int, end: int, last_fid: int) -> tuple[int, int, int]:
    """Return (compact type, field id, position after the header); type 0 is STOP."""
    head = buf[_need(pos, 1, end) - 1]
    ctype = head & 0x0F
    if ctype == _STOP:
        return _STOP, 0, pos + 1
    if ctype > _STRUCT:
        raise CodecError(f"invalid field type at offset {pos}")
    pos += 1
    if head >> 4:
        return ctype, last_fid + (head >> 4), pos
    raw, pos = varint(buf, pos, end, I16)
    return ctype, (raw >> 1) ^ -(raw & 1), pos


def _skip_struct(buf: memoryview, pos: int, end: int, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise CodecError(f"nesting too deep at offset {pos}")
    fid = 0
    while True:
        ctype, fid, pos = field_header(buf, pos, end, fid)
        if ctype == _STOP:
            return pos
        if ctype not in (_TRUE, _FALSE):  # a bool field's value is its type
            pos = skip_value(buf, pos, end, ctype, depth)


def _view(buf: bytes | bytearray | memoryview, offset: int) -> memoryview:
    view = memoryview(buf).cast("B")
    if not 0 <= offset <= len(view):
        raise CodecError(f"offset {offset} out of range for a buffer of {len(view)} bytes")
    return view


def skip(buf: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """Validate one compact struct at ``offset`` (structure only); return the offset just past it."""
    view = _view(buf, offset)
    return _skip_struct(view, offset, len(view), 1)


# -- validate: the same walk, following a schema ------------------------------------------------
# A type is (ttype, compact type, sub): sub is the struct's fields, the element type, or (key, value).
_STRUCTS: dict[type, dict[int, tuple[str, bool, tuple[int, int, Any]]]] = {}


def _type(ttype: int, extra: Any) -> tuple[int, int, Any]:
    if ttype == TType.STRUCT:
        return ttype, _STRUCT, extra
    if ttype in (TType.LIST, TType.SET):
        return ttype, _CTYPE[ttype], _type(*extra) if isinstance(extra, tuple) else _type(extra, None)
    if ttype == TType.MAP:
        k, v = ((e if isinstance(e, tuple) else (e, None)) for e in extra)
        return ttype, _MAP, (_type(*k), _type(*v))
    return ttype, _CTYPE[ttype], None


def _fields(cls: type) -> dict[int, tuple[str, bool, tuple[int, int, Any]]]:
    fields = _STRUCTS.get(cls)
    if fields is None:
        fields = {fid: (f[1], f[-1] is True, _type(f[0], f[2] if len(f) == 4 else None))
                  for fid, f in cls.thrift_spec.items()}  # type: ignore[attr-defined]
        _STRUCTS[cls] = fields
    return fields


def _matches(t: tuple[int, int, Any], ctype: int) -> bool:
    return ctype == t[1] or (t[0] == TType.BOOL and ctype == _FALSE)


def _validate_value(buf: memoryview, pos: int, end: int, t: tuple[int, int, Any], depth: int, req: bool) -> int:
    ttype, ctype, sub = t
    if ttype == TType.STRUCT:
        return _validate_struct(buf, pos, end, sub, depth + 1, req)
    if ttype == TType.STRING:
        size, start = varint(buf, pos, end, SIZE)
        pos = _need(start, size, end)
        try:
            bytes(buf[start:pos]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError(f"invalid UTF-8 in string at offset {start + exc.start}") from None
        return pos
    if ttype in (TType.LIST, TType.SET, TType.MAP):
        if depth + 1 > MAX_DEPTH:
            raise CodecError(f"nesting too deep at offset {pos}")
        if ttype == TType.MAP:
            size, ktype, vtype, pos = _map_header(buf, pos, end)
            if size and not (_matches(sub[0], ktype) and _matches(sub[1], vtype)):
                raise CodecError(f"map key/value types do not match the schema at offset {pos - 1}")
            for _ in range(size):
                pos = _validate_value(buf, pos, end, sub[0], depth + 1, req)
                pos = _validate_value(buf, pos, end, sub[1], depth + 1, req)
            return pos
        size, etype, pos = _list_header(buf, pos, end)
        if size and not _matches(sub, etype):
            raise CodecError(f"list element type does not match the schema at offset {pos}")
        for _ in range(size):
            pos = _validate_value(buf, pos, end, sub, depth + 1, req)
        return pos
    return skip_value(buf, pos, end, ctype, depth)  # scalars; a bool in a container is one byte


def _validate_struct(buf: memoryview, pos: int, end: int, cls: type, depth: int, req: bool) -> int:
    if depth > MAX_DEPTH:
        raise CodecError(f"nesting too deep at offset {pos}")
    fields = _fields(cls)
    seen = set()
    fid = 0
    while True:
        ctype, fid, pos = field_header(buf, pos, end, fid)
        if ctype == _STOP:
            break
        field = fields.get(fid)
        if field is None or not _matches(field[2], ctype):  # decode skips it
            if ctype not in (_TRUE, _FALSE):
                pos = skip_value(buf, pos, end, ctype, depth)
            continue
        seen.add(fid)
        ttype, ctype, _ = field[2]
        if ttype in _SCALARS:
            pos = skip_value(buf, pos, end, ctype, depth)
        elif ttype != TType.BOOL:
            pos = _validate_value(buf, pos, end, field[2], depth, req)
    if req:
        for fid in sorted(fields.keys() - seen):
            name, required, _ = fields[fid]
            if required:
                raise CodecError(f"{cls.__name__}.{name} (field {fid}) is required but missing, at offset {pos}")
    return pos


def validate(buf: bytes | bytearray | memoryview, cls: type, offset: int = 0) -> int:
    """Check that ``decode(buf, cls, offset)`` would succeed with every required field set; return the end."""
    view = _view(buf, offset)
    return _validate_struct(view, offset, len(view), cls, 1, True)


def decodable(buf: bytes | bytearray | memoryview, cls: type, offset: int = 0) -> int:
    """Check that ``decode(buf, cls, offset)`` would succeed (required fields may be missing); return the end."""
    view = _view(buf, offset)
    return _validate_struct(view, offset, len(view), cls, 1, False)
