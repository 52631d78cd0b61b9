"""Apache Thrift's TJSONProtocol at the message level, for the HTTP endpoint.

A TJSON message is ``[1,"name",type,seqid,{struct}]``; a struct maps field
ids to one-key objects naming the wire type: ``{"1":{"str":"x"},"2":{"i32":5}}``;
lists are ``["rec",N,item,...]`` and maps ``["str","i32",N,{k:v}]``.  The
output here is compact (no whitespace), which Apache's strict Python reader
needs.

Small structs (arguments, results, ServiceInfo, a stored Communication) go
through ``json`` and the thriftpy2 ``thrift_spec``.  Fetch replies are built
by :func:`fetch_reply`, which transcodes each stored compact Communication
with ``codec.to_tjson`` and splices the pieces, never building objects.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from thriftpy2.thrift import TType

from . import to_tjson

__all__ = [
    "TJSONError",
    "TJSONMessage",
    "application_exception",
    "build_message",
    "fetch_reply",
    "parse_message",
    "peek_call",
    "struct_from_doc",
    "struct_to_doc",
    "struct_to_tjson",
]

VERSION = 1
CALL, REPLY, EXCEPTION, ONEWAY = 1, 2, 3, 4

_NAMES = {
    TType.BOOL: "tf", TType.BYTE: "i8", TType.I16: "i16", TType.I32: "i32", TType.I64: "i64",
    TType.DOUBLE: "dbl", TType.STRING: "str", TType.BINARY: "str", TType.STRUCT: "rec",
    TType.LIST: "lst", TType.SET: "set", TType.MAP: "map",
}
_INTS = (TType.BYTE, TType.I16, TType.I32, TType.I64)
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class TJSONError(ValueError):
    """A body that is not a TJSON message, or a value of the wrong shape."""


class TJSONMessage(NamedTuple):
    """One parsed TJSON message; ``args`` is the raw struct document."""

    name: str
    mtype: int
    seqid: int
    args: dict[str, Any]


def parse_message(data: bytes | str) -> TJSONMessage:
    """Parse ``[1,"name",type,seqid,{args}]``; raise TJSONError saying what is wrong.

    Bytes must be UTF-8 (Apache's reader reads nothing else); nesting deeper than
    the interpreter's recursion limit and a method name that is not valid Unicode
    (a lone ``\\uD800``-style surrogate) are refused.  String values are checked
    when :func:`struct_from_doc` reads them.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            data = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TJSONError(f"malformed JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        # Apache's own writer leaves control characters in strings unescaped: accept them.
        doc = json.loads(data, strict=False)
    except ValueError as exc:
        raise TJSONError(f"malformed JSON: {exc}") from exc
    except RecursionError:
        raise TJSONError("malformed JSON: nested too deeply") from None
    if not isinstance(doc, list) or len(doc) not in (4, 5):
        raise TJSONError("not a TJSON message: expected [1,\"method\",type,seqid,{args}]")
    version, name, mtype, seqid = doc[:4]
    args = doc[4] if len(doc) == 5 else {}
    if version != VERSION or isinstance(version, bool):
        raise TJSONError(f"unsupported TJSON version {version!r}: expected 1")
    if not isinstance(name, str):
        raise TJSONError("TJSON method name is not a string")
    if _LONE_SURROGATE.search(name):
        raise TJSONError("TJSON method name holds a lone UTF-16 surrogate (not valid Unicode)")
    if not _is_int(mtype) or not _is_int(seqid):
        raise TJSONError("TJSON message type and seqid must be integers")
    if not isinstance(args, dict):
        raise TJSONError("TJSON arguments are not a struct object")
    return TJSONMessage(name, mtype, seqid, args)


_CALL_HEAD = re.compile(rb'\s*\[\s*1\s*,\s*"([A-Za-z_][A-Za-z0-9_.]{0,127})"\s*,\s*1\s*,\s*(-?[0-9]{1,10})\s*,')


def peek_call(data: bytes) -> tuple[str, int] | None:
    """``(name, seqid)`` of a body that starts like a TJSON call, however broken the rest, else None.

    Lets a server answer a call it cannot read with a TApplicationException the
    caller can match to its request.
    """
    match = _CALL_HEAD.match(data)
    if match is None or not -(2**31) <= int(match[2]) < 2**31:
        return None
    return match[1].decode("ascii"), int(match[2])


def build_message(name: str, mtype: int, seqid: int, struct_json: str | bytes) -> bytes:
    """Frame struct text as a TJSON message."""
    head = f"[1,{_dumps(name)},{int(mtype)},{int(seqid)},".encode()
    body = struct_json.encode() if isinstance(struct_json, str) else struct_json
    return head + body + b"]"


def application_exception(name: str, seqid: int, kind: int, message: str) -> bytes:
    """A TApplicationException reply (message type 3)."""
    return build_message(name, EXCEPTION, seqid, _dumps({"1": {"str": message}, "2": {"i32": int(kind)}}))


def fetch_reply(seqid: int, raws: Sequence[bytes], communication_cls: type) -> bytes:
    """``fetch`` reply whose Communications are compact bytes, transcoded one by one."""
    parts = [b'[1,"fetch",2,', str(int(seqid)).encode(), b',{"0":{"rec":{"1":{"lst":["rec",',
             str(len(raws)).encode()]
    for raw in raws:
        parts.append(b",")
        parts.append(to_tjson(raw, communication_cls, 0)[0])
    parts.append(b"]}}}}]")
    return b"".join(parts)


# -- objects -> TJSON -------------------------------------------------------
def struct_to_tjson(obj: Any) -> str:
    """TJSON text of a thriftpy2 struct."""
    return _dumps(struct_to_doc(obj))


def struct_to_doc(obj: Any) -> dict[str, Any]:
    """The ``json``-ready TJSON document of a thriftpy2 struct (fields in id order)."""
    spec = obj.thrift_spec
    out: dict[str, Any] = {}
    for fid in sorted(spec):
        fspec = spec[fid]
        value = getattr(obj, fspec[1], None)
        if value is None:
            continue
        ttype = fspec[0]
        sub = fspec[2] if len(fspec) > 3 else None
        out[str(fid)] = {_NAMES[ttype]: _to_doc(value, ttype, sub)}
    return out


def _split(spec: Any) -> tuple[int, Any]:
    if isinstance(spec, int):
        return spec, None
    return spec[0], spec[1]


def _to_doc(value: Any, ttype: int, sub: Any) -> Any:
    if ttype == TType.STRUCT:
        return struct_to_doc(value)
    if ttype in (TType.LIST, TType.SET):
        etype, esub = _split(sub)
        return [_NAMES[etype], len(value), *(_to_doc(v, etype, esub) for v in value)]
    if ttype == TType.MAP:
        (ktype, ksub), (vtype, vsub) = _split(sub[0]), _split(sub[1])
        items = {_key(_to_doc(k, ktype, ksub)): _to_doc(v, vtype, vsub) for k, v in value.items()}
        return [_NAMES[ktype], _NAMES[vtype], len(value), items]
    if ttype == TType.BOOL:
        return 1 if value else 0
    if ttype == TType.DOUBLE:
        value = float(value)
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if ttype == TType.BINARY:
        raw = value.encode() if isinstance(value, str) else bytes(value)
        return base64.b64encode(raw).decode("ascii")
    if ttype == TType.STRING and isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def _key(value: Any) -> str:
    return value if isinstance(value, str) else _dumps(value)


# -- TJSON -> objects -------------------------------------------------------
def struct_from_doc(doc: Any, cls: type) -> Any:
    """Build a thriftpy2 ``cls`` from a TJSON struct document.

    Unknown field ids and fields of an unexpected wire type are skipped, as
    Apache's generated readers do; values of the wrong shape raise TJSONError.
    """
    if not isinstance(doc, dict):
        raise TJSONError(f"{cls.__name__}: expected a struct object, got {type(doc).__name__}")
    spec = cls.thrift_spec  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {}
    for key, field in doc.items():
        try:
            fspec = spec.get(int(key))
        except ValueError:
            raise TJSONError(f"{cls.__name__}: field id {key!r} is not an integer") from None
        if not isinstance(field, dict) or len(field) != 1:
            raise TJSONError(f"{cls.__name__}.{key}: expected a one-key {{\"type\":value}} object")
        if fspec is None:
            continue
        ttype = fspec[0]
        ((tname, value),) = field.items()
        if tname != _NAMES[ttype]:
            continue
        sub = fspec[2] if len(fspec) > 3 else None
        kwargs[fspec[1]] = _from_doc(value, ttype, sub, f"{cls.__name__}.{fspec[1]}")
    return cls(**kwargs)


def _from_doc(value: Any, ttype: int, sub: Any, where: str) -> Any:
    if ttype == TType.STRUCT:
        return struct_from_doc(value, sub)
    if ttype in (TType.LIST, TType.SET):
        etype, esub = _split(sub)
        if not isinstance(value, list) or len(value) < 2 or value[0] != _NAMES[etype] or not _is_int(value[1]):
            raise TJSONError(f"{where}: expected [\"{_NAMES[etype]}\",size,...]")
        if value[1] != len(value) - 2:
            raise TJSONError(f"{where}: list claims {value[1]} items but holds {len(value) - 2}")
        items = [_from_doc(v, etype, esub, where) for v in value[2:]]
        return set(items) if ttype == TType.SET else items
    if ttype == TType.MAP:
        (ktype, ksub), (vtype, vsub) = _split(sub[0]), _split(sub[1])
        if (not isinstance(value, list) or len(value) != 4 or value[0] != _NAMES[ktype]
                or value[1] != _NAMES[vtype] or not isinstance(value[3], dict)):
            raise TJSONError(f"{where}: expected [\"{_NAMES[ktype]}\",\"{_NAMES[vtype]}\",size,{{...}}]")
        return {_from_key(k, ktype, ksub, where): _from_doc(v, vtype, vsub, where) for k, v in value[3].items()}
    if ttype == TType.STRING:
        if not isinstance(value, str):
            raise TJSONError(f"{where}: expected a string")
        if _LONE_SURROGATE.search(value):  # Thrift strings are UTF-8; Apache's reader refuses these too
            raise TJSONError(f"{where}: a string holds a lone UTF-16 surrogate (not valid Unicode)")
        return value
    if ttype in _INTS:
        if _is_int(value):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise TJSONError(f"{where}: expected an integer")
    if ttype == TType.BOOL:
        if _is_int(value) or isinstance(value, bool):
            return bool(value)
        raise TJSONError(f"{where}: expected 0 or 1")
    if ttype == TType.DOUBLE:
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer like 10**400
            raise TJSONError(f"{where}: expected a number (a double)") from None
    if ttype == TType.BINARY:
        if not isinstance(value, str):
            raise TJSONError(f"{where}: expected a base64 string")
        try:
            return base64.b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError) as exc:
            raise TJSONError(f"{where}: bad base64: {exc}") from None
    raise TJSONError(f"{where}: unsupported wire type {ttype}")


def _from_key(key: str, ttype: int, sub: Any, where: str) -> Any:
    if ttype in (TType.STRING, TType.BINARY):
        return _from_doc(key, ttype, sub, where)
    try:
        return _from_doc(json.loads(key), ttype, sub, where)
    except (ValueError, RecursionError):
        raise TJSONError(f"{where}: bad map key {key!r}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
