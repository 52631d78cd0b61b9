"""Framed-compact ``fetch`` and ``store`` calls from pre-built frames, for any Concrete server.

Request frames are built once, before the clock starts; replies are read as
whole frames and only their header and first result byte are looked at, so
the client's cost per call stays small and the same against every server.
Each call holds one connection for its round trip (one call in flight per
connection, as Thrift's framed clients do), so concurrency is the number of
connections.
"""

from __future__ import annotations

import asyncio
import random
import ssl as _ssl
from collections.abc import Sequence

from .. import codec
from ..schema import FetchCommunicationService, FetchRequest
from ..wire.messages import CALL, EXCEPTION, REPLY, build_message, parse_header
from .payloads import Payload

__all__ = ["CallFailed", "FramedCaller", "build_fetch_frames", "build_store_frames"]

# store_args field 1 (delta 1, type STRUCT) = the Communication, then STOP
_STORE_ARG = b"\x1c"
# result struct: field 0 STRUCT (success) / field 1 STRUCT (ServicesException)
_SUCCESS_STRUCT = 0x0C
_EXCEPTION_FIELD = 0x1C


class CallFailed(Exception):
    """A call answered with an exception (``code`` names it) or not at all."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def build_fetch_frames(ids: Sequence[str], batch: int, count: int, seed: int = 0) -> list[bytes]:
    """``count`` framed ``fetch`` calls of ``batch`` ids each, drawn at random from ``ids``."""
    if not ids:
        raise ValueError("no ids to fetch")
    rng = random.Random(seed)
    frames = []
    for _ in range(count):
        chosen = rng.sample(list(ids), batch) if batch <= len(ids) else rng.choices(list(ids), k=batch)
        body = codec.encode(FetchCommunicationService.fetch_args(request=FetchRequest(communicationIds=chosen)))
        frames.append(build_message("fetch", CALL, 0, body))
    return frames


def build_store_frames(payloads: Sequence[Payload]) -> list[tuple[bytes, int]]:
    """One framed ``store`` call per payload, with the payload's size."""
    return [(build_message("store", CALL, 0, _STORE_ARG + raw + b"\x00"), len(raw)) for _, raw in payloads]


class FramedCaller:
    """Sends pre-built frames to ``host:port`` over pooled connections (TLS with ``ssl``) and checks each
    reply."""

    def __init__(self, host: str, port: int, method: str, *, ssl: _ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        self.method = method
        self.ssl = ssl
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._all: set[asyncio.StreamWriter] = set()

    async def call(self, frame: bytes) -> int:
        """Send one call; return the reply's size.  Failures raise (``CallFailed`` when the server said no)."""
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
            self._all.add(writer)
        try:
            writer.write(frame)
            head = await reader.readexactly(4)
            reply = await reader.readexactly(int.from_bytes(head, "big"))
        except BaseException:
            self._discard(writer)
            raise
        self._idle.append((reader, writer))
        header = parse_header(reply)
        if header.mtype == EXCEPTION:
            raise CallFailed("TApplicationException")
        if header.mtype != REPLY or header.name != self.method:
            raise CallFailed("BadReply", f"{header!r}")
        first = reply[header.body_offset] if header.body_offset < len(reply) else -1
        if (self.method == "fetch" and first != _SUCCESS_STRUCT) or (self.method == "store" and first != 0):
            raise CallFailed("ServicesException" if first == _EXCEPTION_FIELD else "BadReply")
        return len(reply) + 4

    def _discard(self, writer: asyncio.StreamWriter) -> None:
        self._all.discard(writer)
        writer.close()

    async def aclose(self) -> None:
        for writer in list(self._all):
            writer.close()
        for writer in list(self._all):
            try:
                await writer.wait_closed()
            except OSError:
                pass
        self._all.clear()
        self._idle.clear()
