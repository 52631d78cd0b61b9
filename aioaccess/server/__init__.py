"""The asyncio server core: framed connections, dispatch, lifecycle."""

from __future__ import annotations

from .config import ServerConfig
from .dispatch import Processor
from .server import Server, ServerState

__all__ = ["Processor", "Server", "ServerConfig", "ServerState"]
