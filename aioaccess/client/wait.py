"""Wait until a Concrete service answers ``alive()`` (concrete-python's wait-concrete-service.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from ssl import SSLContext

from .client import ConcreteServiceClient

__all__ = ["wait_alive"]

logger = logging.getLogger("aioaccess.cli")


async def wait_alive(host: str, port: int, *, name: str = "service", timeout: float | None = None,
                     sleep_interval: float = 5.0, ssl: SSLContext | None = None) -> bool:
    """Poll ``alive()`` on ``host:port`` every ``sleep_interval`` s until True (True), or ``timeout`` s (False)."""
    from ..schema import Service

    class client_cls(ConcreteServiceClient):  # noqa: N801 - about() and alive(), common to every service
        service = Service
    where = f"{name} service at {host}:{port}"
    logger.info("Waiting for %s to come up", where)
    started = time.monotonic()
    while True:
        try:
            async with client_cls.connect(host, port, timeout=max(sleep_interval, 1.0), ssl=ssl) as client:
                if await client.alive():
                    logger.info("%s is up", where)
                    return True
        except Exception as exc:  # noqa: BLE001 - any failure means "not up yet"
            logger.debug("%s not up: %s", where, exc)
        if timeout is not None and time.monotonic() - started >= timeout:
            logger.error("%s is down (timed out after %s s)", where, timeout)
            return False
        logger.info("Waiting %s s for %s", sleep_interval, where)
        await asyncio.sleep(sleep_interval)
