"""DirectoryBackedStoreHandler: hostile ids through concrete-python's client, atomic writes."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from concrete.services.ttypes import ServicesException as CpServicesException
from concrete.util import create_comm
from concrete.util import write_communication_to_buffer as cp_write
from concrete.util.access_wrapper import StoreCommunicationClientWrapper as CpStoreClientWrapper
from conftest import concrete_comms

from aioaccess import (
    DirectoryBackedStoreHandler,
    InvalidCommId,
    StoreCommunicationClient,
    StoreCommunicationServiceWrapper,
    read_communication_from_buffer,
)

HOSTILE = [
    ("../../x", "path separator"),
    ("../escape", "path separator"),
    ("/abs/path", "path separator"),
    ("/tmp/aioaccess-escape", "path separator"),
    ("a/b", "path separator"),
    ("a\\b", "path separator"),
    ("..", "'..'"),
    ("x..", "'..'"),
    ("", "empty"),
    ("nul\x00byte", "NUL or control"),
    ("tab\tid", "NUL or control"),
    ("new\nline", "NUL or control"),
    ("esc\x1b[31m", "NUL or control"),
    ("del\x7f", "NUL or control"),
    ("x" * 300, "file-system limit"),
    ("é" * 130, "file-system limit"),  # 260 bytes of UTF-8
]


def snapshot(root: str) -> set[str]:
    """Every path under ``root`` (files and folders), relative."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def cp_store(port: int, comm: Any) -> None:
    with CpStoreClientWrapper("127.0.0.1", port) as client:
        client.store(comm)


@pytest.mark.interop
async def test_hostile_ids_through_concrete_python_client(tmp_path: Any) -> None:
    store_dir = tmp_path / "deep" / "er" / "store"
    store_dir.mkdir(parents=True)
    before = snapshot(os.fspath(tmp_path))
    handler = DirectoryBackedStoreHandler(store_dir, fsync=False)
    async with StoreCommunicationServiceWrapper(handler).serving() as listener:
        for comm_id, rule in HOSTILE:
            comm = create_comm(comm_id, "hostile text")
            with pytest.raises(CpServicesException) as info:
                await asyncio.to_thread(cp_store, listener.bound_port, comm)
            assert rule in info.value.message, (comm_id, info.value.message)
        # The server still stores well-behaved ids afterwards.
        good = create_comm("good-id", "fine")
        await asyncio.to_thread(cp_store, listener.bound_port, good)
    after = snapshot(os.fspath(tmp_path))
    assert after - before == {os.path.join("deep", "er", "store", "good-id.comm")}
    assert not os.path.exists("/tmp/aioaccess-escape.comm")
    assert not os.path.exists("/abs")
    assert (store_dir / "good-id.comm").read_bytes() == cp_write(good)


@pytest.mark.parametrize(("comm_id", "rule"), HOSTILE)
def test_check_id_names_the_rule(store_dir: str, comm_id: str, rule: str) -> None:
    handler = DirectoryBackedStoreHandler(store_dir)
    with pytest.raises(InvalidCommId) as info:
        handler.check_id(comm_id)
    assert rule in str(info.value)
    assert rule in info.value.rule


@pytest.mark.parametrize("comm_id", ["plain", "with space", "dots.in.name", "ünïcödé", ".hidden", "x" * 250, "a.b-c_d"])
def test_check_id_accepts_ordinary_ids(store_dir: str, comm_id: str) -> None:
    assert DirectoryBackedStoreHandler(store_dir).check_id(comm_id) == comm_id


def test_check_id_refuses_a_missing_id(store_dir: str) -> None:
    with pytest.raises(InvalidCommId, match="no id"):
        DirectoryBackedStoreHandler(store_dir).check_id(None)


def test_check_id_refuses_a_lone_surrogate_with_a_message_that_encodes(store_dir: str) -> None:
    with pytest.raises(InvalidCommId, match="not valid Unicode") as info:
        DirectoryBackedStoreHandler(store_dir).check_id("bad-\ud800")
    str(info.value).encode("utf-8")  # it can travel in a ServicesException


async def test_store_of_nothing_is_a_clear_error(store_dir: str) -> None:
    with pytest.raises(InvalidCommId, match="no Communication"):
        await DirectoryBackedStoreHandler(store_dir).store(None)  # type: ignore[arg-type]
    assert os.listdir(store_dir) == []


