"""MemoryBackedCommunicationContainer on every file kind concrete-python's fetch-server loads into memory."""

from __future__ import annotations

import bz2
import gzip
import os
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer
from concrete.util.comm_container import MemoryBackedCommunicationContainer as CpMemoryContainer
from concrete.util.file_io import CommunicationWriter, CommunicationWriterTar, CommunicationWriterTGZ
from conftest import concrete_comms

from aioaccess import CorruptCommunication, MemoryBackedCommunicationContainer
from aioaccess.backends.memory import FileTooLarge

N = 6


@pytest.fixture(scope="module")
def comms() -> list[Any]:
    return concrete_comms(N, prefix="mem")


def _write(kind: str, path: str, comms: list[Any]) -> None:
    if kind in ("tar", "tar.gz", "tgz"):
        writer = CommunicationWriterTGZ(path) if kind != "tar" else CommunicationWriterTar(path)
        with writer:
            for comm in comms:
                writer.write(comm, f"{comm.id}.comm")
        return
    if kind in ("comm", "concrete"):
        comms = comms[:1]
    if kind == "gz":
        with CommunicationWriter(path, gzip=True) as writer:
            for comm in comms:
                writer.write(comm)
        return
    data = b"".join(write_communication_to_buffer(c) for c in comms)
    with open(path, "wb") as f:
        f.write(bz2.compress(data) if kind == "bz2" else data)


@pytest.mark.parametrize("kind", ["comm", "concrete", "concatenated", "tar", "tar.gz", "tgz", "gz", "bz2"])
async def test_loads_every_kind_like_concrete_python(tmp_path: Any, comms: list[Any], kind: str) -> None:
    path = os.fspath(tmp_path / f"comms.{kind}")
    _write(kind, path, comms)
    expected = {c.id: write_communication_to_buffer(c) for c in (comms[:1] if kind in ("comm", "concrete") else comms)}
    async with MemoryBackedCommunicationContainer(path) as container:
        assert await container.get_raw_many(list(expected)) == expected
        assert await container.ids() == list(expected)
    if kind != "bz2":  # concrete-python guesses bz2 by name only
        reference = CpMemoryContainer(path)
        assert list(reference) == list(expected)


async def test_loads_lazily_without_async_with(tmp_path: Any, comms: list[Any]) -> None:
    path = tmp_path / "comms.tgz"
    _write("tgz", os.fspath(path), comms)
    container = MemoryBackedCommunicationContainer(path)
    assert container.comm_id_to_raw is None
    assert await container.count() == N
    opened = await MemoryBackedCommunicationContainer.open(path)
    assert await opened.ids() == await container.ids()


def test_refuses_a_file_over_max_file_size_stating_both_sizes(tmp_path: Any, comms: list[Any]) -> None:
    path = tmp_path / "big.concatenated"
    _write("concatenated", os.fspath(path), comms)
    size = path.stat().st_size
    with pytest.raises(FileTooLarge) as info:
        MemoryBackedCommunicationContainer(path, max_file_size=size - 1)
    assert f"{size} bytes" in str(info.value) and f"{size - 1} bytes" in str(info.value)
    MemoryBackedCommunicationContainer(path, max_file_size=size)  # exactly the limit is fine


async def test_truncated_file_names_where(tmp_path: Any, comms: list[Any]) -> None:
    path = tmp_path / "cut.comm"
    data = b"".join(write_communication_to_buffer(c) for c in comms)
    path.write_bytes(data[:-10])
    with pytest.raises(CorruptCommunication, match=r"cut\.comm#5"):
        await MemoryBackedCommunicationContainer(path).load()


async def test_a_gzipped_tar_member_is_inflated(tmp_path: Any, comms: list[Any]) -> None:
    import io
    import tarfile

    path = tmp_path / "nested.tar"
    with tarfile.open(path, "w") as tar:
        for comm in comms[:2]:
            data = gzip.compress(write_communication_to_buffer(comm))
            info = tarfile.TarInfo(f"{comm.id}.comm.gz")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    container = await MemoryBackedCommunicationContainer.open(path)
    assert await container.ids() == [c.id for c in comms[:2]]


def test_missing_file(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        MemoryBackedCommunicationContainer(tmp_path / "absent.comm")
