"""The directory and zip containers' read caches never serve stale or unchecked bytes."""

from __future__ import annotations

import os
import zipfile
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms

from aioaccess.backends.directory import DirectoryBackedCommunicationContainer
from aioaccess.backends.zip import ZipFileBackedCommunicationContainer
from aioaccess.exceptions import CorruptCommunication


def _replace(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# watch=False: stat confirms each cached read, so a change shows at once; while the tree is watched
# it shows once the loop has handled the inotify event (test_directory_watch.py).
async def test_directory_serves_a_replaced_file_at_once(comm_dir: str, cp_comms: list[Any]) -> None:
    container = DirectoryBackedCommunicationContainer(comm_dir, watch=False)
    first = cp_comms[0]
    path = os.path.join(comm_dir, f"{first.id}.comm")
    assert await container.get_raw(first.id) == cp_write(first)
    assert await container.get_raw(first.id) == cp_write(first)  # cached
    other = concrete_comms(1, prefix="replacement")[0]
    _replace(path, cp_write(other))
    assert await container.get_raw(first.id) == cp_write(other)


async def test_directory_checks_a_replaced_file_again(comm_dir: str, cp_comms: list[Any]) -> None:
    container = DirectoryBackedCommunicationContainer(comm_dir, watch=False)
    first = cp_comms[0]
    await container.get_raw(first.id)
    _replace(os.path.join(comm_dir, f"{first.id}.comm"), cp_write(first)[:-7])
    with pytest.raises(CorruptCommunication):
        await container.get_raw(first.id)
    with pytest.raises(CorruptCommunication):  # a bad version is never remembered as checked
        await container.get_raw(first.id)


async def test_directory_removed_file_is_missing(comm_dir: str, cp_comms: list[Any]) -> None:
    container = DirectoryBackedCommunicationContainer(comm_dir, watch=False)
    first = cp_comms[0]
    await container.get_raw(first.id)
    os.remove(os.path.join(comm_dir, f"{first.id}.comm"))
    assert await container.get_raw_many([first.id, cp_comms[1].id]) == {cp_comms[1].id: cp_write(cp_comms[1])}


@pytest.mark.parametrize("cache_bytes", [0, 1, 1 << 20])
async def test_directory_cache_size_is_bounded(comm_dir: str, cp_comms: list[Any], cache_bytes: int) -> None:
    container = DirectoryBackedCommunicationContainer(comm_dir, cache_bytes=cache_bytes)
    for _ in range(2):
        got = await container.get_raw_many([c.id for c in cp_comms])
        assert got == {c.id: cp_write(c) for c in cp_comms}
    assert container._cached_bytes <= cache_bytes
    assert container._cached_bytes == sum(len(v[1]) for v in container._cache.values())


def _zip(path: str, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> str:
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
async def test_zip_reads_match_zipfile(tmp_path: Any, cp_comms: list[Any], compression: int) -> None:
    members = {f"sub/{c.id}.comm": cp_write(c) for c in cp_comms}
    path = _zip(os.fspath(tmp_path / "c.zip"), members, compression)
    async with ZipFileBackedCommunicationContainer(path) as container:
        ids = [c.id for c in reversed(cp_comms)] + ["nope"]
        for _ in range(2):  # first read checks (and caches), second comes from the cache
            assert await container.get_raw_many(ids) == {c.id: cp_write(c) for c in cp_comms}
        assert (len(container._stored) == len(cp_comms)) == (compression == zipfile.ZIP_STORED)


async def test_zip_corrupt_stored_member_is_refused_every_time(tmp_path: Any, cp_comms: list[Any]) -> None:
    good = cp_write(cp_comms[0])
    path = _zip(os.fspath(tmp_path / "c.zip"), {f"{cp_comms[0].id}.comm": good})
    with open(path, "r+b") as f:  # flip one byte inside the member: its CRC no longer matches
        data = f.read()
        at = data.index(good) + len(good) // 2
        f.seek(at)
        f.write(bytes([data[at] ^ 0xFF]))
    async with ZipFileBackedCommunicationContainer(path) as container:
        for _ in range(2):
            with pytest.raises(zipfile.BadZipFile):
                await container.get_raw(cp_comms[0].id)
        assert not container._cache