async def test_symlink_planted_in_the_store_does_not_lead_outside(tmp_path: Any, store_dir: str) -> None:
    outside = tmp_path / "outside.comm"
    outside.write_bytes(b"precious")
    os.symlink(outside, os.path.join(store_dir, "planted.comm"))
    handler = DirectoryBackedStoreHandler(store_dir, fsync=False)
    comm = read_communication_from_buffer(cp_write(concrete_comms(1, prefix="planted")[0]))
    comm.id = "planted"
    with pytest.raises(InvalidCommId, match="outside the store directory"):
        await handler.store(comm)
    assert outside.read_bytes() == b"precious"


async def test_store_path_is_resolved_once(tmp_path: Any) -> None:
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    handler = DirectoryBackedStoreHandler(tmp_path / "link", fsync=False)
    comm = concrete_comms(1, prefix="via-link")[0]
    await handler.store_raw(comm.id, cp_write(comm))
    assert (real / f"{comm.id}.comm").read_bytes() == cp_write(comm)


def test_missing_store_directory(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        DirectoryBackedStoreHandler(tmp_path / "absent")


@pytest.mark.parametrize("fsync", [True, False])
async def test_writes_are_complete_and_leave_no_temporary_files(store_dir: str, fsync: bool) -> None:
    handler = DirectoryBackedStoreHandler(store_dir, fsync=fsync)
    comms = concrete_comms(5, prefix=f"fs{int(fsync)}")
    for c in comms:
        await handler.store_raw(c.id, cp_write(c))
    assert sorted(os.listdir(store_dir)) == sorted(f"{c.id}.comm" for c in comms)
    mode = os.stat(os.path.join(store_dir, f"{comms[0].id}.comm")).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # not mkstemp's 0600


async def test_concurrent_stores_of_one_id_leave_one_complete_payload(store_server: Any, store_dir: str) -> None:
    # Same id, payloads of very different sizes: a torn or mixed write would show.
    versions = [cp_write(create_comm("same", f"version {i} " + "text " * (i * 400))) for i in range(8)]
    async with StoreCommunicationClient.pooled("127.0.0.1", store_server.bound_port, max_connections=8,
                                               timeout=10) as client:
        for _ in range(5):
            await asyncio.gather(*(client.store_raw(v) for v in versions))
            names = os.listdir(store_dir)
            assert names == ["same.comm"], names  # no .tmp-* left behind
            with open(os.path.join(store_dir, "same.comm"), "rb") as f:
                assert f.read() in versions


async def test_store_overwrites_an_existing_file(store_dir: str) -> None:
    handler = DirectoryBackedStoreHandler(store_dir, fsync=False)
    old, new = create_comm("same", "old"), create_comm("same", "new text")
    await handler.store_raw("same", cp_write(old))
    await handler.store(read_communication_from_buffer(cp_write(new)))
    with open(os.path.join(store_dir, "same.comm"), "rb") as f:
        assert f.read() == cp_write(new)


async def test_failed_rename_leaves_no_temporary_file(store_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import aioaccess.handlers.store as store_module

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("injected: rename failed")

    monkeypatch.setattr(store_module.os, "replace", failing_replace)
    handler = DirectoryBackedStoreHandler(store_dir, fsync=False)
    comm = concrete_comms(1, prefix="full")[0]
    from aioaccess.exceptions import BackendUnavailable

    # A failed write is a backend fault (ServicesException to the caller), like Redis and S3.
    with pytest.raises(BackendUnavailable, match="injected") as info:
        await handler.store_raw(comm.id, cp_write(comm))
    assert isinstance(info.value.__cause__, OSError)
    assert os.listdir(store_dir) == []


async def test_raw_store_refuses_corrupt_bytes(store_dir: str) -> None:
    from aioaccess import CorruptCommunication

    handler = DirectoryBackedStoreHandler(store_dir, fsync=False)
    raw = cp_write(concrete_comms(1, prefix="bad")[0])
    with pytest.raises(CorruptCommunication):
        await handler.store_raw("bad-0", raw[:-3])
    with pytest.raises(CorruptCommunication, match="follow"):
        await handler.store_raw("bad-0", raw + b"\x00")
    assert os.listdir(store_dir) == []


async def test_about_and_alive(store_dir: str) -> None:
    handler = DirectoryBackedStoreHandler(store_dir)
    assert (await handler.about()).name == "DirectoryBackedStoreHandler"
    assert await handler.alive() is True


@pytest.mark.interop
async def test_communication_without_id_through_concrete_python_client(store_server: Any, store_dir: str) -> None:
    comm = create_comm("to-be-removed", "no id")
    comm.id = None  # concrete-python's client does not validate required fields
    with pytest.raises(CpServicesException, match="no id"):
        await asyncio.to_thread(cp_store, store_server.bound_port, comm)
    assert os.listdir(store_dir) == []
