"""Helpers of the fault-and-load suite: figures, subprocess servers, raw frames, reference clients.

``FIGURES`` collects what the suite measured; at exit it is printed and
written to ``tests/reliability/last_figures.json`` (gitignored).  (No
``conftest.py`` here: the tests import the top-level one as ``conftest``.)
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest
from _procs import ManagedProcess, unused_port, wait_for_port

from aioaccess.wire.messages import CALL, EXCEPTION, REPLY, build_message, parse_header

__all__ = [
    "FIGURES",
    "AioaccessProcess",
    "ThreadedServer",
    "add_figure",
    "call_frame",
    "concrete_fetch",
    "drain_replies",
    "raise_nofile",
    "rss_kb",
    "set_figure",
    "wait_port",
]

#: Figures the suite measured: name -> number (or small dict).
FIGURES: dict[str, Any] = {}
FIGURES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "last_figures.json")


def _report_figures() -> None:
    if not FIGURES:
        return
    with open(FIGURES_PATH, "w") as f:
        json.dump(FIGURES, f, indent=2, sort_keys=True)
        f.write("\n")
    out = sys.__stdout__
    if out is not None:
        out.write("\n== reliability figures ==\n")
        for name in sorted(FIGURES):
            out.write(f"{name}: {FIGURES[name]}\n")
        out.write(f"(written to {FIGURES_PATH})\n")
        out.flush()


atexit.register(_report_figures)


def add_figure(name: str, n: int = 1) -> None:
    """Add ``n`` to counter ``name``."""
    FIGURES[name] = FIGURES.get(name, 0) + n


def set_figure(name: str, value: Any) -> None:
    FIGURES[name] = value


def raise_nofile(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def rss_kb(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (``VmRSS`` of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_port(port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts on 127.0.0.1:``port`` (``_procs.wait_for_port``)."""
    wait_for_port(proc, port, timeout=timeout)


class AioaccessProcess(ManagedProcess):
    """``python -m aioaccess COMMAND ARGS --port PORT`` as a subprocess; output to a log file, removed by stop()."""

    def __init__(self, *args: str, port: int | None = None, nofile: tuple[int, int] | None = None) -> None:
        if port is None:
            port = unused_port()
        super().__init__([sys.executable, "-m", "aioaccess", *args, "--host", "127.0.0.1", "--port", str(port)], port,
                         os.path.join(tempfile.gettempdir(), f"aioaccess-reliability-{port}-{os.getpid()}.log"),
                         grace=15, keep_log=False, nofile=nofile)

    def start_failed(self, status: int | None) -> NoReturn:
        pytest.fail(f"{' '.join(self.argv)} did not start:\n{self.log_tail()}", pytrace=False)


class ThreadedServer:
    """An in-process aioaccess service wrapper served by its own event loop in a thread.

    Lets synchronous code (hypothesis, concrete-python's blocking clients) talk
    to a server living in this process.
    """

    def __init__(self, wrapper: Any) -> None:
        import asyncio

        self.wrapper = wrapper
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._stop: Any = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="reliability-server", daemon=True)

    def _run(self) -> None:
        import asyncio

        async def main() -> None:
            self._stop = asyncio.Event()
            async with self.wrapper.serving() as listener:
                self.port = listener.bound_port
                self._ready.set()
                await self._stop.wait()

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001 - reported by start()/stop()
            self._error = exc
            self._ready.set()
        finally:
            self.loop.close()

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(60)
        assert not self.thread.is_alive(), "server thread did not stop"
        if self._error is not None:
            raise self._error


def call_frame(name: str, body: bytes, seqid: int = 1, mtype: int = CALL) -> bytes:
    """One framed compact message."""
    return build_message(name, mtype, seqid, body)


def drain_replies(port: int, data: bytes, timeout: float = 10.0) -> tuple[bool, list[int]]:
    """Send ``data``, half-close, read to EOF.

    Returns (closed, message types of the whole reply frames received).
    ``closed`` is False when the server neither closed nor finished within
    ``timeout`` (a hang).  Raises AssertionError on a reply frame that is not
    a well-formed compact message.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already closed on the first bad bytes
        chunks = []
        deadline = time.monotonic() + timeout
        closed = False
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            chunks.append(chunk)
    buf = b"".join(chunks)
    kinds = []
    pos = 0
    while len(buf) - pos >= 4:
        size = int.from_bytes(buf[pos : pos + 4], "big")
        if len(buf) - pos - 4 < size:
            break
        header = parse_header(buf[pos + 4 : pos + 4 + size])
        assert header.mtype in (REPLY, EXCEPTION), f"server sent message type {header.mtype}"
        kinds.append(header.mtype)
        pos += 4 + size
    return closed, kinds


def concrete_fetch(port: int, ids: list[str]) -> list[Any]:
    """Fetch ``ids`` with concrete-python's own blocking client."""
    from concrete.access.ttypes import FetchRequest
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper

    with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
        return list(client.fetch(FetchRequest(communicationIds=ids)).communications)


def walk_files(root: str) -> Iterator[str]:
    """Every file and symlink under ``root`` (paths)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            yield os.path.join(dirpath, name)
