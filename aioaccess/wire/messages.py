"""Compact-protocol message headers and the reply bodies of the fast paths.

A compact message is ``0x82``, ``(type << 5) | 1``, varint seqid, varint name
length, name, then the argument or result struct.  Stored Communications are
already compact structs, so a fetch reply is built by splicing them between a
few header bytes: ``result{0: FetchResult{1: list<Communication>}}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .. import codec
from ..exceptions import ProtocolError, ReplyTooLarge

__all__ = [
    "CALL",
    "DEFAULT_MAX_REPLY_SIZE",
    "EXCEPTION",
    "ONEWAY",
    "REPLY",
    "WRITEV_FROM",
    "MessageHeader",
    "build_application_exception",
    "encode_varint",
    "read_varint",
    "parse_application_exception",
    "build_fetch_reply",
    "build_fetch_reply_parts",
    "fetch_reply_now",
    "build_message",
    "parse_fetch_call",
    "parse_fetch_request_ids",
    "parse_header",
    "slice_struct_field",
]

PROTOCOL_ID = 0x82
VERSION = 1
CALL, REPLY, EXCEPTION, ONEWAY = 1, 2, 3, 4

_MAX_NAME = 256

#: Largest fetch reply of several Communications a server builds by default: 1 GiB.
DEFAULT_MAX_REPLY_SIZE = 1 << 30


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read an unsigned varint (at most 5 bytes) at ``pos``; return (value, next position)."""
    result = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ProtocolError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 35:
            raise ProtocolError("varint longer than 5 bytes")


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class MessageHeader:
    """Name, type and sequence id of one message, and where its body starts."""

    __slots__ = ("name", "mtype", "seqid", "body_offset")

    def __init__(self, name: str, mtype: int, seqid: int, body_offset: int) -> None:
        self.name = name
        self.mtype = mtype
        self.seqid = seqid
        self.body_offset = body_offset

    def __repr__(self) -> str:
        return f"MessageHeader({self.name!r}, mtype={self.mtype}, seqid={self.seqid})"


def parse_header(msg: bytes) -> MessageHeader:
    """Parse a compact message header; raise ProtocolError on anything else."""
    if len(msg) < 4:
        raise ProtocolError(f"message of {len(msg)} bytes is too short for a header")
    if msg[0] != PROTOCOL_ID:
        raise ProtocolError(f"bad protocol id 0x{msg[0]:02x}: expected compact protocol (0x82)")
    if msg[1] & 0x1F != VERSION:
        raise ProtocolError(f"bad compact protocol version {msg[1] & 0x1F}")
    mtype = (msg[1] >> 5) & 0x07
    seqid, pos = read_varint(msg, 2)
    if seqid >= 2**31:
        seqid -= 2**32
    size, pos = read_varint(msg, pos)
    if size > _MAX_NAME or pos + size > len(msg):
        raise ProtocolError(f"method name length {size} is out of bounds")
    try:
        name = msg[pos : pos + size].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("method name is not valid UTF-8") from exc
    return MessageHeader(name, mtype, seqid, pos + size)


def build_message(name: str, mtype: int, seqid: int, body: bytes | bytearray) -> bytes:
    """Return one framed compact message (length prefix included)."""
    bname = name.encode("utf-8")
    head = (
        bytes((PROTOCOL_ID, (mtype << 5) | VERSION))
        + encode_varint(seqid & 0xFFFFFFFF)
        + encode_varint(len(bname))
        + bname
    )
    return (len(head) + len(body)).to_bytes(4, "big") + head + body


def _list_header(n: int, ctype: int) -> bytes:
    if n < 15:
        return bytes(((n << 4) | ctype,))
    return bytes((0xF0 | ctype,)) + encode_varint(n)


# result struct: field 0 (delta 0, long form), type STRUCT, zigzag(0) == 0
_SUCCESS_STRUCT = b"\x0c\x00"
# FetchResult field 1, type LIST
_FETCH_RESULT_LIST = b"\x19"


# "fetch" REPLY message header up to the seqid, and from the name on
_FETCH_REPLY_START = bytes((PROTOCOL_ID, (REPLY << 5) | VERSION))
_FETCH_REPLY_NAME = b"\x05fetch" + _SUCCESS_STRUCT + _FETCH_RESULT_LIST
# list<Communication> headers for 0..14 elements
_STRUCT_LIST_HEADERS = [bytes(((n << 4) | 12,)) for n in range(15)]
_FETCH_REPLY_END = b"\x00\x00"


