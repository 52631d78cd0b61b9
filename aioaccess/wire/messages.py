"""Compact-protocol message headers and TApplicationException replies.

A compact message is ``0x82``, ``(type << 5) | 1``, varint seqid, varint name
length, name, then the argument or result struct.  The ``fetch`` call and
reply have modules of their own (:mod:`.fetch_call`, :mod:`.fetch_reply`);
their names are importable from here too.
"""

from __future__ import annotations

from ..exceptions import ProtocolError
from .fetch_call import _fetch_reply_now as _fetch_reply_now  # the pure-Python twin, for tests
from .fetch_call import fetch_reply_now, parse_fetch_call, parse_fetch_request_ids
from .fetch_reply import DEFAULT_MAX_REPLY_SIZE, WRITEV_FROM, build_fetch_reply, build_fetch_reply_parts
from .primitives import (
    CALL,
    EXCEPTION,
    ONEWAY,
    PROTOCOL_ID,
    REPLY,
    VERSION,
    encode_varint,
    read_field_header,
    read_varint,
)

__all__ = [
    "CALL",
    "DEFAULT_MAX_REPLY_SIZE",
    "EXCEPTION",
    "ONEWAY",
    "PROTOCOL_ID",
    "VERSION",
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

_MAX_NAME = 256


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


def slice_struct_field(msg: bytes, offset: int, field_id: int, skip: object) -> tuple[int, int] | None:
    """Find top-level struct field ``field_id`` of the struct at ``offset``.

    Returns ``(start, end)`` of the field's struct bytes, using the codec's
    ``skip`` to bound it, or None if the field is absent.
    """
    last, pos = 0, offset
    while True:
        ctype, last, pos = read_field_header(msg, pos, last)
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
        ctype, last, pos = read_field_header(msg, pos, last)
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
