"""ZipFileBackedCommunicationContainer against concrete-python's on the same zip."""

from __future__ import annotations

import os
import zipfile
from typing import Any

from concrete.util import write_communication_to_buffer
from concrete.util.comm_container import ZipFileBackedCommunicationContainer as CpZipContainer
from concrete.util.file_io import CommunicationWriterZip
from conftest import concrete_comms

from aioaccess import ZipFileBackedCommunicationContainer


async def test_same_ids_and_bytes_as_concrete_python(tmp_path: Any) -> None:
    comms = concrete_comms(5, prefix="zip")
    path = os.fspath(tmp_path / "comms.zip")
    with CommunicationWriterZip(path) as writer:
        for k, comm in enumerate(comms):
            writer.write(comm, f"dir{k % 2}/{comm.id}.{'comm' if k % 2 else 'concrete'}")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("notes/readme.txt", b"not a Communication")
        zf.writestr("other.gz", b"not one either")
    reference = CpZipContainer(path)
    try:
        async with ZipFileBackedCommunicationContainer(path) as container:
            assert await container.ids() == list(reference)
            assert await container.count() == len(comms)
            for comm in comms:
                assert await container.get_raw(comm.id) == write_communication_to_buffer(comm)
            assert not await container.contains("readme")
        assert container.zipfile.fp is None  # closed on exit
    finally:
        reference.zipfile.close()


async def test_comm_extensions_select_members(tmp_path: Any) -> None:
    comm = concrete_comms(1, prefix="ext")[0]
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{comm.id}.bin", write_communication_to_buffer(comm))
    async with ZipFileBackedCommunicationContainer(path) as container:
        assert await container.count() == 0
    async with ZipFileBackedCommunicationContainer(path, comm_extensions=(".bin",)) as container:
        assert await container.ids() == [comm.id]
