"""store-client, wait-service and serve: the commands that operate services."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from .. import codec
from ..codec import CodecError
from ..file_io import iter_files
from ..schema import Communication
from ..server.supervisor import Supervisor, is_worker, reserve_port
from .errors import UsageError
from .progress import progress_bar
from .run import run
from .tls_options import add_client_tls_options, client_tls

if TYPE_CHECKING:
    from ..metrics import ServerMetrics
    from ..server import Server
    from .config_file import ServeConfig, ServiceSpec

__all__ = [
    "open_metrics",
    "register",
    "run_serve",
    "service_label",
    "split_communications",
    "supervise",
]

logger = logging.getLogger("aioaccess.cli")

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


# -- helpers for every server command -----------------------------------------
def service_label(service: object) -> str:
    """The ``service`` label of a Thrift service in metrics: "fetch", "store"..."""
    name = getattr(service, "__name__", "service")
    return name.removesuffix("Service").removesuffix("Communication").lower() or name


async def open_metrics(args: argparse.Namespace, server: Server, stack: AsyncExitStack) -> ServerMetrics | None:
    """With ``--metrics-port``: metrics watching ``server``, served over HTTP unless a supervisor serves them."""
    if getattr(args, "metrics_port", None) is None:
        return None
    from ..metrics import ServerMetrics, multiprocess_enabled

    metrics = ServerMetrics()
    metrics.track(server.state)
    if is_worker():
        if multiprocess_enabled():
            metrics.start_refreshing()
            stack.push_async_callback(metrics.aclose)
        return metrics
    try:
        runner = await metrics.start_http(args.metrics_host, args.metrics_port)
    except OSError as exc:
        raise UsageError(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
                         f"{exc.strerror or exc}") from exc
    stack.push_async_callback(runner.cleanup)
    return metrics


def supervise(args: argparse.Namespace, binds: list[tuple[str, int]] | None = None) -> int | None:
    """With ``--workers N`` (N > 1, not in a worker): run N copies of this command; else None.

    ``binds`` are the addresses the workers listen on (default: ``--host``/``--port``, whose
    port is then fixed for the workers, so ``--port 0`` works).
    """
    workers = getattr(args, "workers", 1)
    if workers <= 1 or is_worker():
        return None
    extra: list[str] = []
    own_port = binds is None
    if binds is None:
        binds = [(args.host, args.port)]
    reserved: list[socket.socket] = []
    try:
        for host, port in binds:
            try:
                reserved.append(reserve_port(host, port))
            except OSError as exc:
                raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        if own_port:
            extra = ["--port", str(reserved[0].getsockname()[1])]
        argv = [sys.executable, "-m", "aioaccess", *getattr(args, "argv", sys.argv[1:]), *extra]
        metrics = (args.metrics_host, args.metrics_port) if getattr(args, "metrics_port", None) is not None else None
        try:
            binds = [(host, sock.getsockname()[1]) for (host, _), sock in zip(binds, reserved, strict=True)]
            return Supervisor(argv, workers, graceful_timeout=args.graceful_timeout, metrics=metrics,
                              binds=binds).run()
        except OSError as exc:  # the metrics port, or no way to start a process
            raise UsageError(f"cannot start {workers} workers: {exc.strerror or exc}") from exc
    finally:
        for sock in reserved:
            sock.close()


# -- wait-service ------------------------------------------------------------
def wait_service(args: argparse.Namespace) -> int:
    return run(_wait_service(args))


async def _wait_service(args: argparse.Namespace) -> int:
    from ..client import ConcreteServiceClient
    from ..schema import Service

    class client_cls(ConcreteServiceClient):  # noqa: N801 - about() and alive(), common to every service
        service = Service
    where = f"{args.service_name} service at {args.host}:{args.port}"
    logger.info("Waiting for %s to come up", where)
    started = time.monotonic()
    tls = client_tls(args)
    while True:
        try:
            async with client_cls.connect(args.host, args.port, timeout=max(args.sleep_interval, 1.0),
                                          ssl=tls) as client:
                if await client.alive():
                    logger.info("%s is up", where)
                    return 0
        except Exception as exc:  # noqa: BLE001 - any failure means "not up yet"
            logger.debug("%s not up: %s", where, exc)
        if args.timeout is not None and time.monotonic() - started >= args.timeout:
            logger.error("%s is down (timed out after %s s)", where, args.timeout)
            return 1
        logger.info("Waiting %s s for %s", args.sleep_interval, where)
        await asyncio.sleep(args.sleep_interval)


# -- store-client ------------------------------------------------------------
def split_communications(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """Split one file's bytes into ``(id, raw)`` Communications (files may hold several back to back)."""
    out = []
    pos = 0
    while pos < len(data):
        end = codec.validate(data, Communication, pos)  # what a store accepts: required fields at any depth
        raw = data[pos:end]
        comm_id = codec.read_string_field(raw, 1)
        if comm_id is None:
            raise CodecError(f"a Communication at byte {pos} has no id")
        out.append((comm_id, raw))
        pos = end
    if not out:
        raise CodecError("empty file")
    return out


