"""A TCP proxy that adds a fixed delay in each direction, to look like a distant region.

Every chunk read from one side is written to the other ``delay`` seconds
later, in order; bandwidth is not limited.  A round trip through the proxy
therefore costs ``2 * delay`` more than without it.  Plain TCP: put it in
front of a local ``http://`` endpoint (TLS passes through, but certificates
name the real host, not the proxy).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator

__all__ = ["LatencyProxy", "latency_proxy", "main", "start_proxy_process"]

logger = logging.getLogger("aioaccess.bench.proxy")

_CHUNK = 256 * 1024


class LatencyProxy:
    """Listens on ``host:port`` (0: any free port) and forwards to ``upstream``, ``delay`` seconds each way."""

    def __init__(self, upstream_host: str, upstream_port: int, delay: float, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        if delay < 0:
            raise ValueError(f"delay must be >= 0, not {delay}")
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("Latency proxy %s:%d -> %s:%d, %.1f ms each way", self.host, self.port, *self.upstream,
                    self.delay * 1e3)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> LatencyProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(c_writer)
        u_writer: asyncio.StreamWriter | None = None
        try:
            u_reader, u_writer = await asyncio.open_connection(*self.upstream)
            self._writers.add(u_writer)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pipe(c_reader, u_writer))
                tg.create_task(self._pipe(u_reader, c_writer))
        except (OSError, ExceptionGroup) as exc:
            logger.debug("proxy connection ended: %r", exc)
        except asyncio.CancelledError:  # aclose(): end quietly (asyncio.streams would log a cancelled handler)
            logger.debug("proxy connection closed by aclose()")
        finally:
            self._tasks.discard(task)
            for writer in (c_writer, u_writer):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer`` through a delay line; EOF is delayed too."""
        loop = asyncio.get_running_loop()
        line: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await line.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                data = await reader.read(_CHUNK)
                line.put_nowait((loop.time() + self.delay, data))
                if not data:
                    break
            await sender
        finally:
            sender.cancel()


@contextlib.asynccontextmanager
async def latency_proxy(upstream_host: str, upstream_port: int, delay: float) -> AsyncIterator[LatencyProxy]:
    """A started ``LatencyProxy`` on a free local port, closed on exit."""
    proxy = LatencyProxy(upstream_host, upstream_port, delay)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.aclose()


async def start_proxy_process(host: str, port: int, delay_ms: float,
                              stack: contextlib.AsyncExitStack) -> tuple[str, int]:
    """Start ``python -m aioaccess.bench.proxy`` in front of ``host:port``, stopped when ``stack`` closes.

    In its own process, its CPU is not counted as the client's and it does
    not share the client's event loop.  Returns the proxy's ``(host, port)``.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioaccess.bench.proxy", f"{host}:{port}", "--delay-ms", str(delay_ms),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)

    async def stop() -> None:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()

    stack.push_async_callback(stop)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode().strip()
    except TimeoutError:
        line = ""
    phost, _, pport = line.rpartition(":")
    if not pport.isdigit():
        raise RuntimeError("the latency proxy did not start")
    logger.info("Latency proxy (pid %d) %s:%s -> %s:%d, +%g ms each way", proc.pid, phost, pport, host, port,
                delay_ms)
    return phost, int(pport)


def main(argv: list[str] | None = None) -> int:
    """``python -m aioaccess.bench.proxy UPSTREAM_HOST:PORT --port P --delay-ms N``: run a proxy until killed."""
    import argparse

    parser = argparse.ArgumentParser(description="TCP proxy adding a fixed delay each way")
    parser.add_argument("upstream", metavar="HOST:PORT")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-ms", type=float, required=True, help="ms added in each direction")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")

    async def serve() -> None:
        proxy = LatencyProxy(host, int(port), args.delay_ms / 1000.0, host=args.host, port=args.port)
        await proxy.start()
        print(f"{proxy.host}:{proxy.port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await proxy.aclose()

    try:
        try:
            import uvloop
        except ImportError:
            asyncio.run(serve())
        else:
            uvloop.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
