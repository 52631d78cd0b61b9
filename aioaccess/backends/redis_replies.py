"""What the Redis pipe does with replies: futures and read callbacks settled, store acknowledgements checked."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..exceptions import BackendUnavailable
from .redis_connection import RedisReplyError, ReplyError

__all__ = ["Read", "ReadCallback", "ReadErrorHook", "calls_done", "read_done", "reads_done", "settle", "settle_values",
           "write_done"]

logger = logging.getLogger("aioaccess.backends.redis_pipe")

#: ``callback(arg, ids, values, start)``: the values of ``ids`` are ``values[start:start + len(ids)]`` (None
#: where absent); a failed read gets the BackendUnavailable as ``values``.  No object is made per read.
ReadCallback = Callable[[Any, Sequence[str], "list[Any] | BaseException", int], None]
#: A queued read: ``(ids, callback, arg)``.
Read = tuple[Sequence[str], ReadCallback, Any]
#: ``hook(error, key, [(ids, callback, arg), ...])`` -> True if it took over those reads (e.g. a cluster's MOVED).
ReadErrorHook = Callable[[BaseException, bytes, list[Read]], bool]


def _name(arg: bytes | str | int) -> str:
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


def calls_done(calls: list[tuple[Sequence[bytes | str | int], asyncio.Future[Any]]],
                result: list[Any] | BaseException) -> None:
    for n, (args, fut) in enumerate(calls):
        if isinstance(result, BaseException):
            settle(fut, result)
        elif isinstance(result[n], ReplyError):
            settle(fut, RedisReplyError(_name(args[0]), result[n]))
        else:
            settle(fut, result[n])


def settle(fut: asyncio.Future[Any], result: Any) -> None:
    """Set ``fut``'s result, or its exception when ``result`` is one (nothing if it is done already)."""
    if fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)


def settle_values(fut: asyncio.Future[Any], ids: Sequence[str], values: list[Any] | BaseException,
                  start: int) -> None:
    """A :data:`ReadCallback` that settles ``fut`` with the read's values (or its error)."""
    settle(fut, values if isinstance(values, BaseException) else values[start:start + len(ids)])


def reads_done(groups: list[tuple[bytes, list[Read]]], result: list[Any] | BaseException,
                on_error: ReadErrorHook | None) -> None:
    """A batch of HMGETs answered (``result``: their replies) or failed."""
    for n, (key, group) in enumerate(groups):
        reply = result if isinstance(result, BaseException) else result[n]
        if isinstance(reply, ReplyError):  # (a hiredis.ReplyError is an exception too)
            reply = RedisReplyError(f"HMGET {key.decode('utf-8', 'replace')}", reply)
        read_done(key, group, reply, on_error)


def read_done(key: bytes, group: list[Read], result: list[Any] | BaseException,
               on_error: ReadErrorHook | None) -> None:
    """Hand each read of ``group`` its values (``result``: its HMGET's values), or the error."""
    if not isinstance(result, BaseException):
        start = 0
        for ids, callback, arg in group:
            try:
                callback(arg, ids, result, start)
            except Exception:  # logged; the other reads of the batch still get their values
                logger.exception("A Redis read's callback failed")
            start += len(ids)
        return
    if on_error is not None and on_error(result, key, group):
        return
    for ids, callback, arg in group:
        try:
            callback(arg, ids, result, 0)
        except Exception:
            logger.exception("A Redis read's callback failed")


def write_done(key: bytes, stores: list[tuple[str, bytes, asyncio.Future[None]]],
                result: list[Any] | BaseException, wait_replicas: int) -> None:
    if not isinstance(result, BaseException):
        replies = list(result)
        acked = replies.pop() if wait_replicas else None
        if replies and isinstance(replies[-1], list):  # EXEC's array: one reply per queued command
            replies += replies.pop()
        error = next((r for r in (*replies, acked) if isinstance(r, ReplyError)), None)
        what = f"HSET {key.decode('utf-8', 'replace')}"
        if error is not None:
            result = RedisReplyError(what, error)
        elif acked is not None and acked < wait_replicas:
            result = BackendUnavailable("redis", f"{what}: {acked} of {wait_replicas} replicas acknowledged in time")
        else:
            for _, _, fut in stores:
                settle(fut, None)
            return
    for _, _, fut in stores:
        settle(fut, result)
