"""Make sure a backend call runs inside an asyncio Task.

The server steps a handler coroutine eagerly, outside any Task, until it
first suspends; ``asyncio.timeout``, ``TaskGroup`` and the client libraries
(redis-py, aiobotocore) need ``asyncio.current_task()``.  Backends that use
them await ``ensure_task()`` first: a no-op inside a Task, otherwise one
yield to the loop, after which the server has moved the call into a Task.
"""

from __future__ import annotations

import asyncio

__all__ = ["ensure_task"]


async def ensure_task() -> None:
    """Yield once to the loop if not running inside a Task."""
    if asyncio.current_task() is None:
        await asyncio.sleep(0)
