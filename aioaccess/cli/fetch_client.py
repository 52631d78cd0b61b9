"""fetch-client: call a FetchCommunicationService (framed compact, or HTTP/TJSON with ``--uri``).

Its flags import nothing but argparse: the client is imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from .errors import UsageError
from .tls_options import add_client_tls_options, client_tls

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _read_ids(args: argparse.Namespace) -> list[str]:
    ids: list[str] = []
    for comm_id in args.comm_ids:
        if comm_id == "-":
            ids.extend(line.strip() for line in sys.stdin if line.strip())
        else:
            ids.append(comm_id)
    return ids


def fetch_client(args: argparse.Namespace) -> int:
    from .run import run

    return run(_fetch_client(args))


async def _fetch_client(args: argparse.Namespace) -> int:
    from thriftpy2.thrift import TApplicationException

    from .. import codec
    from ..client import FetchCommunicationClient
    from ..codec import CodecError
    from ..exceptions import AioaccessError
    from ..schema import ServicesException

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