def build_fetch_reply(seqid: int, comms: Sequence[bytes], max_size: int = DEFAULT_MAX_REPLY_SIZE) -> bytes:
    """Frame a ``fetch`` reply whose Communications are already compact bytes.

    The stored bytes are copied once, into the returned frame.  A reply of
    several Communications larger than ``max_size`` raises ReplyTooLarge
    before anything is allocated (a 6 KB request repeating one 1 MB id
    would otherwise cost 1.5 GB).
    """
    n = len(comms)
    head = _FETCH_REPLY_START + (bytes((seqid,)) if 0 <= seqid < 0x80 else encode_varint(seqid & 0xFFFFFFFF))
    head += _FETCH_REPLY_NAME + (_STRUCT_LIST_HEADERS[n] if n < 15 else _list_header(n, 12))
    if n == 1:
        comm = comms[0]
        size = len(head) + len(comm) + 2
        return b"".join((size.to_bytes(4, "big"), head, comm, _FETCH_REPLY_END))
    size = len(head) + sum(map(len, comms)) + 2
    if size > max_size:
        raise ReplyTooLarge(size, max_size)
    return b"".join((size.to_bytes(4, "big"), head, *comms, _FETCH_REPLY_END))


#: Fetch replies with this many Communication bytes or more are written as buffers, not joined.
WRITEV_FROM = 256 * 1024


def build_fetch_reply_parts(seqid: int, comms: Sequence[bytes], max_size: int = DEFAULT_MAX_REPLY_SIZE,
                            join_below: int = WRITEV_FROM) -> bytes | list[bytes]:
    """The reply of :func:`build_fetch_reply`, as buffers to write in order when it is large.

    A reply of ``join_below`` bytes or more is returned as ``[frame head, *comms, tail]`` so a
    transport's ``writelines`` (``writev``) sends the stored bytes without joining them first;
    a smaller one is joined, as by :func:`build_fetch_reply`.
    """
    n = len(comms)
    total = sum(map(len, comms))
    if total < join_below:
        return build_fetch_reply(seqid, comms, max_size)
    head = _FETCH_REPLY_START + (bytes((seqid,)) if 0 <= seqid < 0x80 else encode_varint(seqid & 0xFFFFFFFF))
    head += _FETCH_REPLY_NAME + (_STRUCT_LIST_HEADERS[n] if n < 15 else _list_header(n, 12))
    size = len(head) + total + 2
    if size > max_size and n > 1:
        raise ReplyTooLarge(size, max_size)
    return [size.to_bytes(4, "big") + head, *comms, _FETCH_REPLY_END]


def _fetch_reply_now(data: bytes, table: dict[str, bytes], max_reply_size: int, join_below: int) -> bytes | None:
    """The framed reply to ``data`` when it is one framed ``fetch`` CALL of ids all in ``table``; else None.

    Only the usual layout is answered: fewer than 15 ids, each under 128 bytes,
    no other FetchRequest field.  None also for a reply of several
    Communications over ``max_reply_size`` bytes, or of ``join_below`` or more
    Communication bytes, which the caller writes without joining.  The reply is
    :func:`build_fetch_reply`'s.  The compiled codec has the same function.
    """
    if type(data) is not bytes or type(table) is not dict or len(data) < 16:
        return None
    if int.from_bytes(data[:4], "big") != len(data) - 4 or data[4:6] != _FETCH_CALL_HEAD:
        return None
    try:
        seqid, pos = read_varint(data, 6)  # at most 5 bytes
    except ProtocolError:
        return None
    if seqid > 0xFFFFFFFF or data[pos : pos + 8] != _FETCH_CALL_NAME or pos + 9 > len(data):
        return None
    head = data[pos + 8]
    pos += 9
    if head & 0x0F != 8 or head >= 0xF0:
        return None
    comms = []
    for _ in range(head >> 4):
        size = data[pos] if pos < len(data) else 0x80
        if size >= 0x80 or len(data) - pos - 1 < size:
            return None
        try:
            comm_id = data[pos + 1 : pos + 1 + size].decode("utf-8")
        except UnicodeDecodeError:
            return None
        pos += 1 + size
        comm = table.get(comm_id)
        if type(comm) is not bytes:
            return None
        comms.append(comm)
    if data[pos:] != b"\x00\x00" or sum(map(len, comms)) >= join_below:
        return None
    try:
        return build_fetch_reply(seqid, comms, max_reply_size)
    except ReplyTooLarge:
        return None


# The framed fetch CALL up to its seqid varint, and from the name to FetchRequest's list header.
_FETCH_CALL_HEAD = b"\x82\x21"
_FETCH_CALL_NAME = b"\x05fetch\x1c\x19"

#: The server's fetch fast path: the compiled codec's when it is active, else :func:`_fetch_reply_now`.
if codec.IMPLEMENTATION == "c":
    from ..codec._speedups import fetch_reply_now  # type: ignore[import-not-found]
else:
    fetch_reply_now = _fetch_reply_now


# A compact CALL of "fetch": protocol id, CALL|version, varint seqid, name, then
# fetch_args field 1 (struct).  The match ends on that field header.
_FETCH_CALL = re.compile(rb"\x82\x21([\x80-\xff]{0,4}[\x00-\x7f])\x05fetch\x1c")


