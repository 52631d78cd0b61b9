"""aioaccess: concrete-python's ``concrete.util.access`` on one asyncio event loop."""

from __future__ import annotations

__version__ = "0.1.0"
