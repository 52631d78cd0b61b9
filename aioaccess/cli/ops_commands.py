"""store-client, wait-service and serve: flags -> the client loops of :mod:`aioaccess.client`, or an
AppConfig (:mod:`.config_file`) served by :mod:`aioaccess.app`."""

from __future__ import annotations

import argparse
import os
import time

from .errors import UsageError
from .run import run
from .tls_options import add_client_tls_options, client_tls

__all__ = ["register"]

#: Every service name concrete-python's wait-concrete-service.py takes: each extends services.Service,
#: whose alive() is all wait-service calls.
_SERVICES = ("FetchCommunication", "StoreCommunication", "AnnotateCommunication", "ActiveLearnerClient",
             "ActiveLearnerServer", "ResultsServer", "Search", "SearchProxy", "Feedback", "Summarization")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("store-client", help="store Communications from files into a StoreCommunicationService",
                       description="Store Communications read from files, directories (searched recursively), "
                       ".zip, .tar, .tar.gz/.tgz or .gz files into a store server, several calls at a time.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="file, directory or archive of Communications")
    p.add_argument("--host", default="localhost", help="store server host (default: localhost)")
    p.add_argument("-p", "--port", type=int, default=9090, help="store server port (default: 9090)")
    p.add_argument("--concurrency", type=_positive_int, default=16,
                   help="store calls in flight at once, one connection each (default: 16)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per call (default: 60)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (also off when stderr is not a TTY)")
    add_client_tls_options(p)
    p.set_defaults(func=store_client)

    p = sub.add_parser("wait-service", help="wait until a service answers alive()",
                       description="Poll a service's alive() until it answers True; exit 0 then, 1 on timeout.")
    p.add_argument("service_name", choices=_SERVICES, metavar="{" + ",".join(_SERVICES) + "}",
                   help="which service to wait for")
    p.add_argument("--host", default="localhost", help="service host (default: localhost)")
    p.add_argument("-p", "--port", type=int, default=9090, help="service port (default: 9090)")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (default: never)")
    p.add_argument("--sleep-interval", type=float, default=5.0, help="seconds between attempts (default: 5)")
    add_client_tls_options(p)
    p.set_defaults(func=wait_service)

    p = sub.add_parser("serve", help="run several services from one CONFIG.toml on one event loop",
                       description="Run the fetch, store, relay and http services a TOML file lists, in one "
                       "process (or --workers processes) on one event loop, with optional metrics.")
    p.add_argument("config", metavar="CONFIG.toml")
    p.add_argument("--check", action="store_true", help="validate CONFIG.toml and exit")
    p.set_defaults(func=serve)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def wait_service(args: argparse.Namespace) -> int:
    from ..client.wait import wait_alive

    up = run(wait_alive(args.host, args.port, name=args.service_name, timeout=args.timeout,
                        sleep_interval=args.sleep_interval, ssl=client_tls(args)))
    return 0 if up else 1


def store_client(args: argparse.Namespace) -> int:
    for path in args.inputs:
        if not os.path.exists(path):
            raise UsageError(f"input {path!r} does not exist")
    return run(_store_client(args))


async def _store_client(args: argparse.Namespace) -> int:
    import asyncio

    from ..client import StoreCommunicationClient
    from ..client.store_files import StoreTally, store_files
    from ..inputs import plain_total
    from .progress import progress_bar

    client = StoreCommunicationClient.pooled(args.host, args.port, max_connections=args.concurrency,
                                             timeout=args.timeout, ssl=client_tls(args))
    progress = progress_bar(args.no_progress)
    bar = progress.add_task("storing", total=await asyncio.to_thread(plain_total, args.inputs))

    def advance(done: int, tally: StoreTally) -> None:
        progress.update(bar, advance=done, description=f"stored {tally.stored}")

    started = time.perf_counter()
    tally = StoreTally()
    try:
        async with client:
            try:
                await client.alive()
            except (TimeoutError, OSError, ConnectionError) as exc:
                raise UsageError(f"cannot reach the store server at {args.host}:{args.port}: {exc}") from exc
            with progress:
                tally = await store_files(client, args.inputs, concurrency=args.concurrency, on_progress=advance)
    finally:
        elapsed = time.perf_counter() - started
    mb = tally.bytes / 1e6
    print(f"stored {tally.stored}, failed {tally.failed}, {mb:.2f} MB in {elapsed:.2f} s, "
          f"{mb / elapsed if elapsed > 0 else 0.0:.2f} MB/s")
    return 1 if tally.failed else 0


def serve(args: argparse.Namespace) -> int:
    from ..app.run import run_app
    from .config_file import load_config

    config = load_config(args.config)
    if args.check:
        print(f"{args.config}: OK, {len(config.services)} services")
        return 0
    return run_app(config, args.argv)
