"""Call observation (metrics) as a wrapper around an answer: it never changes which route answers a call.

The method and outcome are read back from the reply, as the HTTP metrics
middleware reads them from a TJSON reply.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from ..exceptions import ProtocolError
from ..wire.messages import EXCEPTION, ONEWAY, VERSION, parse_header, read_varint
from .compact import CompactCalls
from .fast_fetch import CallObserver

__all__ = ["compact_outcome", "observed"]

_ONEWAY = bytes(((ONEWAY << 5) | VERSION,))
Answer = Callable[[bytes], Awaitable["bytes | list[bytes] | None"]]


def compact_outcome(reply: bytes | list[bytes]) -> tuple[str, str, int]:
    """(method, outcome, size) of a framed compact reply: "error" for a TApplicationException, "exception"
    for a declared one, else "ok"."""
    if type(reply) is list:
        return "fetch", "ok", sum(map(len, reply))  # only a large fetch reply comes in pieces
    try:
        header = parse_header(reply[4:])
    except ProtocolError:
        return "?", "error", len(reply)
    if header.mtype == EXCEPTION:
        return header.name, "error", len(reply)
    pos = header.body_offset + 4
    head = reply[pos] if pos < len(reply) else 0
    if head & 0x0F == 0:  # an empty result struct: a void method's success
        return header.name, "ok", len(reply)
    if head >> 4:  # short form: field id 0 + delta, never 0
        return header.name, "exception", len(reply)
    try:
        fid = read_varint(reply, pos + 1)[0]
    except ProtocolError:
        return header.name, "error", len(reply)
    return header.name, "ok" if fid == 0 else "exception", len(reply)


def observed(calls: CompactCalls, observer: CallObserver) -> Answer:
    """``calls.answer``, telling ``observer`` of each call (method, outcome, seconds, reply bytes; for a oneway
    call, those of the reply it would have had)."""
    answer = calls.answer

    async def observe(msg: bytes) -> bytes | list[bytes] | None:
        started = time.perf_counter()
        if msg[1:2] == _ONEWAY:
            header = parse_header(msg)
            reply: bytes | list[bytes] | None = await calls.reply(msg, header)
        else:
            reply = await answer(msg)
        if reply is not None:
            name, outcome, size = compact_outcome(reply)
            observer(name, outcome, time.perf_counter() - started, size)
        return None if msg[1:2] == _ONEWAY else reply

    return observe
