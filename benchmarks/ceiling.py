"""The ceiling: a uvloop server answering every frame with one fixed, pre-built reply.

No Thrift, no lookup, no copy beyond the kernel's: it parses only frame lengths
and writes the same ``bytes`` object back, so it is the most calls/s any Python
event-loop server can answer on this machine with replies of this size.  The
reply is a real ``fetch`` reply (the first K Communications of the corpus) so
clients see frames of exactly the size the real servers send.

``python -m benchmarks.ceiling --port P --corpus-dir DIR -k 1``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

__all__ = ["CeilingProtocol", "fetch_reply_frame"]


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def fetch_reply_frame(comms: list[bytes]) -> bytes:
    """A framed compact ``fetch`` REPLY carrying ``comms`` (already compact bytes)."""
    n = len(comms)
    lst = bytes(((n << 4) | 12,)) if n < 15 else b"\xfc" + _varint(n)
    body = b"\x82" + bytes(((2 << 5) | 1,)) + b"\x00" + _varint(5) + b"fetch" + b"\x0c\x00\x19" + lst
    payload = body + b"".join(comms) + b"\x00\x00"
    return len(payload).to_bytes(4, "big") + payload


class CeilingProtocol(asyncio.Protocol):
    """Answer each complete frame with ``reply``."""

    reply = b""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        pos, end = 0, len(buf)
        while end - pos >= 4:
            size = int.from_bytes(buf[pos : pos + 4], "big")
            if end - pos - 4 < size:
                break
            pos += 4 + size
            self.transport.write(self.reply)  # type: ignore[union-attr]
        self.buf = buf[pos:] if pos < end else b""


async def serve(host: str, port: int, reply: bytes) -> None:
    CeilingProtocol.reply = reply
    loop = asyncio.get_running_loop()
    server = await loop.create_server(CeilingProtocol, host, port, backlog=4096, reuse_address=True)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ceiling server: fixed reply per frame")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--corpus-dir", required=True, help="directory of [ID].comm files")
    parser.add_argument("-k", type=int, default=1, help="Communications in the reply")
    args = parser.parse_args(argv)
    # The k Communications closest to the corpus's mean size: replies as large as the real servers' on average.
    sizes = {name: os.path.getsize(os.path.join(args.corpus_dir, name)) for name in os.listdir(args.corpus_dir)}
    mean = sum(sizes.values()) / len(sizes)
    names = sorted(sizes, key=lambda name: abs(sizes[name] - mean))[: args.k]
    comms = []
    for name in names:
        with open(os.path.join(args.corpus_dir, name), "rb") as f:
            comms.append(f.read())
    import uvloop

    from .loadgen import raise_nofile

    raise_nofile()
    uvloop.run(serve(args.host, args.port, fetch_reply_frame(comms)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
