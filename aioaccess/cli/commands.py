"""fetch-server and store-server: flags -> an AppConfig of one service, served by :mod:`aioaccess.app`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .options import add_server_options, app_config
from .sources import add_backend_options
from .tls_options import add_client_tls_options, server_tls

if TYPE_CHECKING:
    from ..app.config import Kind, RelayOptions

__all__ = ["register", "serve_one"]


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


def fetch_server(args: argparse.Namespace) -> int:
    return serve_one(args, "fetch", {"source": args.source})


def store_server(args: argparse.Namespace) -> int:
    return serve_one(args, "store", {"target": args.target})


def serve_one(args: argparse.Namespace, kind: Kind, options: dict[str, str], relay: RelayOptions | None = None,
              name: str | None = None) -> int:
    """Serve the one service the flags describe (``--workers N``: supervise N processes that do).

    ``name`` (default: ``kind``) labels its metrics.
    """
    from ..app.config import BackendOptions, ServiceSpec
    from ..app.run import run_app

    spec = ServiceSpec(name or kind, kind, args.host, args.port, options, BackendOptions.from_args(args),
                       server_tls(args), relay)
    return run_app(app_config(args, spec), args.argv, port_flag="--port")