_ARCHIVES = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz")


def plain_total(paths: list[str]) -> int | None:
    """Bytes under ``paths`` when none is an archive (the progress bar's total), else None."""
    total = 0
    for path in paths:
        files = ([os.path.join(root, n) for n in names if not n.startswith(".")]
                 for root, _, names in os.walk(path)) if os.path.isdir(path) else [[path]]
        for group in files:
            for name in group:
                if name.lower().endswith(_ARCHIVES):
                    return None
                total += os.path.getsize(name)
    return total


def _read_batch(inputs: Iterator[tuple[str, bytes]], n: int) -> list[tuple[str, bytes]]:
    return [item for _, item in zip(range(n), inputs, strict=False)]


def store_client(args: argparse.Namespace) -> int:
    for path in args.inputs:
        if not os.path.exists(path):
            raise UsageError(f"input {path!r} does not exist")
    return run(_store_client(args))


class _Tally:
    def __init__(self) -> None:
        self.stored = self.failed = self.bytes = 0


async def _store_client(args: argparse.Namespace) -> int:
    from ..client import StoreCommunicationClient

    client = StoreCommunicationClient.pooled(args.host, args.port, max_connections=args.concurrency,
                                             timeout=args.timeout, ssl=client_tls(args))
    tally = _Tally()
    queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(maxsize=args.concurrency * 4)
    progress = progress_bar(args.no_progress)
    bar = progress.add_task("storing", total=await asyncio.to_thread(plain_total, args.inputs))

    async def produce() -> None:
        for path in args.inputs:
            files = iter_files(path, recursive=True, skip_hidden=True)
            while batch := await asyncio.to_thread(_read_batch, files, 64):
                for name, data in batch:
                    try:
                        comms = split_communications(name, data)
                    except CodecError as exc:
                        logger.warning("Skipping %s: not Communications (%s)", name, exc)
                        tally.failed += 1
                        progress.update(bar, advance=len(data))
                        continue
                    for comm in comms:
                        await queue.put(comm)
        for _ in range(args.concurrency):
            await queue.put(None)

    async def consume() -> None:
        while (item := await queue.get()) is not None:
            comm_id, raw = item
            try:
                await client.store_raw(raw)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the rest go on
                logger.warning("Failed to store %s: %s", comm_id, exc)
                tally.failed += 1
                progress.update(bar, advance=len(raw))
            else:
                tally.stored += 1
                tally.bytes += len(raw)
                progress.update(bar, advance=len(raw), description=f"stored {tally.stored}")

    started = time.perf_counter()
    try:
        async with client:
            try:
                await client.alive()
            except (TimeoutError, OSError, ConnectionError) as exc:
                raise UsageError(f"cannot reach the store server at {args.host}:{args.port}: {exc}") from exc
            with progress:
                await asyncio.gather(produce(), *(consume() for _ in range(args.concurrency)))
    finally:
        elapsed = time.perf_counter() - started
    mb = tally.bytes / 1e6
    print(f"stored {tally.stored}, failed {tally.failed}, {mb:.2f} MB in {elapsed:.2f} s, "
          f"{mb / elapsed if elapsed > 0 else 0.0:.2f} MB/s")
    return 1 if tally.failed else 0


# -- serve -------------------------------------------------------------------
def serve(args: argparse.Namespace) -> int:
    from .config_file import load_config

    config = load_config(args.config)
    if args.check:
        print(f"{args.config}: OK, {len(config.services)} services")
        return 0
    return run_serve(config, args)


def run_serve(config: ServeConfig, args: argparse.Namespace) -> int:
    """Serve every service of ``config`` (or supervise ``workers`` processes that do)."""
    ops = argparse.Namespace(argv=getattr(args, "argv", sys.argv[1:]), workers=config.workers,
                             graceful_timeout=config.server.graceful_timeout,
                             metrics_host=config.metrics_host, metrics_port=config.metrics_port)
    status = supervise(ops, [(s.host, s.port) for s in config.services])
    if status is not None:
        return status
    return run(_serve_all(config, ops), config.loop)  # type: ignore[arg-type]


