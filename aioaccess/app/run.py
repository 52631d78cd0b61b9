"""``run_app``: serve an :class:`AppConfig` in this process (or supervise workers that do) until a signal."""

from __future__ import annotations

from collections.abc import Sequence

from .assembly import App
from .config import AppConfig
from .lifespan import run
from .workers import supervise

__all__ = ["run_app"]


def run_app(config: AppConfig, argv: Sequence[str] | None = None, *, port_flag: str | None = None) -> int:
    """Serve ``config`` on a new loop until SIGINT/SIGTERM, then shut down gracefully; exit status 0.

    With ``config.workers`` > 1, ``argv`` (``aioaccess`` arguments that build the same config)
    is run that many times instead (see :func:`~aioaccess.app.workers.supervise`).
    """
    if config.workers > 1 and argv is not None:
        status = supervise(config, argv, port_flag=port_flag)
        if status is not None:
            return status
    elif config.workers > 1:
        from .workers import is_worker

        if not is_worker():
            raise ValueError("workers > 1 needs the command line the workers run (argv)")
    return run(_serve(config), config.loop)


async def _serve(config: AppConfig) -> int:
    await App(config).serve(signals=True)
    return 0
