"""concrete-python's clients against aioaccess servers and the reverse, byte for byte."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from concrete.access.ttypes import FetchRequest as CpFetchRequest
from concrete.util import read_communication_from_buffer as cp_read
from concrete.util import write_communication_to_buffer as cp_write
from concrete.util.access_wrapper import FetchCommunicationClientWrapper as CpFetchClientWrapper
from concrete.util.access_wrapper import StoreCommunicationClientWrapper as CpStoreClientWrapper
from conftest import concrete_comms, unused_port

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    DirectoryBackedStoreHandler,
    FetchCommunicationClient,
    FetchCommunicationServiceWrapper,
    FetchRequest,
    StoreCommunicationClient,
    StoreCommunicationServiceWrapper,
    read_communication_from_buffer,
    write_communication_to_buffer,
)
from benchmarks.synthetic import make_communication

pytestmark = pytest.mark.interop

GRID = [-25, -12, -1, 0, 1, 3, 11, 12, 13, 40]

_CP_STORE_SERVER = """
import sys
from concrete.util.access import DirectoryBackedStoreHandler
from concrete.util.access_wrapper import StoreCommunicationServiceWrapper
StoreCommunicationServiceWrapper(DirectoryBackedStoreHandler(sys.argv[1])).serve("127.0.0.1", int(sys.argv[2]))
"""


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, bytes]]:
    """Files written by concrete-python: simple comms plus richly annotated ones (nested folders)."""
    root = tmp_path_factory.mktemp("interop") / "corpus"
    (root / "deeper").mkdir(parents=True)
    files: dict[str, bytes] = {}
    for i, comm in enumerate(concrete_comms(8, prefix="simple")):
        files[comm.id] = cp_write(comm)
        (root / ("deeper" if i % 2 else "") / f"{comm.id}.comm").write_bytes(files[comm.id])
    for i in range(4):
        rich = cp_read(write_communication_to_buffer(make_communication(f"rich-{i}", size=6000, seed=i,
                                                                        full=bool(i % 2))), add_references=False)
        files[rich.id] = cp_write(rich)
        (root / f"{rich.id}.concrete").write_bytes(files[rich.id])
    return os.fspath(root), files


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {err}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port} after {limit} s")


def _spawn(args: list[str], port: int) -> Iterator[int]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_port(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture(scope="module")
def cp_fetch_server(corpus_dir: tuple[str, dict[str, bytes]]) -> Iterator[int]:
    """concrete-python's own fetch-server.py over the corpus."""
    script = shutil.which("fetch-server.py")
    assert script is not None, "concrete-python's fetch-server.py is not on PATH"
    port = unused_port()
    yield from _spawn([sys.executable, script, corpus_dir[0], "--host", "127.0.0.1", "-p", str(port),
                       "-l", "warning"], port)


@pytest.fixture
def cp_store_server(tmp_path: Any) -> Iterator[tuple[int, str]]:
    """concrete-python's StoreCommunicationServiceWrapper + DirectoryBackedStoreHandler."""
    path = tmp_path / "cp-store"
    path.mkdir()
    port = unused_port()
    for p in _spawn([sys.executable, "-c", _CP_STORE_SERVER, os.fspath(path), str(port)], port):
        yield p, os.fspath(path)


@pytest.fixture
async def aio_fetch_server(corpus_dir: tuple[str, dict[str, bytes]]) -> Any:
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(corpus_dir[0]))
    async with FetchCommunicationServiceWrapper(handler).serving() as listener:
        yield listener.bound_port


def _cp_fetch_everything(port: int, ids: list[str]) -> dict[str, Any]:
    with CpFetchClientWrapper("127.0.0.1", port) as client:
        return {
            "alive": client.alive(),
            "about": client.about(),
            "count": client.getCommunicationCount(),
            "ids": client.getCommunicationIDs(0, 1000),
            "fetch": client.fetch(CpFetchRequest(communicationIds=ids)),
            "one_by_one": [client.fetch(CpFetchRequest(communicationIds=[i])) for i in ids],
            "empty": client.fetch(CpFetchRequest(communicationIds=[])),
        }


# -- concrete-python clients -> aioaccess servers ------------------------------


async def test_concrete_python_fetch_client_against_aioaccess(aio_fetch_server: int,
                                                              corpus_dir: tuple[str, dict[str, bytes]]) -> None:
    _, files = corpus_dir
    ids = sorted(files) + ["not-there"]
    got = await asyncio.to_thread(_cp_fetch_everything, aio_fetch_server, ids)
    assert got["alive"] is True
    assert got["about"].name.startswith("CommunicationContainerFetchHandler")
    assert got["count"] == len(files)
    assert sorted(got["ids"]) == sorted(files)
    assert [cp_write(c) for c in got["fetch"].communications] == [files[i] for i in sorted(files)]
    one_by_one = [[cp_write(c) for c in r.communications] for r in got["one_by_one"]]
    assert one_by_one == [[files[i]] for i in sorted(files)] + [[]]
    assert got["empty"].communications == []


