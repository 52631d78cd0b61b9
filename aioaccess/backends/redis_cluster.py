"""Redis Cluster on the fast path: one :class:`RedisPipe` per master, commands routed by key slot.

``redis+cluster://HOST:PORT[,HOST:PORT...]/`` names seed nodes; the slot map comes
from ``CLUSTER SLOTS``.  A ``MOVED`` reply updates the map (and schedules a full
refresh) and the command is sent again where Redis said; ``ASK`` sends it once
to the importing node after ``ASKING``.  A node that fails (refused, reset,
timed out) fails its callers with ``BackendUnavailable`` and makes the map be
refreshed, so calls reach the replica Redis promotes in its place: a read or store that failed on a node is
sent once more if the reloaded map names another node for its key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from redis.crc import key_slot

from ..exceptions import BackendUnavailable
from .redis_pipe import Read, ReadCallback, RedisPipe, RedisReplyError, ReplyError

__all__ = ["RedisClusterPipe", "parse_cluster_url"]

logger = logging.getLogger("aioaccess.backends.redis_cluster")

#: Redirects followed per command before giving up.
MAX_REDIRECTS = 5
#: Seconds between two topology refreshes at most.
REFRESH_INTERVAL = 0.25


def parse_cluster_url(url: str) -> list[tuple[str, int]]:
    """Seed nodes of ``redis+cluster://HOST:PORT[,HOST:PORT...]/``."""
    parts = urlsplit(url)
    if parts.scheme != "redis+cluster" or not parts.netloc:
        raise ValueError("expected redis+cluster://HOST:PORT[,HOST:PORT...]/")
    seeds = []
    for item in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"bad node {item!r}: expected HOST:PORT")
        seeds.append((host.strip("[]"), int(port)))
    return seeds