def parse_fetch_call(msg: bytes) -> tuple[int, list[str]] | None:
    """``(seqid, ids)`` of a plain ``fetch`` CALL, read in one pass; None for anything else.

    A None answer only means "not the common layout": the caller then parses
    the message generically with :func:`parse_header`.
    """
    m = _FETCH_CALL.match(msg)
    if m is None:
        return None
    raw = m.group(1)
    seqid = raw[0] if len(raw) == 1 else read_varint(raw, 0)[0]
    if seqid >= 2**31:
        seqid -= 2**32
    pos = m.end()
    try:
        # FetchRequest{1: list<string> (< 15 ids, each < 128 bytes)} and nothing else: the usual call.
        head = msg[pos + 1]
        if msg[pos] == 0x19 and head & 0x0F == 8 and head < 0xF0:
            pos += 2
            ids = []
            for _ in range(head >> 4):
                size = msg[pos]
                if size >= 0x80:
                    break
                pos += 1 + size
                ids.append(msg[pos - size : pos].decode("utf-8"))
            else:
                if msg[pos : pos + 2] == b"\x00\x00":
                    return seqid, ids
    except (IndexError, UnicodeDecodeError):
        pass  # the general parser below says what is wrong
    ids = parse_fetch_request_ids(msg, m.end() - 1)
    if ids is None:
        return None
    return seqid, ids


def _read_field_header(buf: bytes, pos: int, last: int) -> tuple[int, int, int]:
    if pos >= len(buf):
        raise ProtocolError("truncated struct")
    head = buf[pos]
    ctype = head & 0x0F
    if ctype == 0:
        return 0, 0, pos + 1
    if head >> 4:
        return ctype, last + (head >> 4), pos + 1
    raw, pos = read_varint(buf, pos + 1)
    return ctype, (raw >> 1) ^ -(raw & 1), pos


def parse_fetch_request_ids(msg: bytes, offset: int) -> list[str] | None:
    """Read ``fetch_args.request.communicationIds`` straight from the bytes.

    Returns None when the arguments are laid out in a way this fast path does
    not handle (the caller then decodes them generically).
    """
    # fetch_args { 1: FetchRequest request }
    ctype, fid, pos = _read_field_header(msg, offset, 0)
    if ctype != 12 or fid != 1:
        return None
    ids: list[str] | None = None
    last = 0
    while True:
        ctype, last, pos = _read_field_header(msg, pos, last)
        if ctype == 0:
            break
        if last == 1 and ctype == 9:
            if pos >= len(msg):
                raise ProtocolError("truncated FetchRequest.communicationIds")
            head = msg[pos]
            pos += 1
            n, etype = head >> 4, head & 0x0F
            if n == 15:
                n, pos = read_varint(msg, pos)
            if etype != 8 or n > len(msg) - pos:
                return None
            ids = []
            for _ in range(n):
                size, pos = read_varint(msg, pos)
                if pos + size > len(msg):
                    raise ProtocolError("truncated Communication id")
                try:
                    ids.append(msg[pos : pos + size].decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise ProtocolError("Communication id is not valid UTF-8") from exc
                pos += size
        elif last == 2 and ctype == 8:
            size, pos = read_varint(msg, pos)
            pos += size
            if pos > len(msg):
                raise ProtocolError("truncated FetchRequest.auths")
        else:
            return None
    return ids


def slice_struct_field(msg: bytes, offset: int, field_id: int, skip: object) -> tuple[int, int] | None:
    """Find top-level struct field ``field_id`` of the struct at ``offset``.

    Returns ``(start, end)`` of the field's struct bytes, using the codec's
    ``skip`` to bound it, or None if the field is absent.
    """
    last, pos = 0, offset
    while True:
        ctype, last, pos = _read_field_header(msg, pos, last)
        if ctype == 0:
            return None
        if ctype == 12:
            end = skip(msg, pos)  # type: ignore[operator]
            if last == field_id:
                return pos, end
            pos = end
        else:
            return None


def _zigzag32(n: int) -> bytes:
    return encode_varint(((n << 1) ^ (n >> 31)) & 0xFFFFFFFF)


def build_application_exception(name: str, seqid: int, kind: int, message: str) -> bytes:
    """Frame a ``TApplicationException`` reply (message type EXCEPTION)."""
    text = message.encode("utf-8")
    body = b"\x18" + encode_varint(len(text)) + text + b"\x15" + _zigzag32(kind) + b"\x00"
    return build_message(name, EXCEPTION, seqid, body)


def parse_application_exception(msg: bytes, offset: int) -> tuple[int, str]:
    """Read (type, message) of a TApplicationException body."""
    kind, text, last, pos = 0, "", 0, offset
    while True:
        ctype, last, pos = _read_field_header(msg, pos, last)
        if ctype == 0:
            return kind, text
        if last == 1 and ctype == 8:
            size, pos = read_varint(msg, pos)
            text = msg[pos : pos + size].decode("utf-8", "replace")
            pos += size
        elif last == 2 and ctype == 5:
            raw, pos = read_varint(msg, pos)
            kind = (raw >> 1) ^ -(raw & 1)
        else:
            raise ProtocolError("unexpected field in TApplicationException")