async def _serve_all(config: ServeConfig, ops: argparse.Namespace) -> int:
    from ..handlers import CommunicationContainerFetchHandler
    from ..schema import FetchCommunicationService, StoreCommunicationService
    from ..server import Processor, Server
    from .run import serve_until_signalled
    from .sources import open_source, open_target

    async def fetch_handler(spec: ServiceSpec, source: str) -> Any:
        return CommunicationContainerFetchHandler(await open_source(source, spec.backend, stack))

    async with AsyncExitStack() as stack:
        server = Server(config.server)
        metrics = await open_metrics(ops, server, stack)
        handlers: dict[str, Any] = {}
        http_servers = []
        for spec in config.services:  # open every backend before anything binds
            observer = metrics.observer(spec.name) if metrics is not None else None
            if spec.kind == "fetch":
                handlers[spec.name] = handler = await fetch_handler(spec, spec.options["source"])
                server.add_service(Processor(FetchCommunicationService, handler, observer=observer,
                                             max_reply_size=config.max_reply_size), spec.host, spec.port,
                                   ssl=spec.ssl)
            elif spec.kind == "store":
                handlers[spec.name] = handler = await open_target(spec.options["target"], spec.backend, stack)
                server.add_service(Processor(StoreCommunicationService, handler, observer=observer), spec.host,
                                   spec.port, ssl=spec.ssl)
            elif spec.kind == "relay":
                from ..handlers.relay import RelayFetchHandler, RelayProcessor

                host, _, port = spec.options["upstream"].rpartition(":")
                relay = RelayFetchHandler(host, int(port), max_connections=spec.backend.backend_concurrency,
                                          timeout=spec.backend.backend_timeout,
                                          ssl=client_tls(spec.backend, upstream=True))
                handlers[spec.name] = await stack.enter_async_context(relay)
                server.add_service(RelayProcessor(relay, observer=observer), spec.host, spec.port, ssl=spec.ssl)
        for spec in config.services:
            if spec.kind == "http":
                http = await _http_server(spec, handlers, fetch_handler, stack, config)
                if metrics is not None:
                    http.app.middlewares.append(metrics.aiohttp_middleware(spec.name))
                http_servers.append(http)
        try:
            for http in http_servers:
                await http.start()
            if http_servers:
                # HTTP endpoints stop accepting with the Thrift listeners and drain alongside them.
                closing = asyncio.ensure_future(_close_on_exit(server, http_servers))
                stack.push_async_callback(_finish, closing)
            return await serve_until_signalled(server)
        except OSError as exc:
            if server.started.is_set():
                raise
            for http in http_servers:
                await http.aclose()
            raise UsageError(f"{config.path}: cannot listen: {exc.strerror or exc}") from exc


async def _close_on_exit(server: Server, http_servers: list[Any]) -> None:
    await server.should_exit.wait()
    await asyncio.gather(*(http.aclose() for http in http_servers))


async def _finish(task: asyncio.Future[None]) -> None:
    if not task.done():  # serve() ended without should_exit (startup failed): close now
        task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _http_server(spec: ServiceSpec, handlers: dict[str, Any], fetch_handler: Any, stack: AsyncExitStack,
                       config: ServeConfig) -> Any:
    from ..http import HTTPServer, create_app
    from .http_options import http_limits
    from .sources import open_target

    opts = spec.options
    fetch = handlers[opts["fetch"]] if "fetch" in opts else None
    if "source" in opts:
        fetch = await fetch_handler(spec, opts["source"])
    store = handlers[opts["store"]] if "store" in opts else None
    if "target" in opts:
        store = await open_target(opts["target"], spec.backend, stack)
    kwargs: dict[str, Any] = {"static_path": opts.get("static"), "cors": opts.get("cors", False),
                              "cors_origins": opts.get("cors_origins", ()), "cors_store": opts.get("cors_store", False)}
    if "client_max_size" in opts:
        kwargs["client_max_size"] = opts["client_max_size"]
    limits, kwargs["body_timeout"] = http_limits(opts, config.server.max_connections)
    app = create_app(fetch, store, **kwargs)
    return HTTPServer(app, spec.host, spec.port, shutdown_timeout=config.server.graceful_timeout,
                      reuse_port=is_worker(), limits=limits, ssl_context=spec.ssl)