class RedisClusterPipe:
    """The :class:`RedisPipe` API (``hmget``, ``hset_indexed``, ``command``) over a Redis Cluster."""

    def __init__(self, url: str, *, timeout: float | None = 10.0, connections: int = 2,
                 wait_replicas: int = 0) -> None:
        self.seeds = parse_cluster_url(url)
        self.timeout = timeout
        self.connections = connections
        self.wait_replicas = wait_replicas
        self.loop = asyncio.get_running_loop()
        self.nodes: dict[tuple[str, int], RedisPipe] = {}
        self.slots: list[RedisPipe | None] = [None] * 16384
        self._refreshing: asyncio.Task[None] | None = None
        self._refreshed_at = -1e9
        self._slot_of: dict[bytes, int] = {}

    def node(self, host: str, port: int) -> RedisPipe:
        pipe = self.nodes.get((host, port))
        if pipe is None:
            pipe = self.nodes[(host, port)] = RedisPipe(f"redis://{host}:{port}/0", timeout=self.timeout,
                                                        connections=self.connections,
                                                        wait_replicas=self.wait_replicas)
            pipe.on_read_error = self._read_failed
        return pipe

    def _read_failed(self, exc: BaseException, key: bytes, group: list[Read]) -> bool:
        """A node's failed HMGET: follow MOVED/ASK for each read of ``group`` (True), else refresh and fail."""
        if isinstance(exc, RedisReplyError) and exc.reply.startswith(("MOVED ", "ASK ")) \
                or isinstance(exc, BackendUnavailable):  # a node down: its replica may have taken over
            for ids, callback, arg in group:
                fut = self._future_for(ids, callback, arg)
                self._route(fut, key, lambda pipe, i=ids: pipe.hmget(key, i), (b"HMGET", key, *ids), 1, None, exc)
            return True
        return False

    def _future_for(self, ids: Sequence[str], callback: ReadCallback, arg: Any) -> asyncio.Future[list[Any]]:
        """A future whose outcome goes to ``callback`` (reads routed the slow way: redirects, no slot map)."""
        fut: asyncio.Future[list[Any]] = self.loop.create_future()
        fut.add_done_callback(lambda f: callback(arg, ids, BackendUnavailable("redis", "cancelled") if f.cancelled()
                                                 else f.exception() or f.result(), 0))
        return fut

    # -- topology -----------------------------------------------------------
    async def refresh(self) -> None:
        """Load the slot map from the first node (known or seed) that answers ``CLUSTER SLOTS``."""
        candidates = [*(k for k in self.nodes if k not in self.seeds), *self.seeds]
        error: BaseException | None = None
        for host, port in dict.fromkeys(candidates):
            try:
                ranges = await self.node(host, port).command(b"CLUSTER", b"SLOTS")
            except BackendUnavailable as exc:
                error = exc
                continue
            slots: list[RedisPipe | None] = [None] * 16384
            for start, end, master, *_ in ranges:
                pipe = self.node(master[0].decode() or host, int(master[1]))
                slots[start:end + 1] = [pipe] * (end + 1 - start)
            self.slots = slots
            self._refreshed_at = self.loop.time()
            return
        raise BackendUnavailable("redis", f"no cluster node answered CLUSTER SLOTS: {error}")

    async def refresh_shared(self) -> None:
        """Until a map loaded after this call began is in place (the refresh every caller shares)."""
        await asyncio.shield(self.schedule_refresh())

    def schedule_refresh(self) -> asyncio.Task[None]:
        """Refresh the slot map soon (at most every REFRESH_INTERVAL seconds); one refresh at a time, shared."""
        task = self._refreshing
        if task is None or task.done():
            task = self._refreshing = self.loop.create_task(self._refresh_later())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    async def _refresh_later(self) -> None:
        await asyncio.sleep(max(0.0, self._refreshed_at + REFRESH_INTERVAL - self.loop.time()))
        await self.refresh()

    def pipe_for(self, key: bytes) -> RedisPipe | None:
        return self.slots[key_slot(key)]

    # -- routed operations ------------------------------------------------------
    def _known_pipe(self, key: bytes) -> RedisPipe | None:
        slot = self._slot_of.get(key)
        if slot is None:
            slot = self._slot_of[key] = key_slot(key)
        return self.slots[slot]

    def hmget(self, key: bytes, ids: Sequence[str]) -> asyncio.Future[list[Any]]:
        pipe = self._known_pipe(key)
        if pipe is not None:  # the common case: the node's own future; a MOVED reply comes to _read_failed
            return pipe.hmget(key, ids)
        fut: asyncio.Future[list[Any]] = self.loop.create_future()
        self._route(fut, key, lambda pipe: pipe.hmget(key, ids), (b"HMGET", key, *ids), 0)
        return fut

    def hmget_then(self, key: bytes, ids: Sequence[str], callback: ReadCallback, arg: Any) -> None:
        """:meth:`RedisPipe.hmget_then` on the node of ``key``'s slot (redirects followed)."""
        pipe = self._known_pipe(key)
        if pipe is not None:  # the common case: no future at all; a MOVED reply comes to _read_failed
            pipe.hmget_then(key, ids, callback, arg)
            return
        self._route(self._future_for(ids, callback, arg), key, lambda pipe: pipe.hmget(key, ids),
                    (b"HMGET", key, *ids), 0)

    def hset_indexed(self, key: bytes, index_key: bytes | None, comm_id: str, raw: bytes) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = self.loop.create_future()
        self._route(fut, key, lambda pipe: pipe.hset_indexed(key, index_key, comm_id, raw), None, 0)
        return fut

    def _route(self, fut: asyncio.Future[Any], key: bytes, send: Any, asking: tuple[Any, ...] | None,
               redirects: int, pipe: RedisPipe | None = None, error: BaseException | None = None) -> None:
        if error is not None:  # a redirect already received: act on it
            self._handle(error, fut, key, send, asking, redirects)
            return
        pipe = pipe or self.pipe_for(key)
        if pipe is None:  # no map yet (or a hole in it): load it, then route
            task = self.loop.create_task(self._route_after_refresh(fut, key, send, asking, redirects))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            return
        inner = send(pipe)
        inner.add_done_callback(lambda f: self._routed(f, fut, key, send, asking, redirects))

    async def _route_after_refresh(self, fut: asyncio.Future[Any], key: bytes, send: Any,
                                   asking: tuple[Any, ...] | None, redirects: int) -> None:
        try:
            await self.refresh()
        except BackendUnavailable as exc:
            if not fut.done():
                fut.set_exception(exc)
            return
        if self.pipe_for(key) is None:
            if not fut.done():
                fut.set_exception(BackendUnavailable("redis", f"no cluster node serves slot {key_slot(key)}"))
            return
        self._route(fut, key, send, asking, redirects)

    def _routed(self, inner: asyncio.Future[Any], fut: asyncio.Future[Any], key: bytes, send: Any,
                asking: tuple[Any, ...] | None, redirects: int) -> None:
        exc = inner.exception() if not inner.cancelled() else BackendUnavailable("redis", "cancelled")
        if fut.done():
            return
        if exc is None:
            fut.set_result(inner.result())
            return
        self._handle(exc, fut, key, send, asking, redirects)

    def _handle(self, exc: BaseException, fut: asyncio.Future[Any], key: bytes, send: Any,
                asking: tuple[Any, ...] | None, redirects: int) -> None:
        """Follow a redirect in ``exc``, or fail ``fut`` with it."""
        if fut.done():
            return
        if isinstance(exc, RedisReplyError) and redirects < MAX_REDIRECTS:
            kind, _, rest = exc.reply.partition(" ")
            slot, _, where = rest.partition(" ")
            host, _, port = where.rpartition(":")
            if kind == "MOVED" and port.isdigit():
                target = self.node(host, int(port))
                self.slots[int(slot)] = target
                self.schedule_refresh()
                self._route(fut, key, send, asking, redirects + 1, target)
                return
            if kind == "ASK" and port.isdigit() and asking is not None:
                ask = self.node(host, int(port)).execute((b"ASKING",), asking)
                ask.add_done_callback(lambda f: self._asked(f, fut))
                return
            if kind in ("TRYAGAIN", "CLUSTERDOWN"):
                self.schedule_refresh()
        elif isinstance(exc, BackendUnavailable) and redirects < MAX_REDIRECTS:
            task = self.loop.create_task(self._retry_elsewhere(exc, fut, key, send, asking, redirects))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            return
        fut.set_exception(exc)

    async def _retry_elsewhere(self, exc: BaseException, fut: asyncio.Future[Any], key: bytes, send: Any,
                               asking: tuple[Any, ...] | None, redirects: int) -> None:
        """A node failed: reload the map, and send again if another node now serves the key; else fail."""
        failed = self.pipe_for(key)
        with contextlib.suppress(BackendUnavailable):
            await self.refresh_shared()
        now = self.pipe_for(key)
        if fut.done():
            return
        if now is None or now is failed:
            self.schedule_refresh()  # not moved (yet): its replica may be taking over
            fut.set_exception(exc)
            return
        self._route(fut, key, send, asking, redirects + 1, now)

    @staticmethod
    def _asked(reply: asyncio.Future[list[Any]], fut: asyncio.Future[Any]) -> None:
        error = BackendUnavailable("redis", "cancelled") if reply.cancelled() else reply.exception()
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        elif isinstance(reply.result()[-1], ReplyError):
            fut.set_exception(RedisReplyError("ASK redirect", reply.result()[-1]))
        else:
            fut.set_result(reply.result()[-1])

    async def command(self, *args: bytes | str | int) -> Any:
        """One command, on the node of its key (``args[1]``), or on any node when it has none."""
        if len(args) < 2 or args[0] in (b"CLUSTER", b"PING"):
            if not any(self.slots):
                await self.refresh()
            pipe = next((p for p in self.slots if p is not None), None) or self.node(*self.seeds[0])
            return await pipe.command(*args)
        return await self.call(*args)

    def call(self, *args: bytes | str | int) -> asyncio.Future[Any]:
        """A future of one command on the node of its key (``args[1]``)."""
        key = args[1] if isinstance(args[1], bytes) else str(args[1]).encode()
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._route(fut, key, lambda pipe: pipe.call(*args), args, 0)
        return fut

    async def aclose(self) -> None:
        task = self._refreshing
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, BackendUnavailable):
                await task
        for pipe in self.nodes.values():
            await pipe.aclose()
