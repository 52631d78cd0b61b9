"""CommunicationContainerFetchHandler against concrete-python's handler as the reference."""

from __future__ import annotations

import gzip
import os
from typing import Any

import pytest
from concrete.access.ttypes import FetchRequest as CpFetchRequest
from concrete.util import write_communication_to_buffer as cp_write
from concrete.util.access import CommunicationContainerFetchHandler as CpHandler
from concrete.util.comm_container import DirectoryBackedCommunicationContainer as CpDirectoryContainer
from conftest import concrete_comms

from aioaccess import (
    CommunicationContainerFetchHandler,
    CorruptCommunication,
    DirectoryBackedCommunicationContainer,
    FetchCommunicationClient,
    FetchCommunicationServiceWrapper,
    FetchRequest,
    ServicesException,
    __version__,
    read_communication_from_buffer,
    write_communication_to_buffer,
)

GRID = [-20, -11, -10, -3, -1, 0, 1, 2, 5, 9, 10, 11, 100]


@pytest.fixture
def nested_dir(tmp_path: Any) -> tuple[str, list[Any]]:
    """.comm, .concrete and .gz files in nested folders, plus files that are not Communications."""
    comms = concrete_comms(7, prefix="n")
    root = tmp_path / "nested"
    (root / "a" / "b").mkdir(parents=True)
    (root / "c").mkdir()
    places = ["", "a", "a/b", "c", "", "a/b", "c"]
    exts = [".comm", ".concrete", ".gz", ".comm", ".gz", ".comm", ".concrete"]
    for comm, place, ext in zip(comms, places, exts, strict=True):
        raw = cp_write(comm)
        path = root / place / f"{comm.id}{ext}"
        path.write_bytes(gzip.compress(raw) if ext == ".gz" else raw)
    (root / "README.txt").write_text("not a Communication")
    (root / "a" / "notes.json").write_text("{}")
    return os.fspath(root), comms


async def test_about_and_alive(comm_dir: str) -> None:
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    info = await handler.about()
    assert info.name.startswith("CommunicationContainerFetchHandler - ")
    assert "DirectoryBackedCommunicationContainer" in info.name
    assert info.version == __version__
    assert await handler.alive() is True


async def test_fetch_skips_unknown_ids_keeps_order_and_duplicates(comm_dir: str, cp_comms: list[Any]) -> None:
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    ids = [cp_comms[5].id, "missing", cp_comms[1].id, cp_comms[5].id, ""]
    result = await handler.fetch(FetchRequest(communicationIds=ids))
    reference = CpHandler(CpDirectoryContainer(comm_dir)).fetch(CpFetchRequest(communicationIds=ids))
    assert [write_communication_to_buffer(c) for c in result.communications] == [
        cp_write(c) for c in reference.communications]
    assert await handler.fetch_raw(ids) == [cp_write(c) for c in reference.communications]
    assert (await handler.fetch(FetchRequest(communicationIds=[]))).communications == []


async def test_count_and_ids_slicing_match_reference_over_a_grid(nested_dir: tuple[str, list[Any]]) -> None:
    path, comms = nested_dir
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(path))
    reference = CpHandler(CpDirectoryContainer(path))
    assert await handler.getCommunicationCount() == reference.getCommunicationCount() == len(comms)
    for offset in GRID:
        for count in GRID:
            assert await handler.getCommunicationIDs(offset, count) == reference.getCommunicationIDs(offset, count), (
                offset, count)


async def test_nested_directory_with_gz_and_other_files(nested_dir: tuple[str, list[Any]]) -> None:
    path, comms = nested_dir
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(path))
    raws = await handler.fetch_raw([c.id for c in comms] + ["README", "notes"])
    assert raws == [cp_write(c) for c in comms]  # .gz served decompressed; other files are not ids


async def test_plain_dict_of_communications_and_bytes(cp_comms: list[Any]) -> None:
    comms = {c.id: read_communication_from_buffer(cp_write(c)) for c in cp_comms[:5]}
    raw = {c.id: cp_write(c) for c in cp_comms[5:]}
    for container in (comms, raw):
        handler = CommunicationContainerFetchHandler(container)
        ids = list(container)
        assert await handler.getCommunicationCount() == len(container)
        assert await handler.getCommunicationIDs(1, 2) == ids[1:3]
        assert await handler.fetch_raw(ids) == [cp_write(c) for c in cp_comms if c.id in container]
        result = await handler.fetch(FetchRequest(communicationIds=ids[::-1]))
        assert [c.id for c in result.communications] == ids[::-1]
        assert "dict" in (await handler.about()).name


async def test_corrupt_file_is_a_services_exception_over_the_wire(comm_dir: str, cp_comms: list[Any]) -> None:
    with open(os.path.join(comm_dir, "broken.comm"), "wb") as f:
        f.write(cp_write(cp_comms[0])[:-5])
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    with pytest.raises(CorruptCommunication, match="broken"):
        await handler.fetch_raw(["broken"])
    async with FetchCommunicationServiceWrapper(handler).serving() as listener:
        async with FetchCommunicationClient.connect("127.0.0.1", listener.bound_port, timeout=5) as client:
            with pytest.raises(ServicesException, match="broken"):
                await client.fetch_raw([cp_comms[1].id, "broken"])
            assert await client.fetch_raw([cp_comms[1].id]) == [cp_write(cp_comms[1])]


async def test_file_removed_after_indexing_is_skipped(comm_dir: str, cp_comms: list[Any]) -> None:
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    os.remove(os.path.join(comm_dir, f"{cp_comms[2].id}.comm"))
    assert await handler.fetch_raw([cp_comms[2].id, cp_comms[3].id]) == [cp_write(cp_comms[3])]


def test_missing_directory_is_refused(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        DirectoryBackedCommunicationContainer(os.fspath(tmp_path / "nope"))


def test_unsupported_container_type() -> None:
    with pytest.raises(TypeError, match="list"):
        CommunicationContainerFetchHandler([1, 2, 3])  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [50, 200_000])  # small: read in place; big: read in a worker thread
async def test_corrupt_gz_file_is_a_services_exception(comm_dir: str, size: int) -> None:
    good = gzip.compress(os.urandom(size))
    with open(os.path.join(comm_dir, "nogz.gz"), "wb") as f:
        f.write(b"not gzip" * (size // 8))
    with open(os.path.join(comm_dir, "cut.gz"), "wb") as f:
        f.write(good[: len(good) // 2])
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    for comm_id in ("nogz", "cut"):
        with pytest.raises(CorruptCommunication, match=comm_id):
            await handler.fetch_raw([comm_id])
    async with FetchCommunicationServiceWrapper(handler).serving() as listener:
        async with FetchCommunicationClient.connect("127.0.0.1", listener.bound_port, timeout=5) as client:
            with pytest.raises(ServicesException, match="gunzip"):
                await client.fetch_raw(["cut"])
            assert await client.getCommunicationCount() == 12
