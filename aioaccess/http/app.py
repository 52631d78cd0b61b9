"""The HTTP/TJSON endpoint browsers talk to (concrete-python's access-http-server).

``POST /fetch_http_endpoint/`` answers FetchCommunicationService calls and
``POST /store_http_endpoint/`` StoreCommunicationService calls, both in Apache
Thrift's TJSONProtocol.  A fetch is answered from compact bytes
(``handler.fetch_raw``) transcoded piece by piece, never decoded into objects.
Bodies that are not TJSON (not UTF-8, nested too deeply, ...), too large or
too slow to arrive get an HTTP 4xx with a one-line reason (a broken TJSON call
whose name and seqid can be read gets a TApplicationException instead); a store call whose
content type needs no CORS preflight a TApplicationException (``http.cors``);
a TJSON call with bad arguments gets a TApplicationException, as from the
Thrift server.  Run it with :class:`HTTPServer` or :func:`serve_http` on
the loop that runs the Thrift listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from thriftpy2.thrift import TType

from ..codec import CodecError, tjson
from ..exceptions import AioaccessError, ReplyTooLarge
from ..schema import Communication, FetchCommunicationService, StoreCommunicationService
from ..server.server import reserve_fds
from ..wire.messages import DEFAULT_MAX_REPLY_SIZE
from .body import BodyTooLarge, read_limited, release_refusals
from .cors import CORSPolicy, store_content_type_problem
from .limits import ConnectionGuard, HTTPLimits

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_CLIENT_MAX_SIZE",
    "FETCH_HANDLER",
    "FETCH_PATH",
    "HTTPServer",
    "STORE_HANDLER",
    "STORE_PATH",
    "TJSONEndpoint",
    "create_app",
    "serve_http",
]

logger = logging.getLogger("aioaccess.http")

FETCH_PATH = "/fetch_http_endpoint/"
STORE_PATH = "/store_http_endpoint/"
#: What Apache's THttpClient sends and what the endpoint answers with.
CONTENT_TYPE = "application/x-thrift"
#: Largest request body accepted by default, in bytes.
DEFAULT_CLIENT_MAX_SIZE = 64 * 1024 * 1024
#: Seconds a request body may take to arrive, by default (a client that stalls mid-body gets a 408).
DEFAULT_BODY_TIMEOUT = 60.0

FETCH_HANDLER: web.AppKey[Any] = web.AppKey("fetch_handler", object)
STORE_HANDLER: web.AppKey[Any] = web.AppKey("store_handler", object)

# TApplicationException types (Apache Thrift numbering).
_UNKNOWN_METHOD, _INTERNAL_ERROR, _PROTOCOL_ERROR = 1, 6, 7


class _Method:
    __slots__ = ("name", "args_cls", "result_cls", "arg_names", "struct_args", "exceptions", "has_success")

    def __init__(self, service: Any, name: str) -> None:
        self.name = name
        self.args_cls = getattr(service, f"{name}_args")
        self.result_cls = getattr(service, f"{name}_result")
        spec = self.args_cls.thrift_spec
        self.arg_names = [spec[fid][1] for fid in sorted(spec)]
        # (name, struct class name) of each struct argument: a call without one is refused, as the
        # Thrift server refuses it (a handler would only fail on None).
        self.struct_args = [(spec[fid][1], spec[fid][2].__name__) for fid in sorted(spec)
                            if spec[fid][0] == TType.STRUCT]
        rspec = self.result_cls.thrift_spec
        self.has_success = 0 in rspec
        self.exceptions = [(rspec[fid][2], rspec[fid][1]) for fid in sorted(rspec) if fid != 0]


class TJSONEndpoint:
    """Answers TJSON messages for one service with one handler (sync or async methods).

    A fetch whose Communications add up to more than ``max_reply_size`` bytes
    (compact, as stored; the TJSON reply is larger) is refused with a
    ServicesException, as the Thrift server refuses it.
    """

    def __init__(self, service: Any, handler: Any, *, max_reply_size: int = DEFAULT_MAX_REPLY_SIZE,
                 preflighted_only: bool = False) -> None:
        self.service = service
        #: Refuse requests whose content type needs no CORS preflight (the store rule of ``http.cors``).
        self.preflighted_only = preflighted_only
        self.handler = handler
        self.max_reply_size = max_reply_size
        self.methods = {name: _Method(service, name) for name in service.thrift_services
                        if callable(getattr(handler, name, None))}
        self.fast_fetch = "fetch" in self.methods and hasattr(handler, "fetch_raw")

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp request handler."""
        refused = store_content_type_problem(request) if self.preflighted_only else None
        max_size = request.app[_MAX_SIZE]
        if request.content_length is not None and request.content_length > max_size:
            raise _bad(web.HTTPRequestEntityTooLarge,
                       f"request body of {request.content_length} bytes exceeds the limit of {max_size} bytes",
                       max_size=max_size, actual_size=request.content_length)
        body = await _read_body(request)
        try:
            msg = tjson.parse_message(body)
        except tjson.TJSONError as exc:
            if (call := tjson.peek_call(body)) is not None:  # answer it: Apache's JS library hangs on a 4xx
                logger.info("Refusing %s: %s", call[0], refused or exc)
                return web.Response(body=tjson.application_exception(
                    *call, _PROTOCOL_ERROR, refused or f"Cannot read the {call[0]} call: {exc}"),
                    content_type=CONTENT_TYPE)
            if refused is not None:
                raise _bad(web.HTTPUnsupportedMediaType, refused) from None
            raise _bad(web.HTTPBadRequest, str(exc)) from None
        if msg.mtype != tjson.CALL:
            raise _bad(web.HTTPBadRequest, f"TJSON message type {msg.mtype} is not a call (1)")
        if refused is not None:  # a TJSON answer, which Apache's JavaScript library reports (a 415 hangs it)
            logger.info("Refusing %s: %s", msg.name, refused)
            return web.Response(body=tjson.application_exception(msg.name, msg.seqid, _PROTOCOL_ERROR, refused),
                                content_type=CONTENT_TYPE)
        try:
            reply = await self.answer(msg)
        except Exception as exc:  # e.g. a handler result that does not fit the method's result type
            logger.exception("%s failed", msg.name)
            reply = tjson.application_exception(msg.name, msg.seqid, _INTERNAL_ERROR,
                                                f"Internal error in {msg.name}: {exc!r}")
        return web.Response(body=reply, content_type=CONTENT_TYPE)

    async def answer(self, msg: tjson.TJSONMessage) -> bytes:
        """The TJSON reply to one call message."""
        method = self.methods.get(msg.name)
        if method is None:
            return tjson.application_exception(msg.name, msg.seqid, _UNKNOWN_METHOD, f"Unknown method {msg.name!r}")
        try:
            args = tjson.struct_from_doc(msg.args, method.args_cls)
        except Exception as exc:  # whatever the client's document makes the reader raise
            if not isinstance(exc, tjson.TJSONError):  # e.g. OverflowError from {"dbl": 1e400 as an integer}
                logger.warning("Reading arguments of %s raised %r (the client's fault; a TJSONError expected)",
                               msg.name, exc)
            return tjson.application_exception(msg.name, msg.seqid, _PROTOCOL_ERROR,
                                               f"Cannot read arguments of {msg.name}: {exc}")
        for name, cls_name in method.struct_args:
            if getattr(args, name) is None:
                return tjson.application_exception(msg.name, msg.seqid, _PROTOCOL_ERROR,
                                                   f"{msg.name}() arguments hold no {cls_name}")
        fast = self.fast_fetch and msg.name == "fetch"
        try:
            if fast:
                raws = await self.handler.fetch_raw(list(args.request.communicationIds or ()))
                size = sum(map(len, raws))
                if size > self.max_reply_size:  # e.g. one big id asked for a thousand times
                    raise ReplyTooLarge(size, self.max_reply_size)
                return tjson.fetch_reply(msg.seqid, raws, Communication)
            value = getattr(self.handler, msg.name)(*[getattr(args, n) for n in method.arg_names])
            if inspect.isawaitable(value):
                value = await value
            result = method.result_cls()
            if method.has_success:
                result.success = value
        except Exception as exc:
            if isinstance(exc, CodecError) and not fast:
                # The caller's values do not encode (say, a store of a Communication missing a required
                # field or holding an i32 out of range): their fault, as in the Thrift server.
                logger.info("Refusing %s: %s", msg.name, exc)
                return tjson.application_exception(msg.name, msg.seqid, _PROTOCOL_ERROR,
                                                   f"Cannot read arguments of {msg.name}: {exc}")
            result = self._declared(method, exc)
            if result is None:
                if isinstance(exc, CodecError | AioaccessError):  # stored bytes that do not transcode, an outage
                    logger.warning("%s failed: %s", msg.name, exc)
                else:
                    logger.exception("%s failed", msg.name)
                return tjson.application_exception(msg.name, msg.seqid, _INTERNAL_ERROR,
                                                   f"Internal error in {msg.name}: {exc!r}")
        return tjson.build_message(msg.name, tjson.REPLY, msg.seqid, tjson.struct_to_tjson(result))

    @staticmethod
    def _declared(method: _Method, exc: Exception) -> Any:
        """A result struct carrying ``exc`` as a declared exception, or None (as the Thrift dispatcher does).

        aioaccess's own errors become a ServicesException where the method
        declares one, never another declared exception (a backend outage in
        getCommunicationIDs is not a NotImplementedException).
        """
        for cls, field in method.exceptions:
            if isinstance(exc, cls):
                logger.info("%s raised %s", method.name, exc)
                return method.result_cls(**{field: exc})
        if isinstance(exc, AioaccessError):
            for cls, field in method.exceptions:
                if cls.__name__ == "ServicesException":
                    logger.info("%s raised %s", method.name, exc)
                    return method.result_cls(**{field: cls(message=str(exc))})
        return None


