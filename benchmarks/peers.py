"""The fetch servers a user would otherwise pick, as the fetch benchmark starts them.

``python -m benchmarks.peers KIND --port P --corpus-dir DIR`` serves the directory
of ``[ID].comm`` files with one stock Thrift server, as its documentation shows:

- ``tp2-aio``: thriftpy2's asyncio server (``thriftpy2.rpc.make_aio_server``) with
  aioaccess's schema, framed compact protocol, and an ``async`` handler that reads the
  file and decodes it with thriftpy2 on each call.  The server's ``client_timeout``
  (3 s by default: it closes every connection 3 s after accepting it, busy or not)
  is turned off, or each benchmark row would lose its connections.
- ``apache-nonblocking``: Apache Thrift's ``TNonblockingServer`` (its default 10 worker
  threads, ``select`` on the connections), and
- ``apache-procpool``: Apache Thrift's ``TProcessPoolServer`` with 2 worker processes
  (one per core of the benchmark machine; each serves one connection at a time),
  both with the accelerated compact protocol (``TCompactProtocolAcceleratedFactory``,
  without the silent fallback to pure Python: the server refuses to start if
  ``thrift.protocol.fastbinary`` is not compiled) and concrete-python's
  ``CommunicationContainerFetchHandler`` over its ``DirectoryBackedCommunicationContainer``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

__all__ = ["PEERS", "fastbinary_compiled", "main"]

PEERS = ("tp2-aio", "apache-nonblocking", "apache-procpool")
PROCPOOL_WORKERS = 2


def fastbinary_compiled() -> bool:
    """True if Apache Thrift's C codec is importable and the accelerated compact protocol uses it."""
    try:
        from thrift.protocol import fastbinary  # noqa: F401
    except ImportError:
        return False
    from thrift.protocol.TCompactProtocol import TCompactProtocolAcceleratedFactory
    from thrift.transport.TTransport import TMemoryBuffer

    proto = TCompactProtocolAcceleratedFactory(fallback=False).getProtocol(TMemoryBuffer())
    return getattr(proto, "_fast_encode", None) is not None and getattr(proto, "_fast_decode", None) is not None


class Tp2FetchHandler:
    """``FetchCommunicationService`` over a directory, as one writes it for thriftpy2's asyncio server."""

    def __init__(self, directory: str) -> None:
        from thriftpy2.protocol import TCompactProtocolFactory

        from aioaccess import schema

        self.schema = schema
        self.proto = TCompactProtocolFactory()
        self.directory = directory
        self.ids = sorted(name[:-5] for name in os.listdir(directory) if name.endswith(".comm"))
        self.known = set(self.ids)

    async def fetch(self, request: Any) -> Any:
        from thriftpy2.utils import deserialize

        comms = []
        for comm_id in request.communicationIds or ():
            if comm_id in self.known:  # concrete-python's handler leaves unknown ids out, too
                with open(os.path.join(self.directory, f"{comm_id}.comm"), "rb") as f:
                    comms.append(deserialize(self.schema.Communication(), f.read(), self.proto))
        return self.schema.FetchResult(communications=comms)

    async def getCommunicationCount(self) -> int:  # noqa: N802 - the Thrift method's name
        return len(self.ids)

    async def getCommunicationIDs(self, offset: int, count: int) -> list[str]:  # noqa: N802
        return self.ids[offset : offset + count]

    async def about(self) -> Any:
        return self.schema.ServiceInfo(name="thriftpy2 make_aio_server", version="benchmark")

    async def alive(self) -> bool:
        return True


def serve_tp2_aio(host: str, port: int, directory: str) -> None:
    from thriftpy2.contrib.aio.protocol.compact import TAsyncCompactProtocolFactory
    from thriftpy2.contrib.aio.transport.framed import TAsyncFramedTransportFactory
    from thriftpy2.rpc import make_aio_server

    from aioaccess import schema

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = make_aio_server(schema.access.FetchCommunicationService, Tp2FetchHandler(directory), host, port,
                             proto_factory=TAsyncCompactProtocolFactory(),
                             trans_factory=TAsyncFramedTransportFactory(),
                             client_timeout=None, loop=loop)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    server.serve()


def _apache_processor(directory: str) -> Any:
    from concrete.access import FetchCommunicationService
    from concrete.util.access import CommunicationContainerFetchHandler
    from concrete.util.comm_container import DirectoryBackedCommunicationContainer

    return FetchCommunicationService.Processor(
        CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(directory)))


def serve_apache(kind: str, host: str, port: int, directory: str) -> None:
    from thrift.protocol.TCompactProtocol import TCompactProtocolAcceleratedFactory
    from thrift.transport.TSocket import TServerSocket

    if not fastbinary_compiled():
        raise SystemExit("thrift.protocol.fastbinary is not compiled in this environment: "
                         "the accelerated compact protocol would fall back to pure Python")
    processor = _apache_processor(directory)
    protocol = TCompactProtocolAcceleratedFactory(fallback=False)
    if kind == "apache-nonblocking":
        from thrift.server.TNonblockingServer import TNonblockingServer

        TNonblockingServer(processor, TServerSocket(host, port), protocol).serve()
        return
    from thrift.server.TProcessPoolServer import TProcessPoolServer
    from thrift.transport.TTransport import TFramedTransportFactory

    server = TProcessPoolServer(processor, TServerSocket(host, port), TFramedTransportFactory(), protocol)
    server.setNumWorkers(PROCPOOL_WORKERS)
    # SIGTERM ends serve() in the parent; on the way out multiprocessing terminates the (daemon) workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a stock Thrift fetch server over a directory of .comm files")
    parser.add_argument("kind", choices=PEERS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--corpus-dir", required=True, help="directory of [ID].comm files")
    args = parser.parse_args(argv)
    if args.kind == "tp2-aio":
        serve_tp2_aio(args.host, args.port, args.corpus_dir)
    else:
        serve_apache(args.kind, args.host, args.port, args.corpus_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
