"""The method table of one Thrift service over one handler, and how a call's failure maps onto Thrift.

Both transports read this table and this mapping: the compact server
(:mod:`aioaccess.service.compact`) and the HTTP/TJSON endpoint
(:mod:`aioaccess.service.tjson`) differ only in how they read arguments and
write results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from thriftpy2.thrift import TType

from ..exceptions import AioaccessError

__all__ = ["INTERNAL_ERROR", "INVALID_MESSAGE_TYPE", "PROTOCOL_ERROR", "UNKNOWN_METHOD", "Failure", "Method",
           "failure", "method_table"]

logger = logging.getLogger("aioaccess.service")

# TApplicationException types (Apache Thrift numbering).
UNKNOWN_METHOD, INVALID_MESSAGE_TYPE, INTERNAL_ERROR, PROTOCOL_ERROR = 1, 2, 6, 7


class Method:
    """One method of a thriftpy2 service: argument and result classes, declared exceptions, the handler's call."""

    __slots__ = ("name", "args_cls", "result_cls", "arg_names", "struct_args", "call", "exceptions",
                 "has_success")

    def __init__(self, service: Any, name: str, handler: Any) -> None:
        self.name = name
        self.args_cls = getattr(service, f"{name}_args")
        self.result_cls = getattr(service, f"{name}_result", None)
        spec = self.args_cls.thrift_spec
        self.arg_names = [spec[fid][1] for fid in sorted(spec)]
        # (name, struct class name) of each struct argument: a call without one is refused (a handler would
        # only fail on None).
        self.struct_args = [(spec[fid][1], spec[fid][2].__name__) for fid in sorted(spec)
                            if spec[fid][0] == TType.STRUCT]
        call = getattr(handler, name, None)
        self.call = call if callable(call) else None
        rspec = self.result_cls.thrift_spec if self.result_cls is not None else {}
        self.has_success = 0 in rspec
        # (exception class, result field name) for each declared ``throws``
        self.exceptions = [(rspec[fid][2], rspec[fid][1]) for fid in sorted(rspec) if fid != 0]

    def __repr__(self) -> str:
        return f"Method({self.name!r})"


def method_table(service: Any, handler: Any) -> dict[str, Method]:
    """Every method of ``service`` (those ``handler`` lacks have ``call`` None)."""
    return {name: Method(service, name, handler) for name in service.thrift_services}


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed call is answered with: a result struct carrying a declared exception (``result``),
    or a TApplicationException of ``kind`` saying ``message``."""

    result: Any = None
    kind: int = INTERNAL_ERROR
    message: str = ""


def failure(method: Method, exc: Exception, *, callers_fault: tuple[type[Exception], ...] = (),
            quiet: tuple[type[Exception], ...] = (AioaccessError,)) -> Failure:
    """How ``method`` answers a call that raised ``exc``.

    ``callers_fault`` errors mean the caller's bytes or values were bad: a
    PROTOCOL_ERROR.  Else a declared exception is returned as the result; and
    aioaccess's own errors become a ServicesException where the method
    declares one (never, say, a NotImplementedException: that would misreport
    a backend failure).  Anything else is an INTERNAL_ERROR, logged without a
    traceback when it is one of ``quiet``.
    """
    if isinstance(exc, callers_fault):
        logger.info("Refusing %s: %s", method.name, exc)
        return Failure(kind=PROTOCOL_ERROR, message=f"Cannot read arguments of {method.name}: {exc}")
    result = declared(method, exc)
    if result is not None:
        return Failure(result)
    return internal_error(method.name, exc, quiet)


def declared(method: Method, exc: Exception) -> Any:
    """The result struct carrying ``exc`` as one of ``method``'s declared exceptions, or None."""
    match = next(((f, exc) for cls, f in method.exceptions if isinstance(exc, cls)), None)
    if match is None and isinstance(exc, AioaccessError):
        match = next(((f, cls(message=str(exc))) for cls, f in method.exceptions
                      if cls.__name__ == "ServicesException"), None)
    if match is None:
        return None
    logger.info("%s raised %s", method.name, match[1])
    return method.result_cls(**{match[0]: match[1]})


def internal_error(name: str, exc: Exception, quiet: tuple[type[Exception], ...] = (AioaccessError,)) -> Failure:
    """An INTERNAL_ERROR for a call that failed with ``exc`` (an expected outage is logged without a traceback)."""
    if isinstance(exc, quiet):
        logger.warning("%s failed: %s", name, exc)
    else:
        logger.error("%s failed", name, exc_info=exc)
    return Failure(kind=INTERNAL_ERROR, message=f"Internal error in {name}: {exc!r}")
