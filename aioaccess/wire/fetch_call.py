"""The one parse of a ``fetch`` CALL, and the reply a connection gives it straight from a table.

:func:`usual_fetch_call` reads the usual layout (fewer than 15 ids, each
under 128 bytes, no other FetchRequest field) in one pass; the server's fast
path (:func:`fetch_reply_now`) and the service's compact answer
(:func:`parse_fetch_call`) both go through it.  Each has a C twin in
``codec/_speedups.c``; the choice between them is made here, once.
"""

from __future__ import annotations

from .. import codec
from ..exceptions import ProtocolError, ReplyTooLarge
from .fetch_reply import build_fetch_reply
from .primitives import read_field_header, read_varint

__all__ = ["fetch_reply_now", "parse_fetch_call", "parse_fetch_request_ids", "usual_fetch_call"]

# A compact CALL of "fetch" up to its seqid varint, and from the name to FetchRequest's list header.
_FETCH_CALL_HEAD = b"\x82\x21"
_FETCH_CALL_NAME = b"\x05fetch\x1c\x19"


def _usual_fetch_call(data: bytes, pos: int) -> tuple[int, list[str]] | None:
    """``(seqid, ids)`` of the fetch CALL that fills ``data`` from ``pos`` on, in the usual layout; else None.

    None only means "not the usual layout" (ids that are not UTF-8 included): the caller then asks the general
    parser, which says what is wrong.
    """
    if data[pos : pos + 2] != _FETCH_CALL_HEAD:
        return None
    try:
        seqid, pos = read_varint(data, pos + 2)  # at most 5 bytes
    except ProtocolError:
        return None
    end = len(data)
    if seqid > 0xFFFFFFFF or data[pos : pos + 8] != _FETCH_CALL_NAME or pos + 9 > end:
        return None
    head = data[pos + 8]
    pos += 9
    if head & 0x0F != 8 or head >= 0xF0:
        return None
    ids = []
    for _ in range(head >> 4):
        size = data[pos] if pos < end else 0x80
        if size >= 0x80 or end - pos - 1 < size:
            return None
        try:
            ids.append(data[pos + 1 : pos + 1 + size].decode("utf-8"))
        except UnicodeDecodeError:
            return None
        pos += 1 + size
    if end - pos != 2 or data[pos] or data[pos + 1]:
        return None
    return (seqid - (1 << 32) if seqid >= 1 << 31 else seqid), ids


def _fetch_reply_now(data: bytes, table: dict[str, bytes], max_reply_size: int, join_below: int) -> bytes | None:
    """The framed reply to ``data`` when it is one framed ``fetch`` CALL of ids all in ``table``; else None.

    Only :func:`usual_fetch_call`'s layout is answered.  None also for a reply
    of several Communications over ``max_reply_size`` bytes, or of
    ``join_below`` or more Communication bytes, which the caller writes
    without joining.  The reply is :func:`~aioaccess.wire.fetch_reply.build_fetch_reply`'s.
    """
    if type(data) is not bytes or type(table) is not dict or len(data) < 16:
        return None
    if int.from_bytes(data[:4], "big") != len(data) - 4:
        return None
    call = usual_fetch_call(data, 4)
    if call is None:
        return None
    comms = []
    for comm_id in call[1]:
        comm = table.get(comm_id)
        if type(comm) is not bytes:
            return None
        comms.append(comm)
    if sum(map(len, comms)) >= join_below:
        return None
    try:
        return build_fetch_reply(call[0], comms, max_reply_size)
    except ReplyTooLarge:
        return None


#: The C twins when the compiled codec is active (each answers exactly as its Python twin), else the Python ones.
if codec.IMPLEMENTATION == "c":
    from ..codec._speedups import fetch_reply_now, usual_fetch_call  # type: ignore[import-not-found]
else:
    fetch_reply_now = _fetch_reply_now
    usual_fetch_call = _usual_fetch_call


def parse_fetch_call(msg: bytes) -> tuple[int, list[str]] | None:
    """``(seqid, ids)`` of a ``fetch`` CALL message (no length prefix); None for anything else.

    The usual layout is read by :func:`usual_fetch_call`; any other fetch CALL
    (15 ids or more, long ids, ``auths``) by :func:`parse_fetch_request_ids`,
    which raises ProtocolError on truncated ids.  A None answer only means
    "not a plain fetch CALL": the caller then parses the message generically.
    """
    call = usual_fetch_call(msg, 0)
    if call is not None:
        return call
    if msg[:2] != _FETCH_CALL_HEAD:
        return None
    try:
        seqid, pos = read_varint(msg, 2)
    except ProtocolError:
        return None
    if msg[pos : pos + 7] != _FETCH_CALL_NAME[:7]:
        return None
    ids = parse_fetch_request_ids(msg, pos + 6)
    if ids is None:
        return None
    return (seqid - (1 << 32) if seqid >= 1 << 31 else seqid), ids


def parse_fetch_request_ids(msg: bytes, offset: int) -> list[str] | None:
    """Read ``fetch_args.request.communicationIds`` straight from the bytes.

    Returns None when the arguments are laid out in a way this fast path does
    not handle (the caller then decodes them generically).
    """
    # fetch_args { 1: FetchRequest request }
    ctype, fid, pos = read_field_header(msg, offset, 0)
    if ctype != 12 or fid != 1:
        return None
    ids: list[str] | None = None
    last = 0
    while True:
        ctype, last, pos = read_field_header(msg, pos, last)
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
