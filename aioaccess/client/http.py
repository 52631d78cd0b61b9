"""Async clients of Concrete services over HTTP/TJSON (concrete-python's THttpClient + TJSONProtocol).

Each call is one ``POST`` of an Apache TJSONProtocol message, as concrete-python's
``HTTPFetchCommunicationClientWrapper`` / ``HTTPStoreCommunicationClientWrapper``
send it, to any endpoint that speaks it: ``aioaccess http-server``,
concrete-python's ``access-http-server.py``, Apache's THttpServer.
"""

from __future__ import annotations

from collections.abc import Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, ClassVar

import aiohttp
from thriftpy2.thrift import TApplicationException

from .. import codec
from ..codec import tjson
from ..exceptions import ProtocolError
from ..http.settings import CONTENT_TYPE  # what Apache's THttpClient sends; the store endpoint requires it
from ..schema import Communication, FetchRequest
from .client import (
    ConcreteServiceClient,
    FetchCommunicationClient,
    StoreCommunicationClient,
    call_args,
    unwrap_result,
)
from .connection import DEFAULT_TIMEOUT

__all__ = [
    "HTTPConcreteServiceClient",
    "HTTPConcreteServiceClientWrapper",
    "HTTPFetchCommunicationClient",
    "HTTPFetchCommunicationClientWrapper",
    "HTTPStoreCommunicationClient",
    "HTTPStoreCommunicationClientWrapper",
]



class HTTPConcreteServiceClient(ConcreteServiceClient):
    """Calls any method of ``service`` by POSTing TJSON messages to ``uri`` over one keep-alive session.

    An answer other than HTTP 200 raises ``ConnectionError`` with the status
    and the start of the body; a TApplicationException reply raises it.
    """

    def __init__(self, uri: str, *, timeout: float | None = DEFAULT_TIMEOUT,
                 headers: dict[str, str] | None = None, ssl: SSLContext | None = None) -> None:
        self.uri = uri
        self.timeout = timeout
        self.ssl = ssl  # an SSLContext for https:// URIs (None: the system's CAs)
        self.headers = {"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE, **(headers or {})}
        self.session: aiohttp.ClientSession | None = None
        self.seqid = 0

    async def call(self, name: str, *args: Any) -> Any:
        body = tjson.struct_to_tjson(call_args(self.service, name, args))
        return await self._call_tjson(name, body)

    async def _call_tjson(self, name: str, struct_json: str | bytes) -> Any:
        self.seqid += 1
        data = await self._post(tjson.build_message(name, tjson.CALL, self.seqid, struct_json))
        try:
            msg = tjson.parse_message(data)
        except tjson.TJSONError as exc:
            raise ProtocolError(f"{self.uri} answered {name} with something that is not TJSON: {exc}") from None
        if msg.mtype == tjson.EXCEPTION:
            kind = msg.args.get("2", {}).get("i32", TApplicationException.UNKNOWN)
            raise TApplicationException(int(kind), msg.args.get("1", {}).get("str"))
        if msg.mtype != tjson.REPLY or msg.name != name:
            raise ProtocolError(f"expected a reply to {name}, got message type {msg.mtype} for {msg.name!r}")
        result = tjson.struct_from_doc(msg.args, getattr(self.service, f"{name}_result"))
        return unwrap_result(name, codec.gc_untrack(result))  # as decode() leaves objects

    async def _post(self, body: bytes) -> bytes:
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                                 connector=aiohttp.TCPConnector(ssl=self.ssl or True))
        try:
            async with self.session.post(self.uri, data=body, headers=self.headers) as resp:
                data = await resp.read()
        except aiohttp.ClientError as exc:
            raise ConnectionError(f"{self.uri}: {exc}") from exc
        if resp.status != 200:
            reason = " ".join(data[:200].decode(errors="replace").split())
            raise ConnectionError(f"{self.uri} answered HTTP {resp.status}: {reason}")
        return data

    async def aclose(self) -> None:
        """Close the HTTP session."""
        session, self.session = self.session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Any:
        return self

    @classmethod
    def connect(cls, *args: Any, **kwargs: Any) -> Any:
        """Not for HTTP: construct the client with a URI (one keep-alive session serves many tasks)."""
        raise TypeError(f"{cls.__name__} talks HTTP: use {cls.__name__}(uri)")

    pooled = connect


class HTTPFetchCommunicationClient(HTTPConcreteServiceClient, FetchCommunicationClient):
    """Client of a FetchCommunicationService over HTTP/TJSON."""

    async def fetch_raw(self, ids: Sequence[str]) -> list[bytes]:
        """Fetch Communications as compact bytes (re-encoded from the TJSON reply)."""
        result = await self.fetch(FetchRequest(communicationIds=list(ids)))
        return [codec.write_communication_to_buffer(c) for c in result.communications or ()]


class HTTPStoreCommunicationClient(HTTPConcreteServiceClient, StoreCommunicationClient):
    """Client of a StoreCommunicationService over HTTP/TJSON."""

    async def store_raw(self, raw: bytes) -> None:
        """Store a Communication given as compact bytes (transcoded to TJSON, never decoded)."""
        struct_json, end = codec.to_tjson(raw, Communication, 0)
        if end != len(raw):
            raise ValueError(f"{len(raw) - end} bytes follow the Communication")
        await self._call_tjson("store", b'{"1":{"rec":' + struct_json + b"}}")


class HTTPConcreteServiceClientWrapper:
    """``async with Wrapper(uri) as client``: an HTTP/TJSON client, its session closed on exit."""

    client_class: ClassVar[type[HTTPConcreteServiceClient]]

    def __init__(self, uri: str, *, timeout: float | None = DEFAULT_TIMEOUT, ssl: SSLContext | None = None) -> None:
        self.uri = uri
        self.timeout = timeout
        self.ssl = ssl
        self._client: HTTPConcreteServiceClient | None = None

    async def __aenter__(self) -> Any:
        self._client = self.client_class(self.uri, timeout=self.timeout, ssl=self.ssl)
        return self._client

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class HTTPFetchCommunicationClientWrapper(HTTPConcreteServiceClientWrapper):
    """``async with HTTPFetchCommunicationClientWrapper(uri) as client: await client.fetch(...)``."""

    client_class = HTTPFetchCommunicationClient

    async def __aenter__(self) -> HTTPFetchCommunicationClient:
        return await super().__aenter__()


class HTTPStoreCommunicationClientWrapper(HTTPConcreteServiceClientWrapper):
    """``async with HTTPStoreCommunicationClientWrapper(uri) as client: await client.store(comm)``."""

    client_class = HTTPStoreCommunicationClient

    async def __aenter__(self) -> HTTPStoreCommunicationClient:
        return await super().__aenter__()
