"""Server subprocesses for tests: start, wait until ready, SIGTERM (then SIGKILL), keep the log.

``ManagedProcess`` is the one implementation; ``server_process``/``aioaccess_server``
here, ``ServiceProcess`` (redis, moto) in ``_services.py`` and ``AioaccessProcess``
in ``reliability/_reliability.py`` are built on it.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, NoReturn, Self

__all__ = ["ManagedProcess", "aioaccess_server", "port_open", "server_process", "unused_port", "wait_for_port"]

#: Seconds a process may take to become ready after it was started.
START_TIMEOUT = 30.0


def unused_port() -> int:
    """``conftest.unused_port()`` (imported late: conftest imports ``_services``, which imports this module)."""
    from conftest import unused_port as pick

    return pick()


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port`` now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    """Poll ``ready()`` every 50 ms; False once ``proc`` has exited or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while not ready():
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _read_log(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def wait_for_port(proc: subprocess.Popen[bytes] | None, port: int, log: str | None = None,
                  timeout: float = START_TIMEOUT) -> None:
    """Return once ``port`` accepts connections; fail with the server's log if it exits or times out."""
    if not _wait_until(lambda: port_open(port), proc, timeout):
        output = _read_log(log) if log is not None else ""
        status = proc.poll() if proc is not None else None
        raise AssertionError(f"server did not listen on {port} (exit {status}):\n{output}")


class ManagedProcess:
    """A subprocess whose output goes to a log file (no pipes to leak).

    ``start()`` waits until ``ready()`` (by default: the port accepts
    connections); ``stop()`` sends SIGTERM and SIGKILLs after ``grace``
    seconds.  With ``keep_log=False`` the log file is removed by ``stop()``
    and its last 20 kB kept in ``last_log``.
    """

    def __init__(self, argv: list[str], port: int, log_path: str, *, log_mode: str = "wb", grace: float = 10.0,
                 keep_log: bool = True, nofile: tuple[int, int] | None = None) -> None:
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.log_mode = log_mode
        self.grace = grace
        self.keep_log = keep_log
        self.nofile = nofile  # (soft, hard) RLIMIT_NOFILE the process starts with
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.last_log = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def ready(self) -> bool:
        return port_open(self.port)

    def start(self) -> Self:
        """Start the process and wait until it is ready; ``start_failed()`` if it exits or times out."""
        self._log = open(self.log_path, self.log_mode)  # noqa: SIM115 - closed in stop()
        nofile = self.nofile

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, nofile)

        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=limit if nofile is not None else None)
        try:
            ready = _wait_until(self.ready, self.proc, START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        if not ready:
            status = self.proc.poll()
            self.stop()
            self.start_failed(status)
        return self

    def start_failed(self, status: int | None) -> NoReturn:
        """Raise for a process that exited (``status``) or timed out before it was ready."""
        raise AssertionError(f"server did not listen on {self.port} (exit {status}):\n{self.log_tail(None)}")

    def log_tail(self, n: int | None = 3000) -> str:
        """The last ``n`` characters of the log (all of it if None)."""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return self.last_log[-n:] if n is not None else self.last_log
        return (data[-n:] if n is not None else data).decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float) -> int:
        """SIGTERM and return the exit status; raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Terminate the process (SIGKILL after ``grace`` seconds) and wait for it; close the log."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(self.grace)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
            if not self.keep_log:
                self.last_log = self.log_tail(20_000)  # kept for failure messages; the file goes
                os.unlink(self.log_path)

    def __enter__(self) -> Self:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def server_process(tmp_path: Any, argv: list[str], port: int, *, clean_exit: bool = True) -> Iterator[int]:
    """Run ``argv`` (which listens on ``port``) for the block; SIGTERM must then exit 0 if ``clean_exit``.

    The log stays in ``tmp_path / f"server-{port}.log"``.
    """
    server = ManagedProcess(argv, port, os.fspath(tmp_path / f"server-{port}.log")).start()
    try:
        yield port
        status = server.terminate(30)
        if clean_exit:
            assert status == 0, server.log_tail(None)
    finally:
        if server.alive():
            server.kill()
        server.stop()


def aioaccess_server(tmp_path: Any, *argv: str) -> Any:
    """``python -m aioaccess ARGV --port P`` as a context manager yielding P."""
    port = unused_port()
    return server_process(tmp_path, [sys.executable, "-m", "aioaccess", *argv, "--port", str(port)], port)


def concrete_script(name: str) -> list[str]:
    """``[python, path]`` running concrete-python's script ``name`` (installed next to this interpreter)."""
    import shutil

    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        path = shutil.which(name) or ""
    assert path, f"concrete-python's {name} is not installed (pip install concrete==4.18.2)"
    return [sys.executable, path]
