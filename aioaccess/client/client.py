"""Async clients for Concrete services over a connection or a pool."""

from __future__ import annotations

from collections.abc import Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, ClassVar

from thriftpy2.thrift import TApplicationException

from .. import codec
from ..exceptions import ProtocolError
from ..schema import (
    Communication,
    FetchCommunicationService,
    FetchRequest,
    FetchResult,
    ServiceInfo,
    StoreCommunicationService,
)
from ..wire.messages import (
    CALL,
    EXCEPTION,
    REPLY,
    build_message,
    parse_application_exception,
    parse_header,
    read_varint,
)
from .connection import DEFAULT_TIMEOUT, Connection, ConnectionPool, PoolTimeout

__all__ = [
    "ConcreteServiceClient",
    "FetchCommunicationClient",
    "StoreCommunicationClient",
    "PoolTimeout",
    "TApplicationException",
]

Transport = Connection | ConnectionPool


class ConcreteServiceClient:
    """Calls any method of ``service`` over ``transport``; raises declared exceptions."""

    service: ClassVar[Any]

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def call(self, name: str, *args: Any) -> Any:
        """Call method ``name`` with positional ``args``; return its result."""
        reply = await self._roundtrip(name, codec.encode(call_args(self.service, name, args)))
        header = parse_header(reply)
        result = codec.decode(reply, getattr(self.service, f"{name}_result"), header.body_offset)[0]
        return unwrap_result(name, result)

    async def _roundtrip(self, name: str, args: bytes) -> bytes:
        seqid = self.transport.next_seqid()
        reply = await self.transport.call(build_message(name, CALL, seqid, args))
        header = parse_header(reply)
        if header.mtype == EXCEPTION:
            kind, message = parse_application_exception(reply, header.body_offset)
            raise TApplicationException(kind, message)
        if header.mtype != REPLY or header.name != name:
            raise ProtocolError(f"expected a reply to {name}, got {header!r}")
        return reply

    async def about(self) -> ServiceInfo:
        return await self.call("about")

    async def alive(self) -> bool:
        return bool(await self.call("alive"))

    async def aclose(self) -> None:
        """Close the connection or pool this client owns."""
        await self.transport.aclose()

    async def __aenter__(self) -> Any:
        if isinstance(self.transport, Connection):
            await self.transport.connect()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    @classmethod
    def connect(cls, host: str, port: int, *, timeout: float | None = DEFAULT_TIMEOUT,
                ssl: SSLContext | None = None) -> Any:
        """A client on one new connection (open it with ``async with``); over TLS with ``ssl``."""
        return cls(Connection(host, port, timeout=timeout, ssl=ssl))

    @classmethod
    def pooled(cls, host: str, port: int, *, max_connections: int = 64,
               timeout: float | None = DEFAULT_TIMEOUT, ssl: SSLContext | None = None) -> Any:
        """A client many tasks can share, over a pool of persistent connections; over TLS with ``ssl``."""
        return cls(ConnectionPool(host, port, max_connections=max_connections, timeout=timeout, ssl=ssl))


def call_args(service: Any, name: str, args: Sequence[Any]) -> Any:
    """The ``{name}_args`` struct of ``service`` holding positional ``args``."""
    args_cls = getattr(service, f"{name}_args")
    spec = args_cls.thrift_spec
    return args_cls(**{spec[fid][1]: a for fid, a in zip(sorted(spec), args, strict=False)})


def unwrap_result(name: str, result: Any) -> Any:
    """The value of a ``{name}_result`` struct; raise the declared exception it carries."""
    rspec = result.thrift_spec
    for fid in sorted(rspec):
        if fid != 0 and getattr(result, rspec[fid][1]) is not None:
            raise getattr(result, rspec[fid][1])
    if 0 in rspec:
        if result.success is None:
            raise TApplicationException(TApplicationException.MISSING_RESULT, f"{name} returned no result")
        return result.success
    return None


class FetchCommunicationClient(ConcreteServiceClient):
    """Client of a FetchCommunicationService."""

    service = FetchCommunicationService

    async def fetch(self, request: FetchRequest, *, add_references: bool = False) -> FetchResult:
        """The FetchResult; ``add_references=True`` calls ``add_references_to_communication`` on each
        Communication (concrete-python's client adds none, hence the default)."""
        return with_references(await self.call("fetch", request), add_references)

    async def getCommunicationCount(self) -> int:
        return await self.call("getCommunicationCount")

    async def getCommunicationIDs(self, offset: int, count: int) -> list[str]:
        return await self.call("getCommunicationIDs", offset, count)

    async def fetch_raw(self, ids: Sequence[str]) -> list[bytes]:
        """Fetch Communications as compact bytes, without decoding them."""
        args = codec.encode(FetchCommunicationService.fetch_args(request=FetchRequest(communicationIds=list(ids))))
        reply = await self._roundtrip("fetch", args)
        offset = parse_header(reply).body_offset
        # fetch_result {0: FetchResult success, 1: ServicesException ex}
        if reply[offset : offset + 2] == b"\x0c\x00":  # field 0, struct
            try:
                return _split_fetch_result(reply, offset + 2)
            except IndexError:
                raise ProtocolError("truncated fetch reply") from None
        result = codec.decode(reply, FetchCommunicationService.fetch_result, offset)[0]
        if result.ex is not None:
            raise result.ex
        raise TApplicationException(TApplicationException.MISSING_RESULT, "fetch returned no result")


def with_references(result: FetchResult, add_references: bool) -> FetchResult:
    """``result``, with ``add_references_to_communication`` called on each Communication if asked."""
    if add_references:
        for comm in result.communications or ():
            codec.add_references_to_communication(comm)
    return result


def _split_fetch_result(reply: bytes, offset: int) -> list[bytes]:
    # FetchResult {1: list<Communication>}
    pos = offset
    if reply[pos] == 0:
        return []
    if reply[pos] != 0x19:
        raise ProtocolError("unexpected FetchResult layout")
    head = reply[pos + 1]
    pos += 2
    n, etype = head >> 4, head & 0x0F
    if n == 15:
        n, pos = read_varint(reply, pos)
    if etype != 12:
        raise ProtocolError("FetchResult.communications is not a list of structs")
    if n > len(reply) - pos:
        raise ProtocolError(f"FetchResult claims {n} Communications in {len(reply) - pos} bytes")
    out = []
    for _ in range(n):
        end = codec.skip(reply, pos)
        out.append(reply[pos:end])
        pos = end
    return out


class StoreCommunicationClient(ConcreteServiceClient):
    """Client of a StoreCommunicationService."""

    service = StoreCommunicationService

    async def store(self, communication: Communication) -> None:
        await self.call("store", communication)

    async def store_raw(self, raw: bytes) -> None:
        """Store a Communication given as compact bytes, without decoding it."""
        reply = await self._roundtrip("store", b"\x1c" + raw + b"\x00")
        offset = parse_header(reply).body_offset
        if reply[offset : offset + 1] == b"\x00":
            return
        result = codec.decode(reply, StoreCommunicationService.store_result, offset)[0]
        if result.ex is not None:
            raise result.ex