async def _read_body(request: web.Request) -> bytes:
    """The whole body (decoded from its Content-Encoding), or an HTTP 4xx saying why not."""
    timeout = request.app[_BODY_TIMEOUT]
    max_size = request.app[_MAX_SIZE]
    try:
        async with asyncio.timeout(timeout):
            return await read_limited(request.content, max_size)
    except BodyTooLarge:
        raise _bad(web.HTTPRequestEntityTooLarge, f"request body exceeds the limit of {max_size} bytes",
                   max_size=max_size, actual_size=max_size + 1) from None
    except TimeoutError:
        exc = _bad(web.HTTPRequestTimeout, f"request body not received in full within {timeout:g} s")
        exc.force_close()
        raise exc from None
    except web.RequestPayloadError as exc:  # a gzip body that does not inflate, a broken chunk, ...
        raise _bad(web.HTTPBadRequest, f"cannot read the request body: {' '.join(str(exc).split())}") from None
    except ConnectionError:  # the client went away mid-body: nobody to answer
        logger.debug("Client disconnected before sending the whole request body")
        raise web.HTTPBadRequest(text="incomplete request body\n") from None


_MAX_SIZE: web.AppKey[int] = web.AppKey("client_max_size", int)
_BODY_TIMEOUT: web.AppKey[float | None] = web.AppKey("body_timeout", object)
_CORS: web.AppKey[CORSPolicy] = web.AppKey("cors", CORSPolicy)