def _cp_store_all(port: int, raws: list[bytes]) -> None:
    with CpStoreClientWrapper("127.0.0.1", port) as client:
        assert client.alive() is True
        assert client.about().name == "DirectoryBackedStoreHandler"
        for raw in raws:
            client.store(cp_read(raw, add_references=False))


async def test_concrete_python_store_client_against_aioaccess(tmp_path: Any,
                                                              corpus_dir: tuple[str, dict[str, bytes]]) -> None:
    _, files = corpus_dir
    store = tmp_path / "aio-store"
    store.mkdir()
    async with StoreCommunicationServiceWrapper(DirectoryBackedStoreHandler(store, fsync=False)).serving() as ls:
        await asyncio.to_thread(_cp_store_all, ls.bound_port, list(files.values()))
    assert sorted(os.listdir(store)) == sorted(f"{i}.comm" for i in files)
    for comm_id, raw in files.items():
        assert (store / f"{comm_id}.comm").read_bytes() == raw


# -- aioaccess clients -> concrete-python servers ----------------------------------


async def test_aioaccess_fetch_client_against_concrete_python(cp_fetch_server: int,
                                                              corpus_dir: tuple[str, dict[str, bytes]]) -> None:
    _, files = corpus_dir
    ids = sorted(files)
    async with FetchCommunicationClient.connect("127.0.0.1", cp_fetch_server, timeout=10) as client:
        assert await client.alive() is True
        assert (await client.about()).name.startswith("CommunicationContainerFetchHandler")
        assert await client.getCommunicationCount() == len(files)
        assert await client.fetch_raw(ids + ["missing"]) == [files[i] for i in ids]
        result = await client.fetch(FetchRequest(communicationIds=ids[::-1]))
        assert [write_communication_to_buffer(c) for c in result.communications] == [files[i] for i in ids[::-1]]
        assert await client.fetch_raw([]) == []
    pool = FetchCommunicationClient.pooled("127.0.0.1", cp_fetch_server, max_connections=4, timeout=10)
    async with pool:
        raws = await asyncio.gather(*(pool.fetch_raw([i]) for i in ids * 3))
        assert raws == [[files[i]] for i in ids * 3]


async def test_aioaccess_store_client_against_concrete_python(cp_store_server: tuple[int, str],
                                                              corpus_dir: tuple[str, dict[str, bytes]]) -> None:
    port, path = cp_store_server
    _, files = corpus_dir
    items = sorted(files.items())
    async with StoreCommunicationClient.connect("127.0.0.1", port, timeout=10) as client:
        assert await client.alive() is True
        for _, raw in items[: len(items) // 2]:
            await client.store_raw(raw)
        for _, raw in items[len(items) // 2 :]:
            await client.store(read_communication_from_buffer(raw))
    assert sorted(os.listdir(path)) == sorted(f"{i}.comm" for i in files)
    for comm_id, raw in items:
        with open(os.path.join(path, f"{comm_id}.comm"), "rb") as f:
            assert f.read() == raw


# -- parity ----------------------------------------------------------------------


async def test_count_and_ids_parity_over_a_grid(cp_fetch_server: int, aio_fetch_server: int) -> None:
    ref = FetchCommunicationClient.connect("127.0.0.1", cp_fetch_server, timeout=10)
    ours = FetchCommunicationClient.connect("127.0.0.1", aio_fetch_server, timeout=10)
    async with ref, ours:
        assert await ours.getCommunicationCount() == await ref.getCommunicationCount()
        for offset in GRID:
            for count in GRID:
                want = await ref.getCommunicationIDs(offset, count)
                assert await ours.getCommunicationIDs(offset, count) == want, (offset, count)


def _cp_ids(port: int) -> list[list[str]]:
    with CpFetchClientWrapper("127.0.0.1", port) as client:
        return [client.getCommunicationIDs(o, c) for o in GRID[::3] for c in GRID[::3]]


async def test_concrete_python_client_sees_the_same_ids_from_both(cp_fetch_server: int, aio_fetch_server: int) -> None:
    ref, ours = await asyncio.gather(asyncio.to_thread(_cp_ids, cp_fetch_server),
                                     asyncio.to_thread(_cp_ids, aio_fetch_server))
    assert ours == ref
