"""fetch-server, store-server and fetch-client."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

from thriftpy2.thrift import TApplicationException

from .. import codec
from ..codec import CodecError
from ..exceptions import AioaccessError
from ..handlers import CommunicationContainerFetchHandler
from ..schema import FetchCommunicationService, ServicesException, StoreCommunicationService
from ..server import Processor, Server
from .errors import UsageError
from .ops_commands import open_metrics, service_label, supervise
from .options import add_server_options, processor_options, server_config
from .run import run, serve_until_signalled
from .sources import add_backend_options, open_source, open_target
from .tls_options import add_client_tls_options, client_tls, server_tls

__all__ = ["register"]

logger = logging.getLogger("aioaccess.cli")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("fetch-server", help="serve Communications from SOURCE (FetchCommunicationService)",
                       description="Serve Communications from SOURCE: a directory (searched recursively for "
                       ".comm/.concrete/.gz), a .zip, a Communications file (.comm, .concrete, .tar, .tar.gz, "
                       ".tgz, .gz), redis://HOST:PORT/DB, redis+cluster://HOST:PORT[,HOST:PORT...]/, "
                       "s3://BUCKET[/PREFIX/], fetch://HOST:PORT, or 'sample' for the corpus shipped with aioaccess.")
    p.add_argument("source", metavar="SOURCE")
    add_server_options(p, fetch_replies=True)
    add_backend_options(p)
    add_client_tls_options(p, upstream=True)  # fetch:// sources
    p.set_defaults(func=fetch_server)

    p = sub.add_parser("store-server", help="store Communications into TARGET (StoreCommunicationService)",
                       description="Store Communications into TARGET: a directory ([ID].comm, written "
                       "atomically), redis://HOST:PORT/DB or redis+cluster://HOST:PORT[,...]/ with --redis-key, "
                       "or s3://BUCKET[/PREFIX/].")
    p.add_argument("target", metavar="TARGET")
    p.add_argument("--no-fsync", action="store_true", help="directory targets: do not fsync before acknowledging")
    add_server_options(p)
    add_backend_options(p)
    p.set_defaults(func=store_server)

    p = sub.add_parser("fetch-client", help="call a FetchCommunicationService",
                       description="Fetch Communications by id, or ask about, alive, count or ids.")
    p.add_argument("comm_ids", nargs="*", metavar="ID", help="ids to fetch; '-' reads ids from stdin")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("-p", "--port", type=int, default=9090)
    p.add_argument("--uri", "--url", help="URI of an HTTP/TJSON FetchCommunicationService (instead of --host/--port), "
                   "e.g. http://localhost:8080/fetch_http_endpoint/")
    p.add_argument("--about", action="store_true", help="print the service's ServiceInfo")
    p.add_argument("--alive", action="store_true", help="print whether the service is alive")
    p.add_argument("--count", action="store_true", help="print the number of Communications")
    p.add_argument("--get-ids", action="store_true", help="print Communication ids")
    p.add_argument("--get-ids-offset", type=int, default=0)
    p.add_argument("--get-ids-count", type=int, default=20)
    p.add_argument("--save-as-tgz", metavar="FILE", help="write fetched Communications to a .tar.gz")
    p.add_argument("--benchmark", action="store_true", help="print how long the fetch took")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per call (default: 60)")
    add_client_tls_options(p)
    p.set_defaults(func=fetch_client)


async def _serve(args: argparse.Namespace, service: object, open_handler: object) -> int:
    config = server_config(args)
    tls = server_tls(args)
    async with AsyncExitStack() as stack:
        handler = await open_handler(stack)  # type: ignore[operator]
        server = Server(config)
        metrics = await open_metrics(args, server, stack)
        observer = metrics.observer(service_label(service)) if metrics is not None else None
        server.add_service(Processor(service, handler, observer=observer, **processor_options(args)), args.host,
                           args.port, ssl=tls)
        try:
            return await serve_until_signalled(server)
        except OSError as exc:
            if server.started.is_set():
                raise
            raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc


def fetch_server(args: argparse.Namespace) -> int:
    if (status := supervise(args)) is not None:  # --workers N: this process only supervises
        return status

    async def open_handler(stack: AsyncExitStack) -> CommunicationContainerFetchHandler:
        container = await open_source(args.source, args, stack)
        return CommunicationContainerFetchHandler(container)

    return run(_serve(args, FetchCommunicationService, open_handler), args.loop)


def store_server(args: argparse.Namespace) -> int:
    if (status := supervise(args)) is not None:
        return status

    async def open_handler(stack: AsyncExitStack) -> object:
        return await open_target(args.target, args, stack)

    return run(_serve(args, StoreCommunicationService, open_handler), args.loop)


def _read_ids(args: argparse.Namespace) -> list[str]:
    ids: list[str] = []
    for comm_id in args.comm_ids:
        if comm_id == "-":
            ids.extend(line.strip() for line in sys.stdin if line.strip())
        else:
            ids.append(comm_id)
    return ids


def fetch_client(args: argparse.Namespace) -> int:
    return run(_fetch_client(args))


async def _fetch_client(args: argparse.Namespace) -> int:
    from ..client import FetchCommunicationClient

    ids = _read_ids(args)
    if not (ids or args.about or args.alive or args.count or args.get_ids):
        raise UsageError("nothing to do: give ids, or --about, --alive, --count or --get-ids")
    tls = client_tls(args)
    if args.uri:
        from ..client.http import HTTPFetchCommunicationClient  # the 'http' extra

        client: Any = HTTPFetchCommunicationClient(args.uri, timeout=args.timeout, ssl=tls)
    else:
        client = FetchCommunicationClient.connect(args.host, args.port, timeout=args.timeout, ssl=tls)
    async def timed(name: str, call: Any) -> Any:  # --benchmark: time each call, as the reference does
        started = time.perf_counter()
        value = await call
        if args.benchmark:
            print(f"Time elapsed in {name}(): {time.perf_counter() - started:.4f} s", file=sys.stderr)
        return value

    try:
        async with client:
            if args.about:
                print(await timed("about", client.about()))
            if args.alive:
                print(await timed("alive", client.alive()))
            if args.count:
                print(await timed("getCommunicationCount", client.getCommunicationCount()))
            if args.get_ids:
                for comm_id in await timed("getCommunicationIDs",
                                           client.getCommunicationIDs(args.get_ids_offset, args.get_ids_count)):
                    print(comm_id)
            if ids:
                started = time.perf_counter()
                raws = await client.fetch_raw(ids)
                elapsed = time.perf_counter() - started
                if args.benchmark:
                    total = sum(map(len, raws))
                    print(f"Fetched {len(raws)} Communications ({total} bytes) in {elapsed:.4f} s", file=sys.stderr)
                if args.save_as_tgz:
                    await _save_tgz(args.save_as_tgz, raws)
                else:
                    for raw in raws:
                        comm = codec.read_communication_from_buffer(raw, add_references=False)
                        print(comm.id)
                        if comm.text is not None:
                            print(comm.text)
    except (ConnectionError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    except (ServicesException, TApplicationException, AioaccessError, CodecError) as exc:
        # The service answered with an error (or garbage): one line, exit status 1.
        message = " ".join(str(getattr(exc, "message", None) or exc).split())
        print(f"aioaccess fetch-client: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    return 0


async def _save_tgz(path: str, raws: list[bytes]) -> None:
    from ..file_io import CommunicationWriterTGZ

    async with CommunicationWriterTGZ(path) as writer:  # members named ID.concrete, as concrete-python's
        for raw in raws:
            await writer.write_raw(raw)
