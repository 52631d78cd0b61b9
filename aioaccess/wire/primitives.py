"""Compact-protocol basics: message types, varints and struct field headers."""

from __future__ import annotations

from ..exceptions import ProtocolError

__all__ = ["CALL", "EXCEPTION", "ONEWAY", "PROTOCOL_ID", "REPLY", "VERSION", "encode_varint", "read_field_header",
           "read_varint"]

PROTOCOL_ID = 0x82
VERSION = 1
CALL, REPLY, EXCEPTION, ONEWAY = 1, 2, 3, 4


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


def read_field_header(buf: bytes, pos: int, last: int) -> tuple[int, int, int]:
    """(compact type, field id, next position) of the struct field header at ``pos``; type 0 is STOP."""
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
