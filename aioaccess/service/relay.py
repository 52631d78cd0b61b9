"""The service answered by another server upstream: each call message is forwarded verbatim.

The client's message (its seqid included) goes upstream unchanged and the
upstream's reply comes back unchanged: no argument or result is decoded.
Calls the handler cannot relay (unknown methods, oneway messages) are
answered by the compact service as usual.
"""

from __future__ import annotations

import logging

from .. import codec
from .._types import MessageRelay
from ..exceptions import ProtocolError
from ..schema import ServicesException
from ..wire.messages import CALL, EXCEPTION, REPLY, build_application_exception, build_message, parse_header
from .compact import CompactCalls
from .core import Service
from .methods import INTERNAL_ERROR, Method, internal_error

__all__ = ["RelayedCalls"]

logger = logging.getLogger("aioaccess.service")


class RelayedCalls(CompactCalls):
    """Compact calls of a :class:`~aioaccess._types.MessageRelay` handler, relayed as they arrived."""

    def __init__(self, service: Service) -> None:
        if not isinstance(service.handler, MessageRelay):
            raise TypeError(f"{type(service.handler).__name__} cannot relay call messages (see MessageRelay)")
        super().__init__(service)

    async def answer(self, msg: bytes) -> bytes | list[bytes] | None:
        header = parse_header(msg)
        method = self.methods.get(header.name)
        if header.mtype != CALL or method is None:
            return await super().answer(msg)
        relay = self.handler
        try:
            reply = await relay.relay_message(msg)
            check = parse_header(reply)
            if check.mtype not in (REPLY, EXCEPTION) or check.name != header.name or check.seqid != header.seqid:
                raise ServicesException(message=f"upstream fetch service {relay.upstream} "
                                                f"answered {check!r} to {header!r}")
            return len(reply).to_bytes(4, "big") + reply
        except ServicesException as exc:
            return self._unavailable(method, header.seqid, exc)
        except ProtocolError as exc:
            return self._unavailable(method, header.seqid, relay.unavailable(exc))
        except Exception as exc:
            answer = internal_error(header.name, exc, quiet=())
            return build_application_exception(header.name, header.seqid, answer.kind, answer.message)

    def _unavailable(self, method: Method, seqid: int, exc: ServicesException) -> bytes:
        """The upstream could not answer: a ServicesException where ``method`` declares one, else an
        INTERNAL_ERROR saying so."""
        field = next((f for cls, f in method.exceptions if cls is ServicesException), None)
        if field is not None:
            return build_message(method.name, REPLY, seqid, codec.encode(method.result_cls(**{field: exc})))
        return build_application_exception(method.name, seqid, INTERNAL_ERROR, f"{method.name}: {exc.message}")
