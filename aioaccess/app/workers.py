"""``workers > 1``: this process supervises copies of a command line that serve the same config."""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence

from ..server.supervisor import Supervisor, is_worker, reserve_port
from .config import AppConfig
from .errors import SetupError

__all__ = ["supervise"]


def supervise(config: AppConfig, argv: Sequence[str], *, port_flag: str | None = None) -> int | None:
    """With ``config.workers`` > 1 (not in a worker): run that many ``python -m aioaccess ARGV``; else None.

    Every service's address is reserved first (EADDRINUSE fails here, once).  With ``port_flag``
    (a one-service command line) the workers get ``PORT_FLAG PORT``, the port reserved for them,
    so port 0 works.
    """
    if config.workers <= 1 or is_worker():
        return None
    reserved: list[socket.socket] = []
    try:
        for spec in config.services:
            try:
                reserved.append(reserve_port(spec.host, spec.port))
            except OSError as exc:
                raise SetupError(f"cannot listen on {spec.host}:{spec.port}: {exc.strerror or exc}") from exc
        extra = [port_flag, str(reserved[0].getsockname()[1])] if port_flag is not None else []
        command = [sys.executable, "-m", "aioaccess", *argv, *extra]
        metrics = (config.metrics_host, config.metrics_port) if config.metrics_port is not None else None
        try:
            binds = [(spec.host, sock.getsockname()[1]) for spec, sock in zip(config.services, reserved, strict=True)]
            return Supervisor(command, config.workers, graceful_timeout=config.server.graceful_timeout,
                              metrics=metrics, binds=binds).run()
        except OSError as exc:  # the metrics port, or no way to start a process
            raise SetupError(f"cannot start {config.workers} workers: {exc.strerror or exc}") from exc
    finally:
        for sock in reserved:
            sock.close()
