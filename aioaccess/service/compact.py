"""The service over framed compact messages: argument parsing, the handler call, result encoding.

A plain ``fetch`` CALL is read in one pass (:func:`~aioaccess.wire.fetch_call.parse_fetch_call`)
and answered with stored bytes spliced into the reply when the handler has
``fetch_raw``; ``store_raw`` receives the Communication's bytes exactly as
they arrived.  Every other call is decoded with the codec.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from .. import codec
from ..codec import CodecError
from ..exceptions import CorruptCommunication, ProtocolError
from ..wire.fetch_call import parse_fetch_call, parse_fetch_request_ids
from ..wire.messages import (
    CALL,
    ONEWAY,
    REPLY,
    MessageHeader,
    build_application_exception,
    build_fetch_reply,
    build_fetch_reply_parts,
    build_message,
    parse_header,
    slice_struct_field,
)
from .core import Service
from .methods import UNKNOWN_METHOD, Method, failure, internal_error

__all__ = ["CompactCalls"]

logger = logging.getLogger("aioaccess.service")

#: Errors that are the caller's fault in a compact call: bytes or values that do not decode or encode.
_CALLERS_FAULT = (CodecError, ProtocolError)


class CompactCalls:
    """Answers framed compact call messages (without their length prefix) for one :class:`Service`."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.handler = service.handler
        self.methods = service.methods
        self.max_reply_size = service.max_reply_size
        #: Methods answered from bytes: fetch with stored bytes, store with the bytes as they arrived.
        self.from_bytes: dict[str, Callable[[bytes, MessageHeader], Awaitable[bytes]]] = {}
        if service.raw_fetch:
            self.from_bytes["fetch"] = self._fetch_raw
        if service.raw_store:
            self.from_bytes["store"] = self._store_raw
        self._raw_fetch = service.raw_fetch

    async def answer(self, msg: bytes) -> bytes | list[bytes] | None:
        """The framed reply to one message; None for oneway calls.  ProtocolError: close the connection.

        A large fetch reply comes as a list of buffers, to be written in order (``writelines``).
        """
        if self._raw_fetch:
            # The usual call: a plain fetch CALL, parsed in one pass, no header object.
            call = parse_fetch_call(msg)
            if call is not None:
                seqid, ids = call
                try:
                    comms = await self.handler.fetch_raw(ids)
                except Exception as exc:
                    return self.failed(self.methods["fetch"], seqid, exc)
                return self.fetch_reply(seqid, comms)
        header = parse_header(msg)
        reply = await self.reply(msg, header)
        return None if header.mtype == ONEWAY else reply

    async def reply(self, msg: bytes, header: MessageHeader) -> bytes:
        """The framed reply to the call ``msg`` whose header is ``header`` (built for a oneway call too)."""
        if header.mtype not in (CALL, ONEWAY):
            raise ProtocolError(f"message type {header.mtype} is not a call")
        method = self.methods.get(header.name)
        fast = self.from_bytes.get(header.name)
        if method is None or (method.call is None and fast is None):
            return build_application_exception(
                header.name, header.seqid, UNKNOWN_METHOD, f"Unknown method {header.name!r}"
            )
        try:
            if fast is not None:
                reply = await fast(msg, header)
            else:
                reply = await self._generic(method, msg, header)
        except Exception as exc:
            reply = self.failed(method, header.seqid, exc)
        return reply

    async def _generic(self, method: Method, msg: bytes, header: MessageHeader) -> bytes:
        args = codec.decode(msg, method.args_cls, header.body_offset)[0]
        result = self.service.result(method, await self.service.call(method, args))
        try:
            body = codec.encode(result)
        except CodecError as exc:
            # The handler's value is at fault, not the caller's bytes: INTERNAL_ERROR, not PROTOCOL_ERROR.
            raise RuntimeError(f"{method.name} returned a value that cannot be encoded: {exc}") from exc
        return build_message(method.name, REPLY, header.seqid, body)

    def fetch_reply(self, seqid: int, comms: list[bytes] | BaseException) -> bytes | list[bytes]:
        """The reply to a plain fetch CALL: ``comms`` spliced in (a list of buffers when large), or the reply
        to the exception that failed it (a reply over ``max_reply_size`` too)."""
        try:
            if isinstance(comms, BaseException):
                raise comms
            return build_fetch_reply_parts(seqid, comms, self.max_reply_size)
        except Exception as exc:
            return self.failed(self.methods["fetch"], seqid, exc)

    def failed(self, method: Method, seqid: int, exc: Exception) -> bytes:
        """The reply to a call of ``method`` that raised ``exc``."""
        answer = failure(method, exc, callers_fault=_CALLERS_FAULT)
        if answer.result is not None:
            try:
                return build_message(method.name, REPLY, seqid, codec.encode(answer.result))
            except CodecError as bad:  # e.g. a ServicesException without its required message
                logger.error("%s raised %r, which cannot be encoded: %s", method.name, answer.result, bad)
                answer = internal_error(method.name, exc)
        return build_application_exception(method.name, seqid, answer.kind, answer.message)

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
        if self.service.checks_raw and start < len(msg) and msg[start - 1] == 0x1C and msg[-1] == 0:
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

