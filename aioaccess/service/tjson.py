"""The service over Apache TJSONProtocol messages (the HTTP endpoint's calls).

A fetch is answered from compact bytes (``handler.fetch_raw``) transcoded
piece by piece, never decoded into objects.
"""

from __future__ import annotations

import logging

from ..codec import CodecError, tjson
from ..exceptions import AioaccessError, ReplyTooLarge
from ..schema import Communication
from .core import Service
from .methods import PROTOCOL_ERROR, UNKNOWN_METHOD, Method, failure

__all__ = ["TJSONCalls"]

logger = logging.getLogger("aioaccess.service")

#: A handler's failure that only logs a warning: stored bytes that do not transcode, an outage.
_QUIET = (CodecError, AioaccessError)


class TJSONCalls:
    """Answers TJSON call messages for one :class:`Service` (handlers with sync or async methods)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.handler = service.handler
        self.max_reply_size = service.max_reply_size
        #: Methods the handler answers; fetch also when it has only ``fetch_raw``.
        self.methods: dict[str, Method] = {
            name: m for name, m in service.methods.items()
            if m.call is not None or (name == "fetch" and service.raw_fetch)}

    async def answer(self, msg: tjson.TJSONMessage) -> bytes:
        """The TJSON reply to one call message."""
        method = self.methods.get(msg.name)
        if method is None:
            return tjson.application_exception(msg.name, msg.seqid, UNKNOWN_METHOD, f"Unknown method {msg.name!r}")
        try:
            args = tjson.struct_from_doc(msg.args, method.args_cls)
        except Exception as exc:  # whatever the client's document makes the reader raise
            if not isinstance(exc, tjson.TJSONError):  # e.g. OverflowError from {"dbl": 1e400 as an integer}
                logger.warning("Reading arguments of %s raised %r (the client's fault; a TJSONError expected)",
                               msg.name, exc)
            return tjson.application_exception(msg.name, msg.seqid, PROTOCOL_ERROR,
                                               f"Cannot read arguments of {msg.name}: {exc}")
        for name, cls_name in method.struct_args:
            if getattr(args, name) is None:
                return tjson.application_exception(msg.name, msg.seqid, PROTOCOL_ERROR,
                                                   f"{msg.name}() arguments hold no {cls_name}")
        fast = msg.name == "fetch" and self.service.raw_fetch
        try:
            if fast:
                raws = await self.handler.fetch_raw(list(args.request.communicationIds or ()))
                size = sum(map(len, raws))
                if size > self.max_reply_size:  # e.g. one big id asked for a thousand times
                    raise ReplyTooLarge(size, self.max_reply_size)
                return tjson.fetch_reply(msg.seqid, raws, Communication)
            result = self.service.result(method, await self.service.call(method, args))
        except Exception as exc:
            # A CodecError from the handler of a call with objects: the caller's values do not encode (say, a
            # store of a Communication missing a required field): their fault, as in the Thrift server.
            answer = failure(method, exc, callers_fault=() if fast else (CodecError,), quiet=_QUIET)
            if answer.result is None:
                return tjson.application_exception(msg.name, msg.seqid, answer.kind, answer.message)
            result = answer.result
        return tjson.build_message(msg.name, tjson.REPLY, msg.seqid, tjson.struct_to_tjson(result))
