"""A null S3 endpoint: accepts PUTs, keeps only key names and sizes, answers at once.

It exists to find a store server's own ceiling: moto spends ~2 ms of CPU per
PUT, so on a small machine moto, not the store server, sets the pace.  The
sink speaks just enough S3 (path-style, HTTP/1.1 keep-alive, no signature
check) for boto 2, botocore and aioaccess's FastS3Client: HEAD/PUT bucket,
PUT object (ETag = MD5 of the body, which boto 2 checks), HEAD/GET object
(an empty body of the stored size) and one unpaged ListObjectsV2 page.

    python -m benchmarks.s3_sink --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["SinkProtocol", "main"]

_BUCKETS: dict[str, dict[str, int]] = {}


def _response(status: str, headers: dict[str, str] | None = None, body: bytes = b"", head_only: bool = False,
              length: int | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body) if length is None else length}",
             "x-amz-request-id: sink"]
    lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head_only else body)


def _list(bucket: str, keys: dict[str, int]) -> bytes:
    items = "".join(f"<Contents><Key>{k}</Key><Size>{n}</Size><ETag>&quot;x&quot;</ETag></Contents>"
                    for k, n in sorted(keys.items()))
    return (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>{bucket}</Name><KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys>"
            f"<IsTruncated>false</IsTruncated>{items}</ListBucketResult>").encode()


_NO_BUCKET = _response("404 Not Found", {"Content-Type": "application/xml"},
                       b"<Error><Code>NoSuchBucket</Code><Message>no such bucket</Message></Error>")


class SinkProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection; requests are answered in order."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.continued = False  # 100 Continue sent for the request at the head of the buffer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
            length = int(headers.get("content-length", 0))
            if len(self.buf) < end + 4 + length:
                if headers.get("expect", "").lower() == "100-continue" and not self.continued:
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]
                    self.continued = True
                return
            self.continued = False
            body = bytes(self.buf[end + 4:end + 4 + length])
            del self.buf[:end + 4 + length]
            method, target, _ = head[0].split(" ", 2)
            self.transport.write(self.answer(method, target, body))  # type: ignore[union-attr]

    def answer(self, method: str, target: str, body: bytes) -> bytes:
        parts = urlsplit(target)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        keys = _BUCKETS.get(bucket)
        if not key:
            if method == "PUT":
                _BUCKETS.setdefault(bucket, {})
                return _response("200 OK")
            if keys is None:
                return _NO_BUCKET
            if method == "HEAD":
                return _response("200 OK")
            if method == "GET":
                return _response("200 OK", {"Content-Type": "application/xml"}, _list(bucket, keys))
            if method == "POST" and "delete" in parse_qs(parts.query, keep_blank_values=True):
                keys.clear()
                return _response("200 OK", {"Content-Type": "application/xml"}, b"<DeleteResult/>")
            return _response("405 Method Not Allowed")
        if keys is None:
            return _NO_BUCKET
        if method == "PUT":
            keys[key] = len(body)
            return _response("200 OK", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        if method in ("GET", "HEAD"):
            if key not in keys:
                return _response("404 Not Found", {}, b"<Error><Code>NoSuchKey</Code></Error>", method == "HEAD")
            return _response("200 OK", {}, bytes(keys[key]), method == "HEAD")
        if method == "DELETE":
            keys.pop(key, None)
            return _response("204 No Content")
        return _response("405 Method Not Allowed")


async def serve(host: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(SinkProtocol, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="null S3 endpoint for store-server ceilings")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
