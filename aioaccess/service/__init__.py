"""One protocol-neutral service layer under every transport.

:class:`Service` holds a thriftpy2 service's method table over one handler
and the handler's capabilities (read through the typed Protocols of
:mod:`aioaccess._types`); :mod:`.methods` maps a call's failure onto a
declared exception or a TApplicationException.  The transports are thin
adapters: :class:`CompactCalls` (the framed compact server,
``server.dispatch.Processor``), :class:`RelayedCalls` (the relay, verbatim)
and :class:`TJSONCalls` (the HTTP/TJSON endpoint).  :class:`FastFetch` is the
fetch a connection answers from a container's table without a call.
"""

from __future__ import annotations

from .compact import CompactCalls
from .core import Service
from .fast_fetch import CallObserver, FastFetch
from .methods import INTERNAL_ERROR, INVALID_MESSAGE_TYPE, PROTOCOL_ERROR, UNKNOWN_METHOD, Failure, Method
from .observe import observed
from .relay import RelayedCalls

__all__ = ["INTERNAL_ERROR", "INVALID_MESSAGE_TYPE", "PROTOCOL_ERROR", "UNKNOWN_METHOD", "CallObserver",
           "CompactCalls", "Failure", "FastFetch", "Method", "RelayedCalls", "Service", "observed"]