def _bad(cls: type[web.HTTPException], reason: str, **kwargs: Any) -> web.HTTPException:
    logger.info("Refusing request: %s", reason)
    return cls(text=reason + "\n", **kwargs)


def create_app(fetch_handler: Any = None, store_handler: Any = None, *, static_path: str | os.PathLike[str] | None
               = None, cors: bool = False, client_max_size: int = DEFAULT_CLIENT_MAX_SIZE,
               body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
               max_reply_size: int = DEFAULT_MAX_REPLY_SIZE, cors_origins: Iterable[str] = (),
               cors_store: bool = False) -> web.Application:
    """An aiohttp app with the fetch and/or store TJSON endpoints (and static files from ``static_path``).

    ``fetch_handler``: anything with the FetchCommunicationService methods (its
    ``fetch_raw`` is used for ``fetch`` when present), e.g. a
    ``CommunicationContainerFetchHandler`` or a ``RelayFetchHandler``;
    ``store_handler``: any store handler.  CORS (``http.cors``): pages of
    ``cors_origins`` (exact origins, or ``"*"``) may call fetch, and store too
    with ``cors_store``; ``cors=True`` is the old switch, now the same as
    ``cors_origins=["*"]`` (fetch only).  Store takes only content types that
    force a preflight; fetch takes any.
    A request body larger than ``client_max_size`` bytes gets a 413, one
    that has not arrived in full ``body_timeout`` seconds after its headers
    a 408 (None: wait for ever).  A fetch of Communications adding up to more
    than ``max_reply_size`` bytes (as stored) gets a ServicesException.
    """
    if client_max_size < 1:
        raise ValueError(f"client_max_size must be >= 1, not {client_max_size}")
    if body_timeout is not None and not body_timeout > 0:
        raise ValueError(f"body_timeout must be > 0 or None, not {body_timeout}")
    policy = CORSPolicy([*cors_origins, *(["*"] if cors else [])], store=cors_store)
    app = web.Application(client_max_size=client_max_size, middlewares=[policy.middleware(STORE_PATH)] if policy
                          else [])
    app.middlewares.append(release_refusals)  # innermost: a refusal lets go of the body at once
    app[_MAX_SIZE] = client_max_size
    app[_BODY_TIMEOUT] = body_timeout
    app[_CORS] = policy
    for path, key, service, handler in ((FETCH_PATH, FETCH_HANDLER, FetchCommunicationService, fetch_handler),
                                        (STORE_PATH, STORE_HANDLER, StoreCommunicationService, store_handler)):
        if handler is None:
            continue
        app[key] = handler
        app.router.add_post(path, TJSONEndpoint(service, handler, max_reply_size=max_reply_size,
                                                preflighted_only=path == STORE_PATH).handle)
        if policy:
            app.router.add_route("OPTIONS", path, policy.preflight(STORE_PATH))
    if static_path is not None:
        root = os.path.realpath(os.fspath(static_path))
        if not os.path.isdir(root):
            raise FileNotFoundError(f"static path {root} is not a directory")
        app.router.add_static("/", root, follow_symlinks=False)
    return app


