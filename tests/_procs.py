"""Server subprocesses for tests: start, wait for the port, SIGTERM, check the exit status."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from conftest import unused_port

__all__ = ["aioaccess_server", "server_process", "wait_for_port"]


def wait_for_port(proc: subprocess.Popen[bytes], port: int, log: str, timeout: float = 30.0) -> None:
    """Return once ``port`` accepts connections; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            with open(log, encoding="utf-8", errors="replace") as f:
                output = f.read()
            raise AssertionError(f"server did not listen on {port} (exit {proc.poll()}):\n{output}")
        time.sleep(0.05)


@contextmanager
def server_process(tmp_path: Any, argv: list[str], port: int, *, clean_exit: bool = True) -> Iterator[int]:
    """Run ``argv`` (which listens on ``port``) for the block; SIGTERM must then exit 0 if ``clean_exit``."""
    log = os.fspath(tmp_path / f"server-{port}.log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(proc, port, log)
        yield port
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(30)
        if clean_exit:
            assert status == 0, open(log, encoding="utf-8", errors="replace").read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def aioaccess_server(tmp_path: Any, *argv: str) -> Any:
    """``python -m aioaccess ARGV --port P`` as a context manager yielding P."""
    port = unused_port()
    return server_process(tmp_path, [sys.executable, "-m", "aioaccess", *argv, "--port", str(port)], port)
