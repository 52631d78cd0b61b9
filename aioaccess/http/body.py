"""Request bodies within a byte limit, and refusals that let go of them at once.

aiohttp's ``request.read()`` raises its 413 from a frame that holds the body
read so far (and raises the payload's read size to the limit, so a gzip body
inflates in steps of up to that size), and its request handler keeps the
exception in a reference cycle with those frames until the garbage collector
runs: a 200 KB gzip bomb held ~325 MB.  :func:`read_limited` reads in the
stream's own small steps (aiohttp >= 3.13.3 inflates ``Content-Encoding``
bodies step by step as they are read) and empties its buffer before raising;
:func:`release_refusals` cuts every HTTP error response off the frames it was
raised through, so a 400 for a 60 MB body does not keep the body either.
"""

from __future__ import annotations

from typing import Any

from aiohttp import StreamReader, web

__all__ = ["BodyTooLarge", "read_limited", "release_refusals"]


class BodyTooLarge(Exception):
    """The body passed ``limit`` bytes (after decoding its Content-Encoding)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the limit of {limit} bytes")
        self.limit = limit


async def read_limited(stream: StreamReader, limit: int) -> bytes:
    """Every byte of ``stream``, or BodyTooLarge once they pass ``limit``; the buffer is freed either way."""
    buf = bytearray()
    try:
        while chunk := await stream.readany():
            buf += chunk
            if len(buf) > limit:
                raise BodyTooLarge(limit)
        return bytes(buf)
    finally:
        buf.clear()  # whoever keeps this frame alive (a traceback) keeps an empty buffer


@web.middleware
async def release_refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    """Re-raise HTTP errors without the frames (and replaced exceptions) they passed through."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        exc.__context__ = None
        raise exc.with_traceback(None) from None
