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
import logging
import os
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from ..codec import tjson
from ..schema import FetchCommunicationService, StoreCommunicationService
from ..service import INTERNAL_ERROR, PROTOCOL_ERROR, Service
from ..service.tjson import TJSONCalls
from ..wire.messages import DEFAULT_MAX_REPLY_SIZE
from .body import BodyTooLarge, read_limited, release_refusals
from .cors import CORSPolicy, store_content_type_problem
from .server import HTTPServer, serve_http
from .settings import CONTENT_TYPE, DEFAULT_BODY_TIMEOUT, DEFAULT_CLIENT_MAX_SIZE, FETCH_PATH, STORE_PATH

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


FETCH_HANDLER: web.AppKey[Any] = web.AppKey("fetch_handler", object)
STORE_HANDLER: web.AppKey[Any] = web.AppKey("store_handler", object)


class TJSONEndpoint:
    """Answers TJSON messages for one service with one handler (sync or async methods): the HTTP adapter
    over the service layer (:class:`~aioaccess.service.tjson.TJSONCalls`).

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
        self.calls = TJSONCalls(Service(service, handler, max_reply_size=max_reply_size))
        self.methods = self.calls.methods

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
                    *call, PROTOCOL_ERROR, refused or f"Cannot read the {call[0]} call: {exc}"),
                    content_type=CONTENT_TYPE)
            if refused is not None:
                raise _bad(web.HTTPUnsupportedMediaType, refused) from None
            raise _bad(web.HTTPBadRequest, str(exc)) from None
        if msg.mtype != tjson.CALL:
            raise _bad(web.HTTPBadRequest, f"TJSON message type {msg.mtype} is not a call (1)")
        if refused is not None:  # a TJSON answer, which Apache's JavaScript library reports (a 415 hangs it)
            logger.info("Refusing %s: %s", msg.name, refused)
            return web.Response(body=tjson.application_exception(msg.name, msg.seqid, PROTOCOL_ERROR, refused),
                                content_type=CONTENT_TYPE)
        try:
            reply = await self.answer(msg)
        except Exception as exc:  # e.g. a handler result that does not fit the method's result type
            logger.exception("%s failed", msg.name)
            reply = tjson.application_exception(msg.name, msg.seqid, INTERNAL_ERROR,
                                                f"Internal error in {msg.name}: {exc!r}")
        return web.Response(body=reply, content_type=CONTENT_TYPE)

    async def answer(self, msg: tjson.TJSONMessage) -> bytes:
        """The TJSON reply to one call message (the service layer's :class:`~aioaccess.service.tjson.TJSONCalls`)."""
        return await self.calls.answer(msg)


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
