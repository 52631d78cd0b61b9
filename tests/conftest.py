"""Fixtures every test may use: free ports, Communications, running servers.

Backend services (redis-server, moto's S3 server) live in ``_services.py``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from _redis_cluster import redis_cluster  # noqa: F401 - session Redis Cluster fixture
from _services import *  # noqa: F403 - redis_server, s3_server fixtures
from hypothesis import settings

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    DirectoryBackedStoreHandler,
    FetchCommunicationServiceWrapper,
    StoreCommunicationServiceWrapper,
)

# Hypothesis: with CI set, every run draws the same examples (a red CI run is replayed by running the
# suite again with CI=1); locally each run explores new ones.  Either way a failure prints its
# @reproduce_failure blob.  HYPOTHESIS_PROFILE=ci|dev picks one explicitly.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


def unused_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    return unused_port()


def concrete_comms(n: int, prefix: str = "comm") -> list[Any]:
    """``n`` tokenized Communications built by concrete-python."""
    from concrete.util import create_comm

    return [
        create_comm(f"{prefix}-{i}", f"Document {i} says hello.\nIt has two sentences.\n\nAnd a second section {i}.")
        for i in range(n)
    ]


@pytest.fixture
def cp_comms() -> list[Any]:
    """Ten concrete-python Communications."""
    return concrete_comms(10)


@pytest.fixture
def comm_dir(tmp_path: Any, cp_comms: list[Any]) -> str:
    """A directory of ``.comm`` files written by concrete-python."""
    from concrete.util import write_communication_to_file

    path = tmp_path / "comms"
    path.mkdir()
    for comm in cp_comms:
        write_communication_to_file(comm, os.fspath(path / f"{comm.id}.comm"))
    return os.fspath(path)


@pytest.fixture
async def fetch_server(comm_dir: str) -> AsyncIterator[Any]:
    """An in-process aioaccess fetch server over ``comm_dir``; yields its listener."""
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    async with FetchCommunicationServiceWrapper(handler).serving() as listener:
        yield listener


@pytest.fixture
def store_dir(tmp_path: Any) -> str:
    path = tmp_path / "store"
    path.mkdir()
    return os.fspath(path)


@pytest.fixture
async def store_server(store_dir: str) -> AsyncIterator[Any]:
    """An in-process aioaccess store server writing into ``store_dir``."""
    async with StoreCommunicationServiceWrapper(DirectoryBackedStoreHandler(store_dir, fsync=False)).serving() as ls:
        yield ls


@pytest.fixture(scope="session")
def anyio_backend() -> Iterator[str]:
    yield "asyncio"
