"""Pure-Python compact protocol: a validating scanner (``scan``) plus thriftpy2's codec.

The scanner walks compact bytes without building objects (``skip``,
``validate``, ``read_string_field``); ``decode``/``encode`` use thriftpy2's
pure-Python ``TCompactProtocol`` after the scanner has checked the input.  The compiled
``_speedups`` module has the same functions with the same signatures.
"""

from __future__ import annotations

import gc
import json
from typing import Any

from thriftpy2.protocol.apache_json import TApacheJSONProtocol
from thriftpy2.protocol.compact import TCompactProtocol
from thriftpy2.protocol.exc import TProtocolException
from thriftpy2.thrift import TType
from thriftpy2.transport import TMemoryBuffer

from .errors import CodecError
from .scan import MAX_DEPTH, SIZE, decodable, field_header, skip, skip_value, validate, varint

_T_STRUCT, _T_MAP, _T_SET, _T_LIST = TType.STRUCT, TType.MAP, TType.SET, TType.LIST
_TRUE, _FALSE, _BINARY = 1, 2, 8

__all__ = ["MAX_DEPTH", "decode", "encode", "gc_track", "gc_untrack", "missing_required", "read_string_field", "skip",
           "to_tjson", "validate"]


def read_string_field(buf: bytes | bytearray | memoryview, field_id: int, offset: int = 0) -> str | None:
    """Return top-level string field ``field_id`` of the struct at ``offset``, or None if absent."""
    view = memoryview(buf)
    end = len(view)
    if not 0 <= offset <= end:
        raise CodecError(f"offset {offset} out of range for a buffer of {end} bytes")
    pos, fid = offset, 0
    while True:
        ctype, fid, pos = field_header(view, pos, end, fid)
        if ctype == 0:
            return None
        if fid == field_id and ctype == _BINARY:
            size, pos = varint(view, pos, end, SIZE)
            if size > end - pos:
                raise CodecError(f"truncated input at offset {pos}")
            try:
                return bytes(view[pos : pos + size]).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CodecError(f"invalid UTF-8 in string at offset {pos + exc.start}") from exc
        if ctype not in (_TRUE, _FALSE):
            pos = skip_value(view, pos, end, ctype, 1)


def decode(buf: bytes | bytearray | memoryview, cls: type, offset: int = 0) -> tuple[Any, int]:
    """Decode one struct of thriftpy2 class ``cls`` at ``offset``; return (object, end offset)."""
    end = decodable(buf, cls, offset)  # the compiled decode's checks, so thriftpy2 sees only what it accepts
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


class _Missing(CodecError):
    """A required field left None: ``path`` names the field, ``where`` the struct and field."""

    def __init__(self, path: str, where: str) -> None:
        super().__init__(f"{path}: required field is None")
        self.path, self.where = path, where


def _check_required(obj: Any, path: str, depth: int = 1) -> None:
    for fid, field in sorted(obj.thrift_spec.items()):
        name, required = field[1], field[-1]
        value = getattr(obj, name, None)
        if value is None:
            if required is True:
                raise _Missing(f"{path}.{name}", f"{type(obj).__name__}.{name} (field {fid})")
        elif len(field) == 4:
            _check_value((field[0], field[2]), value, f"{path}.{name}", depth)


def missing_required(obj: Any) -> str | None:
    """Say which required field of struct ``obj`` (at any depth) is None, e.g.
    ``"Sentence.uuid (field 1) is required but missing, at Communication.sectionList[0]..."``; None if none is."""
    try:
        _check_required(obj, type(obj).__name__)
    except _Missing as exc:
        parent = exc.path.rpartition(".")[0]
        return f"{exc.where} is required but missing" + (f", at {parent}" if "." in parent else "")
    except CodecError:  # nesting too deep: not a missing field
        return None
    return None


def encode(obj: Any) -> bytes:
    """Encode a thriftpy2 struct in the compact protocol, fields in id order.

    A required field left None raises CodecError, as in the compiled codec.
    """
    _check_required(obj, type(obj).__name__)
    buf = TMemoryBuffer()
    try:
        TCompactProtocol(buf).write_struct(obj)
    except TProtocolException as exc:  # thriftpy2's range checks: "i32 requires ... <= number <= ..."
        kind = str(exc.message).partition(" ")[0]
        raise CodecError(f"a value of {type(obj).__name__} is out of range for {kind}: {exc.message}") from exc
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