class _ClientFaultLog(logging.LoggerAdapter):
    """aiohttp's server log, with the client's faults taken down from ERROR.

    aiohttp logs a request it cannot parse (bad Content-Length, broken
    chunking, a header line too long, a gzip body that does not inflate, ...)
    and a client gone before its answer as an error with a traceback; here
    the first is one INFO line and the second a DEBUG one.  Anything else
    stays an ERROR.
    """

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError | web.RequestPayloadError):
            self.info(f"{msg}: %s", *args, " ".join(str(exc_info).split())[:300])
        elif isinstance(exc_info, ConnectionError):
            self.debug(f"{msg}: %r", *args, exc_info)
        else:
            self.error(msg, *args, exc_info=exc_info, **kwargs)


class HTTPServer:
    """An aiohttp app on ``host:port`` (AppRunner + TCPSite) on the running loop.

    ``await start()`` binds (``port=0`` picks a free port; see ``bound_port``),
    ``await aclose()`` stops accepting and finishes requests in flight.  To run it
    beside a Thrift :class:`~aioaccess.server.Server`, start it and append
    ``aclose`` to ``server.cleanups``.  ``limits`` (:class:`HTTPLimits`): header
    and keep-alive timeouts and the connection cap.
    """

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 8080, *,
                 shutdown_timeout: float = 30.0, backlog: int = 2048, reuse_port: bool = False,
                 access_log: bool = False, limits: HTTPLimits | None = None, ssl_context: Any = None) -> None:
        self.app = app
        self.ssl_context = ssl_context  # serve HTTPS (aioaccess.tls.server_context); None: plain HTTP
        self.limits = limits or HTTPLimits()
        self.guard = ConnectionGuard(self.limits)
        self.listener: asyncio.Server | None = None
        self.host = host
        self.port = port
        self.shutdown_timeout = shutdown_timeout
        self.backlog = backlog
        self.reuse_port = reuse_port
        self.access_log = access_log
        self.runner: web.AppRunner | None = None

    @property
    def bound_port(self) -> int:
        if self.listener is None or not self.listener.sockets:
            raise RuntimeError("HTTP server has not started")
        return int(self.listener.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context is not None else 'http'}://{self.host}:{self.bound_port}"

    async def start(self) -> None:
        """Bind and start serving."""
        kwargs: dict[str, Any] = {} if self.access_log else {"access_log": None}
        kwargs["logger"] = _ClientFaultLog(logging.getLogger("aiohttp.server"), {})
        kwargs.update(self.limits.handler_args())
        self.app.middlewares.insert(0, self.guard.middleware)
        self.runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=self.shutdown_timeout,
                                    **kwargs)
        await self.runner.setup()
        assert self.runner.server is not None
        reserve_fds(self.limits.max_connections)
        try:
            # Our own listener rather than a TCPSite: each connection is wrapped in a GuardedConnection.
            self.listener = await asyncio.get_running_loop().create_server(
                self.guard.factory(self.runner.server), self.host, self.port, backlog=self.backlog,
                reuse_address=True, reuse_port=self.reuse_port or None, ssl=self.ssl_context)
        except BaseException:
            await self.runner.cleanup()
            self.runner = None
            raise
        logger.info("Serving HTTP/TJSON on http://%s:%d (%s)", self.host, self.bound_port,
                    ", ".join(r.canonical for r in self.app.router.resources()))

    async def aclose(self) -> None:
        """Stop accepting, let requests in flight finish, close connections."""
        runner, self.runner = self.runner, None
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.close()
        if runner is not None:
            await runner.cleanup()
            logger.info("HTTP server stopped")

    async def __aenter__(self) -> HTTPServer:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()


@contextlib.asynccontextmanager
async def serve_http(app: web.Application | None = None, host: str = "127.0.0.1", port: int = 0, *,
                     fetch_handler: Any = None, store_handler: Any = None,
                     **options: Any) -> AsyncIterator[HTTPServer]:
    """Serve ``app`` (or ``create_app(fetch_handler, store_handler, **options)``) for the ``async with`` body."""
    if app is None:
        app = create_app(fetch_handler, store_handler, **options)
    elif fetch_handler is not None or store_handler is not None or options:
        raise TypeError("give either an app or handlers and app options, not both")
    async with HTTPServer(app, host, port) as server:
        yield server
