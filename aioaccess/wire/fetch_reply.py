"""The reply to a ``fetch``, built from stored bytes.

Stored Communications are already compact structs, so a fetch reply is built
by splicing them between a few header bytes:
``result{0: FetchResult{1: list<Communication>}}``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..exceptions import ReplyTooLarge
from .primitives import PROTOCOL_ID, REPLY, VERSION, encode_varint

__all__ = ["DEFAULT_MAX_REPLY_SIZE", "WRITEV_FROM", "build_fetch_reply", "build_fetch_reply_parts"]

#: Largest fetch reply of several Communications a server builds by default: 1 GiB.
DEFAULT_MAX_REPLY_SIZE = 1 << 30
#: Fetch replies with this many Communication bytes or more are written as buffers, not joined.
WRITEV_FROM = 256 * 1024

# "fetch" REPLY message header up to the seqid, and from the name on: success is field 0 (long form, a
# struct, zigzag(0) == 0), then FetchResult field 1, a list
_FETCH_REPLY_START = bytes((PROTOCOL_ID, (REPLY << 5) | VERSION))
_FETCH_REPLY_NAME = b"\x05fetch" + b"\x0c\x00" + b"\x19"
# list<Communication> headers for 0..14 elements
_STRUCT_LIST_HEADERS = [bytes(((n << 4) | 12,)) for n in range(15)]
_FETCH_REPLY_END = b"\x00\x00"


def _head(seqid: int, n: int) -> bytes:
    head = _FETCH_REPLY_START + (bytes((seqid,)) if 0 <= seqid < 0x80 else encode_varint(seqid & 0xFFFFFFFF))
    return head + _FETCH_REPLY_NAME + (_STRUCT_LIST_HEADERS[n] if n < 15 else bytes((0xFC,)) + encode_varint(n))


def build_fetch_reply(seqid: int, comms: Sequence[bytes], max_size: int = DEFAULT_MAX_REPLY_SIZE) -> bytes:
    """Frame a ``fetch`` reply whose Communications are already compact bytes.

    The stored bytes are copied once, into the returned frame.  A reply of
    several Communications larger than ``max_size`` raises ReplyTooLarge
    before anything is allocated (a 6 KB request repeating one 1 MB id
    would otherwise cost 1.5 GB).
    """
    head = _head(seqid, len(comms))
    if len(comms) == 1:
        comm = comms[0]
        size = len(head) + len(comm) + 2
        return b"".join((size.to_bytes(4, "big"), head, comm, _FETCH_REPLY_END))
    size = len(head) + sum(map(len, comms)) + 2
    if size > max_size:
        raise ReplyTooLarge(size, max_size)
    return b"".join((size.to_bytes(4, "big"), head, *comms, _FETCH_REPLY_END))


def build_fetch_reply_parts(seqid: int, comms: Sequence[bytes], max_size: int = DEFAULT_MAX_REPLY_SIZE,
                            join_below: int = WRITEV_FROM) -> bytes | list[bytes]:
    """The reply of :func:`build_fetch_reply`, as buffers to write in order when it is large.

    A reply of ``join_below`` bytes or more is returned as ``[frame head, *comms, tail]`` so a
    transport's ``writelines`` (``writev``) sends the stored bytes without joining them first;
    a smaller one is joined, as by :func:`build_fetch_reply`.
    """
    total = sum(map(len, comms))
    if total < join_below:
        return build_fetch_reply(seqid, comms, max_size)
    head = _head(seqid, len(comms))
    size = len(head) + total + 2
    if size > max_size and len(comms) > 1:
        raise ReplyTooLarge(size, max_size)
    return [size.to_bytes(4, "big") + head, *comms, _FETCH_REPLY_END]
