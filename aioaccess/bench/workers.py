"""``bench s3 --procs N``: the run split over N worker processes, each with its own loop and S3 client.

An ``S3Session`` is one process's share of the run (its client, its
objects, its phases).  ``LocalPool`` drives one in this process;
``ProcPool`` starts N ``spawn``-ed processes, sends every command to all of
them over pipes and gathers the answers: phases start at one agreed
``time.perf_counter()`` instant, and their ``Records`` are merged.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from contextlib import AsyncExitStack
from typing import Any

from .driver import run_phase
from .record import Records
from .s3 import S3Bench

__all__ = ["LocalPool", "ProcPool", "S3Session", "WorkerFailed", "split"]

#: Seconds between sending a phase and its agreed start (all processes get it first).
_START_DELAY = 0.3
#: At most this many objects are written ahead for DELETE.
_MAX_TOP_UP = 200_000


class WorkerFailed(RuntimeError):
    """A worker process could not do what it was asked."""


def split(total: int, parts: int) -> list[int]:
    """``total`` split as evenly as possible into ``parts`` integers."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class S3Session:
    """One process's share of a ``bench s3`` run; ``config`` is picklable (see ``cli.bench_s3``)."""

    def __init__(self, config: dict[str, Any], index: int = 0) -> None:
        self.config = config
        self.index = index
        self.bench: S3Bench | None = None
        self.put_rate = 0.0  # ops/s of the fastest PUT phase so far: DELETE gets what PUT writes in a phase
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> S3Session:
        from ..backends.s3 import make_s3_client

        c = self.config
        client = await self._stack.enter_async_context(make_s3_client(
            c["endpoint_url"], client=c["s3_client"], max_attempts=c["max_attempts"],
            connect_timeout=min(c["timeout"], 10.0), read_timeout=c["timeout"], max_pool_connections=c["pool"]))
        self.bench = S3Bench(client, c["bucket"], c["payloads"], prefix=c["prefix"], prefix_len=c["prefix_len"],
                             list_max_keys=c["list_max_keys"], run_id=f"{c['run_id']}-p{self.index}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def handle(self, cmd: str, arg: Any, on_progress: Any = None) -> Any:
        bench = self.bench
        assert bench is not None
        if cmd == "check":
            from ..backends.s3 import check_bucket

            await check_bucket(bench.client, bench.bucket, timeout=self.config["timeout"])
            return None
        if cmd == "seed":
            await bench.seed(arg, concurrency=16)
            return None
        if cmd == "top_up":  # objects for the DELETEs of the next phase
            return await self._top_up(arg)
        if cmd == "phase":
            return await self._phase(arg, on_progress)
        if cmd == "cleanup":
            return {"written": len(set(bench.issued_keys)), "kept": True} if arg else await bench.cleanup()
        raise ValueError(f"unknown command {cmd!r}")

    async def _top_up(self, spec: dict[str, Any] | None) -> int:
        if spec is None or "delete" not in spec["ops"]:
            return 0
        if spec["count"] is not None:
            need = spec["count"]
        else:
            rate = spec["rate"] or max(self.put_rate * 1.2, 200.0)
            need = int(rate * spec["duration"] * 1.1) + 10
        assert self.bench is not None
        return await self.bench.top_up(min(need, _MAX_TOP_UP), concurrency=spec["concurrency"])

    async def _phase(self, spec: dict[str, Any] | None, on_progress: Any) -> Records | None:
        bench = self.bench
        assert bench is not None
        if spec is None:  # no worker of this level runs here
            return None
        all_ops = bench.ops()
        rec = await run_phase({name: all_ops[name] for name in spec["ops"]}, spec["concurrency"],
                              count=spec["count"], duration=spec["duration"], rate=spec["rate"],
                              rate_offset=spec["rate_offset"], weights=spec["weights"], timeout=spec["timeout"],
                              seed=spec["seed"] + self.index, start_at=spec["start_at"], on_progress=on_progress)
        if spec["ops"] == ["put"] and rec.workers:
            seconds = max(e for _, e in rec.workers) - min(f for f, _ in rec.workers)
            self.put_rate = max(self.put_rate, len(rec) / seconds if seconds > 0 else 0.0)
        return rec


class LocalPool:
    """One ``S3Session`` in this process."""

    procs = 1

    def __init__(self, config: dict[str, Any]) -> None:
        self.session = S3Session(config)

    async def __aenter__(self) -> LocalPool:
        await self.session.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.__aexit__(*exc)

    async def call(self, cmd: str, args: list[Any], on_progress: Any = None) -> list[Any]:
        return [await self.session.handle(cmd, args[0], on_progress)]


def _child(conn: Any, config: dict[str, Any], index: int) -> None:
    from ..cli.run import run

    async def serve() -> int:
        loop = asyncio.get_running_loop()
        try:
            session = await S3Session(config, index).__aenter__()
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            return 1
        conn.send(("ok", None))
        try:
            while True:
                cmd, arg = await loop.run_in_executor(None, conn.recv)
                if cmd == "stop":
                    return 0
                try:
                    conn.send(("ok", await session.handle(cmd, arg)))
                except Exception as exc:
                    conn.send(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            await session.__aexit__(None, None, None)

    run(serve(), config["loop"])


class ProcPool:
    """``procs`` worker processes, each running an ``S3Session``."""

    def __init__(self, config: dict[str, Any], procs: int) -> None:
        self.config = config
        self.procs = procs
        self._conns: list[Any] = []
        self._procs: list[Any] = []

    async def __aenter__(self) -> ProcPool:
        ctx = multiprocessing.get_context("spawn")
        for index in range(self.procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(child, self.config, index), daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        try:
            await self._gather()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def _gather(self) -> list[Any]:
        def recv(index: int) -> tuple[str, Any]:
            try:
                return self._conns[index].recv()  # type: ignore[no-any-return]
            except (EOFError, OSError):
                return "error", f"worker process {index} exited (status {self._procs[index].exitcode})"

        answers = await asyncio.gather(*(asyncio.to_thread(recv, i) for i in range(len(self._conns))))
        failed = [detail for status, detail in answers if status != "ok"]
        if failed:
            raise WorkerFailed(failed[0])
        return [detail for _, detail in answers]

    async def call(self, cmd: str, args: list[Any], on_progress: Any = None) -> list[Any]:
        """Send ``cmd`` with ``args[i]`` to process ``i``; their answers, in order."""
        for conn, arg in zip(self._conns, args, strict=True):
            conn.send((cmd, arg))
        return await self._gather()

    async def __aexit__(self, *exc: object) -> None:
        for conn in self._conns:
            try:
                conn.send(("stop", None))
            except OSError:
                pass
        for proc in self._procs:
            await asyncio.to_thread(proc.join, 30)
            if proc.is_alive():
                proc.kill()
        self._conns.clear()
        self._procs.clear()


def start_time(pool: LocalPool | ProcPool) -> float | None:
    """The agreed start of the next phase: now for one process, a moment ahead for several."""
    return None if pool.procs == 1 else time.perf_counter() + _START_DELAY
