"""RelayFetchHandler: a FetchCommunicationService answered by another one upstream.

concrete-python's relay opens a new TCP connection for every call; this one
keeps a bounded pool of persistent framed-compact connections to the upstream:
pipelined by default (many calls in flight per connection, replies matched in
order), or ``pipelined=False`` for aioaccess's one-call-per-connection
``ConnectionPool``.  Fetch results stay compact bytes (``fetch_raw``), and
:class:`RelayProcessor` goes further: it forwards each call message verbatim
and hands the upstream's reply back unchanged (``service.relay``), so
nothing is decoded on the way through.

An upstream that refuses, drops or does not answer within ``timeout``
surfaces as ``ServicesException("upstream fetch service HOST:PORT
unavailable: ...")``; connections that failed are dropped from the pool, so
the relay recovers by itself once the upstream is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, TypeVar

from .. import codec
from ..client import ConnectionPool, FetchCommunicationClient, TApplicationException
from ..client.pipelined import LostConnection, PipelinedPool
from ..exceptions import ProtocolError
from ..schema import (
    FetchCommunicationService,
    FetchRequest,
    FetchResult,
    NotImplementedException,
    ServiceInfo,
    ServicesException,
)
from ..server.dispatch import Processor
from ..service import RelayedCalls

__all__ = ["DEFAULT_RELAY_TIMEOUT", "RelayFetchHandler", "RelayProcessor"]

logger = logging.getLogger("aioaccess.handlers.relay")

#: Seconds a relayed call may take (waiting for a pooled connection included).
DEFAULT_RELAY_TIMEOUT = 10.0

T = TypeVar("T")


def _stale(exc: BaseException) -> bool:
    """A pooled connection the upstream had closed (e.g. it restarted): worth one more try."""
    if isinstance(exc, ConnectionResetError | BrokenPipeError | LostConnection):
        return True
    return isinstance(exc, ConnectionError) and isinstance(exc.__cause__, asyncio.IncompleteReadError)


class RelayFetchHandler:
    """Forwards about/alive/fetch/getCommunicationCount/getCommunicationIDs upstream.

    At most ``max_connections`` connections to ``host:port`` are open at once,
    however many callers there are; a call that gets no reply within
    ``timeout`` seconds fails.  The handler owns its pool: ``aclose()``
    (or ``async with``) closes it.
    """

    def __init__(self, host: str, port: int, *, max_connections: int = 64,
                 timeout: float = DEFAULT_RELAY_TIMEOUT, pipelined: bool = True, ssl: SSLContext | None = None) -> None:
        self.host = host
        self.port = int(port)
        self.timeout = timeout
        self.pipelined = pipelined
        self.pool: PipelinedPool | ConnectionPool
        if pipelined:
            self.pool = PipelinedPool(host, self.port, max_connections=max_connections, timeout=timeout, ssl=ssl)
        else:
            self.pool = ConnectionPool(host, self.port, max_connections=max_connections, timeout=timeout, ssl=ssl)
        self.client = FetchCommunicationClient(self.pool)

    @property
    def upstream(self) -> str:
        return f"{self.host}:{self.port}"

    def unavailable(self, exc: BaseException) -> ServicesException:
        """The ServicesException callers get when the upstream cannot answer."""
        if isinstance(exc, TimeoutError) and not str(exc):
            reason = f"no reply from {self.upstream} within {self.timeout:g} s"
        else:
            reason = str(exc) or type(exc).__name__
        return ServicesException(message=f"upstream fetch service {self.upstream} unavailable: {reason}")

    async def _relay(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` against the upstream; retry on connections it had closed."""
        if not self.pipelined and asyncio.current_task() is None:
            # The server may start a call outside any task (it only makes one when the call
            # suspends); ConnectionPool's timeouts need a task, and yielding once gives us one.
            await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        # After an upstream restart every idle ConnectionPool connection may be stale; the
        # pipelined pool drops closed connections at once, so one retry is enough there.
        attempts = 2 if self.pipelined else self.pool.max_connections + 1
        try:
            for attempt in range(attempts):
                try:
                    return await call()
                except (ServicesException, NotImplementedException):
                    raise  # the upstream's own answer
                except Exception as exc:
                    if _stale(exc) and attempt + 1 < attempts and loop.time() < deadline:
                        logger.debug("Retrying on a fresh connection to %s: %s", self.upstream, exc)
                        continue
                    raise
        except (ServicesException, NotImplementedException):
            raise
        except TApplicationException as exc:
            raise ServicesException(message=f"upstream fetch service {self.upstream} failed: {exc}") from exc
        except (OSError, TimeoutError, ProtocolError, codec.CodecError) as exc:
            logger.warning("Upstream fetch service %s unavailable: %s", self.upstream, exc)
            raise self.unavailable(exc) from exc
        raise AssertionError("unreachable")

    async def about(self) -> ServiceInfo:
        return await self._relay(self.client.about)

    async def alive(self) -> bool:
        return await self._relay(self.client.alive)

    async def fetch_raw(self, ids: Sequence[str]) -> list[bytes]:
        """The upstream's Communications as compact bytes, never decoded."""
        ids = list(ids)
        return await self._relay(lambda: self.client.fetch_raw(ids))

    async def fetch(self, request: FetchRequest) -> FetchResult:
        raws = await self.fetch_raw(list(request.communicationIds or ()))
        return FetchResult(communications=[codec.read_communication_from_buffer(r, False) for r in raws])

    async def getCommunicationCount(self) -> int:
        return await self._relay(self.client.getCommunicationCount)

    async def getCommunicationIDs(self, offset: int, count: int) -> list[str]:
        return await self._relay(lambda: self.client.getCommunicationIDs(offset, count))

    async def relay_message(self, msg: bytes) -> bytes:
        """Send one call message upstream as it is; return the upstream's reply payload."""
        framed = len(msg).to_bytes(4, "big") + msg
        return await self._relay(lambda: self.pool.call(framed))

    async def aclose(self) -> None:
        """Close the upstream pool."""
        await self.pool.aclose()

    async def __aenter__(self) -> RelayFetchHandler:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


class RelayProcessor(Processor):
    """The FetchCommunicationService :class:`~aioaccess.server.dispatch.Processor` of a relay, answering
    with :class:`~aioaccess.service.RelayedCalls`: each call message goes upstream verbatim and the
    upstream's reply comes back unchanged, nothing decoded.  Failures become the replies
    :class:`RelayFetchHandler` would give."""

    calls_class = RelayedCalls
    handler: RelayFetchHandler

    def __init__(self, handler: RelayFetchHandler, **kwargs: Any) -> None:
        super().__init__(FetchCommunicationService, handler, **kwargs)
