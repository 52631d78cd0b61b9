"""SOURCE and TARGET arguments -> containers and store handlers.

Detection mirrors concrete-python's fetch-server: point it at a directory,
a zip, a Communications file, ``redis://``, ``s3://`` or ``fetch://`` and it
picks the container.  ``sample:`` is the small corpus shipped with aioaccess.
"""

from __future__ import annotations

import argparse
import os
from contextlib import AsyncExitStack
from importlib import resources
from typing import Any

from ..backends import CommunicationContainer, DirectoryBackedCommunicationContainer
from ..handlers import DirectoryBackedStoreHandler
from .errors import UsageError

__all__ = ["add_backend_options", "open_source", "open_target", "sample_path"]


def sample_path() -> str:
    """Path of the sample corpus shipped inside the package."""
    return str(resources.files("aioaccess") / "_sample" / "sample.tar.gz")


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """Options every SOURCE/TARGET kind may need."""
    group = parser.add_argument_group("backend options")
    group.add_argument("--redis-key", help="hash key holding the Communications (redis:// sources and targets)")
    group.add_argument("--prefix-len", type=int, default=4,
                       help="length of the hex MD5 prefix of S3 keys (default: 4)")
    group.add_argument("--endpoint-url", help="S3 endpoint URL (default: AWS; credentials from the environment)")
    group.add_argument("--max-file-size", type=int, default=1 << 30,
                       help="largest Communications file loaded into memory, in bytes (default: 1 GiB)")


async def open_source(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> CommunicationContainer:
    """Open the container SOURCE names; its resources close with ``stack``."""
    if spec in ("sample", "sample:"):
        spec = sample_path()
    opener = _SOURCE_SCHEMES.get(spec.split("://", 1)[0]) if "://" in spec else None
    if opener is not None:
        return await opener(spec, args, stack)
    if os.path.isdir(spec):
        return DirectoryBackedCommunicationContainer(spec)
    if os.path.isfile(spec):
        return await _open_file_source(spec, args, stack)
    raise UsageError(f"source {spec!r} does not exist (expected a directory, a .zip or Communications file, "
                     "redis://, s3:// or fetch://)")


async def open_target(spec: str, args: argparse.Namespace, stack: AsyncExitStack) -> Any:
    """Open the store handler TARGET names."""
    opener = _TARGET_SCHEMES.get(spec.split("://", 1)[0]) if "://" in spec else None
    if opener is not None:
        return await opener(spec, args, stack)
    if os.path.isdir(spec):
        return DirectoryBackedStoreHandler(spec, fsync=not getattr(args, "no_fsync", False))
    raise UsageError(f"target {spec!r} is not an existing directory, redis:// or s3:// URL")


async def _open_file_source(path: str, args: argparse.Namespace, stack: AsyncExitStack) -> CommunicationContainer:
    if path.endswith(".zip"):
        from ..backends.zip import ZipFileBackedCommunicationContainer

        return await stack.enter_async_context(ZipFileBackedCommunicationContainer(path))
    from ..backends.memory import MemoryBackedCommunicationContainer

    return await stack.enter_async_context(MemoryBackedCommunicationContainer(path, max_file_size=args.max_file_size))


# Scheme -> opener; the backends that need client libraries register here.
_SOURCE_SCHEMES: dict[str, Any] = {}
_TARGET_SCHEMES: dict[str, Any] = {}
