"""``--workers N``: N server processes sharing their ports with SO_REUSEPORT.

The supervisor reserves each address (a socket bound with SO_REUSEPORT but
never listening, so the kernel hands it no connections; with port 0 this also
fixes the port), then runs N copies of the same command with
``AIOACCESS_WORKER`` set.  A worker binds the same addresses with
SO_REUSEPORT and the kernel spreads new connections over the workers.  The
supervisor restarts a worker that dies, forwards SIGINT/SIGTERM to every
worker as one SIGTERM, waits for them to finish their in-flight calls, and
exits 0.  Workers run in their own process group (a terminal's Ctrl-C reaches
only the supervisor) and, on Linux, get SIGTERM from the kernel if the
supervisor dies (:func:`prepare_worker`).

Signal handlers only set a flag; the supervisor's loop does the work.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

__all__ = ["SUPERVISOR_ENV", "WORKER_ENV", "Supervisor", "is_worker", "prepare_worker", "reserve_port"]

logger = logging.getLogger("aioaccess.supervisor")

#: Set in every worker's environment to its index (0..N-1).
WORKER_ENV = "AIOACCESS_WORKER"

#: Set in every worker's environment to the supervisor's pid.
SUPERVISOR_ENV = "AIOACCESS_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1

#: A worker that exits with this status within STARTUP_WINDOW seconds is not restarted.
STARTUP_FAILURE = 2
STARTUP_WINDOW = 5.0
#: Seconds the supervisor waits for the first worker to listen before starting the others anyway.
STARTUP_TIMEOUT = 60.0


def is_worker() -> bool:
    """Whether this process is a worker started by a :class:`Supervisor`."""
    return os.environ.get(WORKER_ENV, "") != ""


def prepare_worker() -> None:
    """In a worker: get SIGTERM when the supervisor dies (Linux), or exit now if it is gone already."""
    supervisor = int(os.environ.get(SUPERVISOR_ENV, "0") or 0)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            logger.debug("prctl(PR_SET_PDEATHSIG) unavailable")
    if supervisor and os.getppid() != supervisor:
        logger.error("Supervisor [pid %d] is gone; worker exiting", supervisor)
        raise SystemExit(0)


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) ``host:port`` with SO_REUSEPORT; keeps workers' port and catches EADDRINUSE early."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _accepts(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` (wildcard addresses: on loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    """Keeps ``workers`` copies of ``argv`` running until SIGINT/SIGTERM.

    ``metrics`` = ``(host, port)`` serves ``/metrics`` summed over the workers
    (Prometheus multiprocess mode, in a temporary directory).  With ``binds``
    (the workers' addresses) the first worker starts alone until it accepts
    connections there, so a worker that cannot start fails once, not N times.
    """

    def __init__(self, argv: Sequence[str], workers: int, *, graceful_timeout: float = 30.0,
                 env: Mapping[str, str] | None = None, metrics: tuple[str, int] | None = None,
                 binds: Sequence[tuple[str, int]] = ()) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, not {workers}")
        self.argv = list(argv)
        self.workers = workers
        self.graceful_timeout = graceful_timeout
        self.env = dict(os.environ if env is None else env)
        self.metrics = metrics
        self.binds = list(binds)
        self.running: list[_Worker] = []
        self.should_exit = False
        self.signal_received: int | None = None
        self.metrics_dir: str | None = None

    # -- signals -------------------------------------------------------------
    def _handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.should_exit = True
        self.signal_received = sig

    # -- workers ---------------------------------------------------------------
    def _spawn(self, index: int) -> _Worker:
        env = dict(self.env, **{WORKER_ENV: str(index), SUPERVISOR_ENV: str(os.getpid())})
        if self.metrics_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
        # Its own process group: a Ctrl-C in the terminal reaches only the supervisor, which
        # forwards one SIGTERM; prepare_worker() makes the worker stop if the supervisor dies.
        process = subprocess.Popen(self.argv, env=env, process_group=0)
        logger.info("Started worker %d [pid %d]", index, process.pid)
        return _Worker(index, process)

    def _reap(self) -> int | None:
        """Restart dead workers; return an exit status if the supervisor must give up."""
        for i, worker in enumerate(self.running):
            code = worker.process.poll()
            if code is None:
                continue
            self._mark_dead(worker.process.pid)
            lived = time.monotonic() - worker.started_at
            if code == STARTUP_FAILURE and lived < STARTUP_WINDOW:
                logger.error("Worker %d [pid %d] failed to start (exit %d); stopping", worker.index,
                             worker.process.pid, code)
                return code
            logger.warning("Worker %d [pid %d] died (exit %s) after %.1f s; restarting", worker.index,
                           worker.process.pid, code, lived)
            if lived < 1.0:
                time.sleep(1.0)  # do not spin on a worker that dies at once
            self.running[i] = self._spawn(worker.index)
        return None

    def _mark_dead(self, pid: int) -> None:
        if self.metrics_dir is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.metrics_dir)

    def _wait_first_ready(self) -> int | None:
        """Wait until the first worker accepts on every bind; its exit status if it exits first."""
        if not self.binds:
            return None
        first = self.running[0]
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.should_exit and time.monotonic() < deadline:
            code = first.process.poll()
            if code is not None:
                logger.info("Worker 0 [pid %d] exited with %d before listening; stopping", first.process.pid, code)
                return code if code > 0 else 1
            if all(_accepts(host, port) for host, port in self.binds):
                logger.info("Worker 0 [pid %d] is listening; starting %d more", first.process.pid,
                            self.workers - 1)
                return None
            time.sleep(0.05)
        return None

    def _stop_all(self) -> int:
        """SIGTERM every worker, wait up to the grace period (+5 s), kill the rest; 0 if all exited cleanly."""
        for worker in self.running:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.graceful_timeout + 5.0
        status = 0
        for worker in self.running:
            try:
                code = worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("Worker %d [pid %d] did not stop in time; killing it", worker.index,
                               worker.process.pid)
                worker.process.kill()
                code = worker.process.wait()
            logger.info("Worker %d [pid %d] exited with %d", worker.index, worker.process.pid, code)
            if code not in (0, -signal.SIGTERM, -signal.SIGINT):
                status = 1
        self.running.clear()
        return status

    # -- main loop -------------------------------------------------------------
    def run(self) -> int:
        """Run the workers until a signal; return the exit status."""
        old = {sig: signal.signal(sig, self._handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        metrics_server: Any = None
        try:
            if self.metrics is not None:
                metrics_server = self._start_metrics(*self.metrics)
            # The first worker alone, until it listens: a bad config then fails once, in one line.
            self.running = [self._spawn(0)]
            status = self._wait_first_ready()
            if status is None and not self.should_exit:
                self.running += [self._spawn(i) for i in range(1, self.workers)]
            while status is None and not self.should_exit:
                time.sleep(0.1)
                if not self.should_exit:  # a worker that exits on the same Ctrl-C is not restarted
                    status = self._reap()
            if self.signal_received is not None:
                logger.info("Received %s; stopping %d workers", signal.Signals(self.signal_received).name,
                            len(self.running))
            stopped = self._stop_all()
            return status if status is not None else stopped
        finally:
            for worker in self.running:  # only if something above raised
                worker.process.kill()
                worker.process.wait()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            if self.metrics_dir is not None:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _start_metrics(self, host: str, port: int) -> Any:
        from prometheus_client import start_http_server

        from ..metrics import multiprocess_registry

        self.metrics_dir = tempfile.mkdtemp(prefix="aioaccess-metrics-")
        server, _thread = start_http_server(port, host, registry=multiprocess_registry(self.metrics_dir))
        logger.info("Serving metrics of %d workers on http://%s:%d/metrics", self.workers, host,
                    server.server_address[1])
        return server
