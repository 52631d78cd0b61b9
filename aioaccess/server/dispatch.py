"""Method name -> handler call, for one Thrift service.

Calls are decoded with the codec and answered with the method's result
struct.  Two fast paths skip objects entirely: a handler with ``fetch_raw``
answers ``fetch`` with stored bytes spliced into the reply, and a handler with
``store_raw`` receives the Communication's bytes exactly as they arrived.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .. import codec
from ..codec import CodecError
from ..exceptions import AioaccessError, CorruptCommunication, ProtocolError
from ..wire.messages import (
    CALL,
    DEFAULT_MAX_REPLY_SIZE,
    ONEWAY,
    REPLY,
    MessageHeader,
    build_application_exception,
    build_fetch_reply,
    build_fetch_reply_parts,
    build_message,
    parse_fetch_call,
    parse_fetch_request_ids,
    parse_header,
    slice_struct_field,
)

__all__ = ["CallObserver", "Processor", "UNKNOWN_METHOD", "INTERNAL_ERROR", "PROTOCOL_ERROR"]

logger = logging.getLogger("aioaccess.dispatch")

# TApplicationException types (Apache Thrift numbering).
UNKNOWN_METHOD, INVALID_MESSAGE_TYPE, INTERNAL_ERROR, PROTOCOL_ERROR = 1, 2, 6, 7

#: ``observer(method, outcome, seconds, reply_bytes)``; outcome is "ok",
#: "exception" (a declared Thrift exception) or "error".
CallObserver = Callable[[str, str, float, int], None]


class _Method:
    __slots__ = ("name", "args_cls", "result_cls", "arg_names", "call", "exceptions", "has_success", "fast")

    def __init__(self, service: Any, name: str, handler: Any) -> None:
        self.name = name
        self.args_cls = getattr(service, f"{name}_args")
        self.result_cls = getattr(service, f"{name}_result", None)
        spec = self.args_cls.thrift_spec
        self.arg_names = [spec[fid][1] for fid in sorted(spec)]
        self.call = getattr(handler, name, None)
        rspec = self.result_cls.thrift_spec if self.result_cls is not None else {}
        self.has_success = 0 in rspec
        # (exception class, result field name) for each declared ``throws``
        self.exceptions = [(rspec[fid][2], rspec[fid][1]) for fid in sorted(rspec) if fid != 0]
        self.fast: Callable[[bytes, MessageHeader], Awaitable[bytes]] | None = None


class Processor:
    """Answers framed compact messages for one service with one handler."""

    def __init__(self, service: Any, handler: Any, *, observer: CallObserver | None = None,
                 max_reply_size: int = DEFAULT_MAX_REPLY_SIZE) -> None:
        self.service = service
        self.handler = handler
        self.observer = observer
        #: A fetch reply of several Communications over this many bytes is a ServicesException.
        self.max_reply_size = max_reply_size
        #: Whether calls may start outside a Task and finish inline when they never wait.
        #: Only handlers that say so (``inline_safe``) get this: ``asyncio.timeout``,
        #: redis-py and aiobotocore need ``asyncio.current_task()``.
        self.inline = bool(getattr(handler, "inline_safe", False))
        #: Whether such calls wait only on plain futures, so that they may finish without a Task too.
        self.task_free = self.inline and bool(getattr(handler, "task_free", False))
        self.methods: dict[str, _Method] = {}
        for name in service.thrift_services:
            self.methods[name] = _Method(service, name, handler)
        fetch = self.methods.get("fetch")
        if fetch is not None and hasattr(handler, "fetch_raw"):
            fetch.fast = self._fetch_raw
        # fetch calls skip the generic path while nothing observes timings
        self._fetch_now = fetch is not None and fetch.fast is not None
        store = self.methods.get("store")
        if store is not None and hasattr(handler, "store_raw"):
            store.fast = self._store_raw
        #: The handler's store_raw checks that its bytes are exactly one Communication (``checks_raw``).
        self._store_checks_raw = bool(getattr(handler, "checks_raw", False))

    def fetch_table(self) -> dict[str, bytes] | None:
        """id -> compact bytes the handler's container keeps current (its ``raw_table``), or None.

        A connection answers a fetch of ids all in it without calling the handler.  Ask
        from the serving loop, once per connection: a container may tie the table to its loop.
        """
        return getattr(self.handler, "raw_table", None) if self._fetch_now else None

    def fetch_table_guard(self) -> Callable[[], object] | None:
        """What to call before each use of :meth:`fetch_table` (the handler's ``raw_table_guard``), or None."""
        return getattr(self.handler, "raw_table_guard", None) if self._fetch_now else None

    async def process(self, msg: bytes) -> bytes | list[bytes] | None:
        """Answer one message; None for oneway calls.  ProtocolError: close the connection.

        A large fetch reply comes as a list of buffers, to be written in order (``writelines``).
        """
        if self._fetch_now and self.observer is None:
            # The hot path: a plain fetch CALL, parsed in one pass, no header object, no timing.
            call = parse_fetch_call(msg)
            if call is not None:
                seqid, ids = call
                try:
                    return build_fetch_reply_parts(seqid, await self.handler.fetch_raw(ids), self.max_reply_size)
                except Exception as exc:
                    return self._failed(self.methods["fetch"], MessageHeader("fetch", CALL, seqid, 0), exc)[1]
        header = parse_header(msg)
        if header.mtype not in (CALL, ONEWAY):
            raise ProtocolError(f"message type {header.mtype} is not a call")
        method = self.methods.get(header.name)
        if method is None or (method.call is None and method.fast is None):
            return build_application_exception(
                header.name, header.seqid, UNKNOWN_METHOD, f"Unknown method {header.name!r}"
            )
        started = time.perf_counter()
        outcome = "ok"
        try:
            if method.fast is not None:
                reply = await method.fast(msg, header)
            else:
                reply = await self._generic(method, msg, header)
        except Exception as exc:
            outcome, reply = self._failed(method, header, exc)
        if self.observer is not None:
            self.observer(header.name, outcome, time.perf_counter() - started, len(reply))
        return None if header.mtype == ONEWAY else reply

    async def _generic(self, method: _Method, msg: bytes, header: MessageHeader) -> bytes:
        args = codec.decode(msg, method.args_cls, header.body_offset)[0]
        value = method.call(*[getattr(args, n) for n in method.arg_names])
        if inspect.isawaitable(value):
            value = await value
        result = method.result_cls()
        if method.has_success:
            result.success = value
        try:
            body = codec.encode(result)
        except CodecError as exc:
            # The handler's value is at fault, not the caller's bytes: INTERNAL_ERROR, not PROTOCOL_ERROR.
            raise RuntimeError(f"{method.name} returned a value that cannot be encoded: {exc}") from exc
        return build_message(method.name, REPLY, header.seqid, body)

    def _failed(self, method: _Method, header: MessageHeader, exc: Exception) -> tuple[str, bytes]:
        """(outcome, reply) for a call that raised ``exc``."""
        if isinstance(exc, CodecError | ProtocolError):
            return "error", build_application_exception(
                header.name, header.seqid, PROTOCOL_ERROR, f"Cannot read arguments of {header.name}: {exc}"
            )
        declared = self._declared(method, exc)
        if declared is not None:
            return "exception", declared(header.seqid)
        if isinstance(exc, AioaccessError):  # an expected outage: no traceback
            logger.warning("%s failed: %s", header.name, exc)
        else:
            logger.error("%s failed", header.name, exc_info=exc)
        return "error", build_application_exception(
            header.name, header.seqid, INTERNAL_ERROR, f"Internal error in {header.name}: {exc!r}"
        )

    def _declared(self, method: _Method, exc: Exception) -> Callable[[int], bytes] | None:
        """Return a reply builder if ``exc`` maps onto a declared Thrift exception."""
        # The exception itself if declared; else aioaccess's own errors become a
        # ServicesException where the method declares one (never, say, a
        # NotImplementedException: that would misreport a backend failure).
        match = next(((f, exc) for cls, f in method.exceptions if isinstance(exc, cls)), None)
        if match is None and isinstance(exc, AioaccessError):
            match = next(((f, cls(message=str(exc))) for cls, f in method.exceptions
                          if cls.__name__ == "ServicesException"), None)
        if match is None:
            return None
        field, thrift_exc = match
        try:
            body = codec.encode(method.result_cls(**{field: thrift_exc}))
        except CodecError as exc:  # e.g. a ServicesException without its required message
            logger.error("%s raised %r, which cannot be encoded: %s", method.name, thrift_exc, exc)
            return None
        logger.info("%s raised %s", method.name, thrift_exc)
        return lambda seqid: build_message(method.name, REPLY, seqid, body)

    async def _fetch_raw(self, msg: bytes, header: MessageHeader) -> bytes:
        ids = parse_fetch_request_ids(msg, header.body_offset)
        if ids is None:
            args = codec.decode(msg, self.methods["fetch"].args_cls, header.body_offset)[0]
            if args.request is None:
                raise ProtocolError("fetch() arguments hold no FetchRequest")
            ids = list(args.request.communicationIds or ())
        comms = await self.handler.fetch_raw(ids)
        return build_fetch_reply(header.seqid, comms, self.max_reply_size)

    async def _store_raw(self, msg: bytes, header: MessageHeader) -> bytes:
        start = header.body_offset + 1
        if self._store_checks_raw and start < len(msg) and msg[start - 1] == 0x1C and msg[-1] == 0:
            # Most likely store_args{1: Communication} and its STOP: the handler's check of the bytes is the
            # one pass.  Bytes it refuses are read again below, so they are refused exactly as before.
            try:
                raw = msg[start:-1]
                await self.handler.store_raw(codec.read_string_field(raw, 1), raw)
                return build_message("store", REPLY, header.seqid, b"\x00")
            except (CodecError, CorruptCommunication):
                pass
        span = slice_struct_field(msg, header.body_offset, 1, codec.skip)
        if span is None:
            raise ProtocolError("store() arguments hold no Communication")
        raw = msg[span[0] : span[1]]
        comm_id = codec.read_string_field(raw, 1)
        await self.handler.store_raw(comm_id, raw)
        return build_message("store", REPLY, header.seqid, b"\x00")
