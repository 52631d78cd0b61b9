"""TFramedTransport framing without I/O: a 4-byte big-endian length, then the frame."""

from __future__ import annotations

from ..exceptions import FrameTooLarge

__all__ = ["DEFAULT_MAX_FRAME_SIZE", "FrameDecoder", "frame"]

#: Largest frame accepted by default: 64 MiB (Thrift's own default is 16 MiB;
#: Communications with audio run larger).
DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024


def frame(payload: bytes | bytearray) -> bytes:
    """Prefix ``payload`` with its 4-byte big-endian length."""
    return len(payload).to_bytes(4, "big") + payload


class FrameDecoder:
    """Split a byte stream into frames; refuse a bad length before buffering it."""

    __slots__ = ("_buf", "max_frame_size", "_need")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._buf = bytearray()
        self._need = 4
        self.max_frame_size = max_frame_size

    @property
    def buffered(self) -> int:
        """Bytes received that are not yet part of a whole frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add ``data``; return every frame it completes (payloads, without length)."""
        buf = self._buf
        if not buf and len(data) >= 4:
            size = int.from_bytes(data[:4], "big")
            if size + 4 == len(data) and 0 < size <= self.max_frame_size:
                return [bytes(data[4:])]  # the usual case: exactly one whole frame
            # Fast path: whole frames straight out of ``data``, no staging copy.
            frames = []
            pos, end = 0, len(data)
            while end - pos >= 4:
                size = int.from_bytes(data[pos : pos + 4], "big")
                self._check(size)
                if end - pos - 4 < size:
                    break
                frames.append(bytes(data[pos + 4 : pos + 4 + size]))
                pos += 4 + size
            if pos < end:
                buf += data[pos:]
            return frames
        buf += data
        frames = []
        while len(buf) >= 4:
            size = int.from_bytes(buf[:4], "big")
            self._check(size)
            if len(buf) - 4 < size:
                break
            frames.append(bytes(buf[4 : 4 + size]))
            del buf[: 4 + size]
        return frames

    def _check(self, size: int) -> None:
        # The length is a signed i32 on the wire: >= 2**31 is negative.
        if size == 0 or size > self.max_frame_size:
            raise FrameTooLarge(size if size < 2**31 else size - 2**32, self.max_frame_size)
