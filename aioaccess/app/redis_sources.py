"""redis:// and redis+cluster:// SOURCEs and TARGETs on the pipelined fast path (:mod:`aioaccess.backends.redis_pipe`).

``--redis-client redis-py`` (or a ``rediss://`` URL) keeps the redis-py path of
:mod:`.sources`; ``--shards N`` picks the sharded layout (default: concrete-python's
single hash on ``redis://``, 64 buckets on ``redis+cluster://``).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from ..exceptions import AioaccessError, BackendUnavailable
from .errors import SetupError

__all__ = ["CLUSTER_SHARDS", "index_ids", "open_pipe", "pipe_source", "pipe_target", "shards_for", "uses_pipe"]

#: Buckets of a corpus on redis+cluster:// unless --shards says otherwise.
CLUSTER_SHARDS = 64


def uses_pipe(spec: str, args: Any) -> bool:
    """Whether ``spec`` is served by the pipelined fast path (the default for redis://, unix://, redis+cluster://)."""
    scheme = spec.split("://", 1)[0]
    if scheme == "redis+cluster":
        return True
    return scheme in ("redis", "unix") and getattr(args, "redis_client", "pipe") == "pipe"


def shards_for(spec: str, args: Any) -> int:
    shards = getattr(args, "shards", -1)
    if shards is None or shards < 0:
        return CLUSTER_SHARDS if spec.startswith("redis+cluster://") else 0
    if spec.startswith("redis+cluster://") and shards == 0:
        raise SetupError("redis+cluster:// needs --shards N >= 1 (one hash would live on one node)")
    return shards


async def open_pipe(spec: str, args: Any, stack: AsyncExitStack) -> Any:
    """A RedisPipe (or RedisClusterPipe) for ``spec``, checked with PING, closed with ``stack``."""
    from ..backends.redis_pipe import RedisPipe

    if not args.redis_key:
        raise SetupError(f"{spec} needs --redis-key KEY (the hash holding the Communications)")
    try:
        if spec.startswith("redis+cluster://"):
            from ..backends.redis_cluster import RedisClusterPipe

            pipe: Any = RedisClusterPipe(spec, timeout=args.backend_timeout, wait_replicas=args.redis_wait_replicas)
        else:
            pipe = RedisPipe(spec, timeout=args.backend_timeout, wait_replicas=args.redis_wait_replicas)
    except ValueError as exc:
        raise SetupError(f"bad Redis URL {spec!r}: {exc}") from exc
    stack.push_async_callback(pipe.aclose)
    try:
        await pipe.command(b"PING")
    except BackendUnavailable as exc:
        raise SetupError(f"cannot reach Redis at {spec}: {exc.reason}") from exc
    return pipe


async def pipe_source(spec: str, args: Any, stack: AsyncExitStack) -> Any:
    from ..backends.redis_fast import RedisPipeCommunicationContainer

    shards = shards_for(spec, args)
    return RedisPipeCommunicationContainer(await open_pipe(spec, args, stack), args.redis_key, shards=shards)


async def pipe_target(spec: str, args: Any, stack: AsyncExitStack) -> Any:
    from ..backends.redis_fast import RedisPipeStoreHandler

    shards = shards_for(spec, args)
    return RedisPipeStoreHandler(await open_pipe(spec, args, stack), args.redis_key, shards=shards)


async def index_ids(spec: str, args: Any) -> tuple[int, int]:
    """Add every id of the hash ``args.redis_key`` (or its buckets) at ``spec`` to its id index;
    (ids indexed, hashes read)."""
    from ..backends.redis_fast import build_index
    from ..backends.redis_layout import RedisLayout

    async with AsyncExitStack() as stack:
        pipe = await open_pipe(spec, args, stack)
        layout = RedisLayout(args.redis_key, shards_for(spec, args))
        try:
            n = await build_index(pipe, layout)
        except AioaccessError as exc:
            raise SetupError(f"cannot index {args.redis_key}: {exc}") from exc
    return n, len(layout.hash_keys)
