"""While inotify watches its tree, the directory container trusts cached files until the kernel reports a change.

Real files in ``tmp_path``; every "the next read sees the change" waits (with a deadline)
for the event loop to handle the inotify event, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import random
import string
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from concrete.util import create_comm
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms

from aioaccess.backends import directory, directory_cache
from aioaccess.backends.base import check_raw
from aioaccess.backends.directory import DirectoryBackedCommunicationContainer, filesystem_type, parse_mountinfo
from aioaccess.exceptions import CorruptCommunication

pytestmark = pytest.mark.skipif(directory.inotify_simple is None, reason="needs Linux and inotify_simple")

_IN_Q_OVERFLOW = 0x4000


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _replace(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    _write(tmp, data)
    os.replace(tmp, path)


async def _until(predicate: Callable[[], bool], what: str) -> None:
    """Let the loop run until ``predicate()`` holds; fail after a generous deadline."""
    deadline = time.monotonic() + 10.0
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        await asyncio.sleep(0.001)


def _inotify_fds() -> set[int]:
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:inotify":
                found.add(int(name))
        except OSError:
            continue
    return found


def _tree(root: str, comms: Sequence[Any], sub: str = "") -> dict[str, str]:
    """Write each Communication to ``root/sub/<id>.comm``; id -> path."""
    os.makedirs(os.path.join(root, sub), exist_ok=True)
    paths = {}
    for comm in comms:
        paths[comm.id] = os.path.join(root, sub, f"{comm.id}.comm")
        _write(paths[comm.id], cp_write(comm))
    return paths


def _assert_table_is_checked(container: DirectoryBackedCommunicationContainer) -> None:
    for comm_id, raw in container.raw_table.items():
        check_raw(comm_id, raw)
        with open(container.comm_id_to_comm_path[comm_id], "rb") as f:
            assert f.read() == raw


@pytest.fixture
def comms() -> list[Any]:
    return concrete_comms(4)


@pytest.fixture
def tree(tmp_path: Any, comms: list[Any]) -> tuple[str, dict[str, str]]:
    root = os.fspath(tmp_path / "tree")
    return root, _tree(root, comms)


async def _watched(root: str, **kwargs: Any) -> DirectoryBackedCommunicationContainer:
    container = DirectoryBackedCommunicationContainer(root, **kwargs)
    assert container._wants_watch
    return container


# -- changes are seen ------------------------------------------------------
@pytest.mark.parametrize("how", ["same size, in place", "new size, in place", "atomic rename"])
async def test_a_changed_file_is_served_new(tree: tuple[str, dict[str, str]], comms: list[Any], how: str) -> None:
    root, paths = tree
    container = await _watched(root)
    table = container.raw_table
    first = comms[0]
    assert await container.get_raw(first.id) == cp_write(first)
    assert table[first.id] == cp_write(first)  # the server may now answer it without calling the container
    if how == "same size, in place":
        new = cp_write(concrete_comms(1, prefix="mmmm")[0])
        assert len(new) == len(cp_write(first))
        with open(paths[first.id], "r+b") as f:
            f.write(new)
    elif how == "new size, in place":
        new = cp_write(concrete_comms(1, prefix="a-longer-prefix")[0])
        _write(paths[first.id], new)
    else:
        new = cp_write(concrete_comms(1, prefix="renamed")[0])
        _replace(paths[first.id], new)
    await _until(lambda: first.id not in table, "the event drops the entry")
    assert await container.get_raw(first.id) == new
    assert table[first.id] == new
    assert container.raw_table is table
    _assert_table_is_checked(container)
    await container.aclose()


async def test_a_deleted_file_is_skipped(tree: tuple[str, dict[str, str]], comms: list[Any],
                                         caplog: pytest.LogCaptureFixture) -> None:
    root, paths = tree
    container = await _watched(root)
    ids = [c.id for c in comms]
    assert len(await container.get_raw_many(ids)) == len(ids)
    os.remove(paths[ids[0]])
    await _until(lambda: ids[0] not in container.raw_table, "the event drops the entry")
    with caplog.at_level(logging.ERROR, logger="aioaccess.backends.directory"):
        got = await container.get_raw_many(ids)
    assert list(got) == ids[1:]
    assert paths[ids[0]] in caplog.text
    await container.aclose()


async def test_a_same_size_corrupt_rewrite_is_checked_again(tree: tuple[str, dict[str, str]],
                                                            comms: list[Any]) -> None:
    root, paths = tree
    container = await _watched(root)
    first = comms[0]
    await container.get_raw(first.id)
    with open(paths[first.id], "r+b") as f:  # same inode, same size: maybe the same timestamps too
        f.write(b"\xff" * len(cp_write(first)))
    await _until(lambda: first.id not in container.raw_table, "the event drops the entry")
    assert first.id not in container._checked  # even if its (inode, size, mtime, ctime) did not change
    for _ in range(2):
        with pytest.raises(CorruptCommunication):
            await container.get_raw(first.id)
        assert first.id not in container.raw_table
    await container.aclose()


class _GatedContainer(DirectoryBackedCommunicationContainer):
    """Holds each threaded read's result until the test lets it go (the read itself is real)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_done = threading.Event()
        self.gate = threading.Event()

    def _read_blocking(self, paths: list[tuple[str, str]]) -> Any:  # type: ignore[override]
        found = DirectoryBackedCommunicationContainer._read_blocking(paths)
        self.read_done.set()
        if not self.gate.wait(30):
            raise TimeoutError("gate never opened")
        return found


def _big_comm(comm_id: str) -> bytes:
    rng = random.Random(comm_id)
    text = "".join(rng.choice(string.ascii_letters) for _ in range(200_000))
    return cp_write(create_comm(comm_id, text))


async def test_a_file_rewritten_during_a_threaded_read_is_not_kept(tree: tuple[str, dict[str, str]],
                                                                   comms: list[Any]) -> None:
    root, paths = tree
    gz = os.path.join(root, "big.gz")
    old, new = _big_comm("big"), _big_comm("big")
    assert old != new  # same id and text, new uuids
    _write(gz, gzip.compress(old))
    assert os.path.getsize(gz) > 65536  # always read (and gunzipped) in a worker thread
    container = _GatedContainer(root)
    other = comms[0].id
    await container.get_raw(other)  # cached: its event shows when the loop has handled the batch
    task = asyncio.ensure_future(container.get_raw("big"))
    await _until(container.read_done.is_set, "the thread has read the old bytes")
    _replace(gz, gzip.compress(new))
    _replace(paths[other], cp_write(concrete_comms(1, prefix="other")[0]))
    await _until(lambda: other not in container.raw_table, "the loop handles both events")
    container.gate.set()
    assert await task == old  # read before the change: fine to answer, wrong to keep
    assert "big" not in container.raw_table and "big" not in container._cache
    assert await container.get_raw("big") == new
    assert container.raw_table["big"] == new  # a read no event overtook is kept
    await container.aclose()


# -- what never enters raw_table ---------------------------------------------
async def test_symlinked_and_hard_linked_files_are_served_but_not_trusted(tmp_path: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(directory_cache, "_RACY_NS", 0)  # as if the files were written long ago
    plain, linked, hard = concrete_comms(3)
    root, elsewhere = tmp_path / "tree", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    _tree(os.fspath(root), [plain])
    target = os.fspath(elsewhere / "target.comm")  # outside the tree: no watch sees it change
    _write(target, cp_write(linked))
    os.symlink(target, root / f"{linked.id}.comm")
    _tree(os.fspath(root), [hard])
    other_name = os.fspath(elsewhere / "other-name")
    os.link(root / f"{hard.id}.comm", other_name)
    container = await _watched(os.fspath(root))
    ids = [plain.id, linked.id, hard.id]
    for _ in range(2):
        assert await container.get_raw_many(ids) == {c.id: cp_write(c) for c in (plain, linked, hard)}
    assert set(container.raw_table) == {plain.id}
    assert set(container._cache) == set(ids)
    # changed where no watch sees it: each read is confirmed with stat
    new_linked = cp_write(concrete_comms(1, prefix="new-linked")[0])
    new_hard = cp_write(concrete_comms(1, prefix="new-hard-link")[0])
    _write(target, new_linked)
    _write(other_name, new_hard)
    assert await container.get_raw_many(ids) == {plain.id: cp_write(plain), linked.id: new_linked,
                                                 hard.id: new_hard}
    assert set(container.raw_table) == {plain.id}
    await container.aclose()


@pytest.mark.parametrize("cache_bytes", [0, 1000])
async def test_raw_table_respects_the_cache_budget(tree: tuple[str, dict[str, str]], comms: list[Any],
                                                   cache_bytes: int) -> None:
    root, _paths = tree
    container = DirectoryBackedCommunicationContainer(root, cache_bytes=cache_bytes)
    table = container.raw_table
    for _ in range(2):
        assert await container.get_raw_many([c.id for c in comms]) == {c.id: cp_write(c) for c in comms}
    assert container._cached_bytes <= cache_bytes
    assert set(table) <= set(container._cache)
    assert sum(len(v) for v in table.values()) <= cache_bytes
    assert not table  # 844-byte files fit neither budget (an entry may take a quarter of it)
    await container.aclose()


async def test_eviction_removes_from_raw_table(tmp_path: Any) -> None:
    comms = concrete_comms(8)
    root = os.fspath(tmp_path / "tree")
    _tree(root, comms)
    size = len(cp_write(comms[0]))
    container = await _watched(root, cache_bytes=4 * size)  # room for four
    for comm in comms:
        await container.get_raw(comm.id)
        assert set(container.raw_table) == set(container._cache)
    assert list(container.raw_table) == [c.id for c in comms[4:]]
    _assert_table_is_checked(container)
    await container.aclose()


# -- when the watch stops ------------------------------------------------------
async def test_overflow_falls_back_to_stat_for_good(tree: tuple[str, dict[str, str]], comms: list[Any],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    root, paths = tree
    container = await _watched(root)
    table = container.raw_table
    await container.get_raw_many([c.id for c in comms])
    fd = container._fd
    assert fd in _inotify_fds()
    with caplog.at_level(logging.WARNING, logger="aioaccess.backends.directory"):
        container._handle_events([(-1, _IN_Q_OVERFLOW, 0, "")])  # what the kernel queues when it drops events
        container._handle_events([(-1, _IN_Q_OVERFLOW, 0, "")])
    assert caplog.text.count("Stopped watching") == 1
    assert "queue overflow" in caplog.text
    assert container.raw_table is table and not table and not container._cache
    assert fd not in _inotify_fds()
    new = cp_write(concrete_comms(1, prefix="after")[0])
    for _ in range(2):
        assert await container.get_raw(comms[0].id) == cp_write(comms[0])
        assert not table and container._fd is None  # served from the stat-checked cache
    _replace(paths[comms[0].id], new)
    assert await container.get_raw(comms[0].id) == new  # no waiting: stat sees it
    await container.aclose()


@pytest.mark.parametrize("moved", ["subdirectory", "ancestor", "root"])
async def test_moving_a_directory_on_the_path_stops_the_watch(tmp_path: Any, moved: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    comms = concrete_comms(2)
    root = os.fspath(tmp_path / "parent" / "tree")
    paths = _tree(root, comms, sub="a/b")  # no files in tree/ or tree/a
    container = await _watched(root)
    await container.get_raw_many([c.id for c in comms])
    assert container.raw_table
    source = {"subdirectory": os.path.join(root, "a"), "ancestor": os.fspath(tmp_path / "parent"), "root": root}
    with caplog.at_level(logging.WARNING, logger="aioaccess.backends.directory"):
        os.rename(source[moved], source[moved] + "-moved")
        await _until(lambda: container._fd is None, "the watch stops")
    assert "moved or deleted" in caplog.text
    assert not container.raw_table
    # nothing is served from paths that no longer exist; a new file there is read as it is now
    assert await container.get_raw_many([c.id for c in comms]) == {}
    new = cp_write(concrete_comms(1, prefix="recreated")[0])
    os.makedirs(os.path.dirname(paths[comms[0].id]), exist_ok=True)
    _write(paths[comms[0].id], new)
    assert await container.get_raw(comms[0].id) == new
    await container.aclose()


async def test_repointing_a_symlinked_root_stops_the_watch(tmp_path: Any) -> None:
    old, new = concrete_comms(1, prefix="v1")[0], concrete_comms(1, prefix="v2")[0]
    for version, comm in (("v1", old), ("v2", new)):
        (tmp_path / version).mkdir()
        _write(os.fspath(tmp_path / version / "x.comm"), cp_write(comm))
    current = os.fspath(tmp_path / "current")
    os.symlink("v1", current)
    container = await _watched(current)
    assert await container.get_raw("x") == cp_write(old)
    assert "x" in container.raw_table
    os.symlink("v2", current + ".new")
    os.replace(current + ".new", current)
    await _until(lambda: container._fd is None, "the watch stops")
    assert await container.get_raw("x") == cp_write(new)
    await container.aclose()


# -- lifecycle -------------------------------------------------------------------
async def test_aclose_closes_the_inotify_fd(tree: tuple[str, dict[str, str]], comms: list[Any]) -> None:
    root, _paths = tree
    before = _inotify_fds()
    container = await _watched(root)
    assert _inotify_fds() == before  # nothing opened before the first read
    await container.get_raw(comms[0].id)
    fd = container._fd
    assert _inotify_fds() == before | {fd}
    table = container.raw_table
    await container.aclose()
    assert _inotify_fds() == before
    assert container.raw_table is table and not table
    await container.get_raw(comms[0].id)  # a read after aclose() watches again
    assert comms[0].id in table and len(_inotify_fds() - before) == 1
    await container.aclose()
    assert _inotify_fds() == before


def test_each_new_loop_watches_afresh(tree: tuple[str, dict[str, str]], comms: list[Any]) -> None:
    root, paths = tree
    before = _inotify_fds()
    container = DirectoryBackedCommunicationContainer(root)  # made outside any loop
    table = container.raw_table
    first = comms[0].id
    assert asyncio.run(container.get_raw(first)) == cp_write(comms[0])
    assert first in table  # the loop is gone: nothing keeps it current until the next read
    new = cp_write(concrete_comms(1, prefix="between-loops")[0])
    _replace(paths[first], new)

    async def second() -> bytes:
        return await container.get_raw(first)

    assert asyncio.run(second()) == new  # the first read on a new loop starts with an empty cache
    assert container.raw_table is table and table[first] == new
    assert len(_inotify_fds() - before) == 1  # the first loop's fd was closed
    asyncio.run(container.aclose())
    assert _inotify_fds() == before


# -- when not to watch -------------------------------------------------------------
async def test_watch_false_confirms_every_read_with_stat(tree: tuple[str, dict[str, str]], comms: list[Any],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(directory_cache, "_RACY_NS", 0)  # as if the files were written long ago
    root, paths = tree
    before = _inotify_fds()
    container = DirectoryBackedCommunicationContainer(root, watch=False)
    for _ in range(2):
        assert await container.get_raw(comms[0].id) == cp_write(comms[0])
    assert not container.raw_table and comms[0].id in container._cache
    assert _inotify_fds() == before
    new = cp_write(concrete_comms(1, prefix="unwatched")[0])
    _replace(paths[comms[0].id], new)
    assert await container.get_raw(comms[0].id) == new


async def test_a_file_changed_within_the_timestamp_granularity_is_not_kept_while_unwatched(
        tree: tuple[str, dict[str, str]], comms: list[Any]) -> None:
    # A same-size rewrite in the same timestamp tick would keep (inode, size, mtime, ctime): stat cannot see it,
    # so a version this recent is served but not kept.
    root, paths = tree
    container = DirectoryBackedCommunicationContainer(root, watch=False)
    path = paths[comms[0].id]
    old = cp_write(comms[0])
    new = old.replace(b"Document 0", b"Document X")
    assert len(new) == len(old) != 0 and new != old
    st = os.stat(path)
    assert await container.get_raw(comms[0].id) == old
    assert comms[0].id not in container._cache
    with open(path, "r+b") as f:
        f.write(new)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime: only ctime still differs
    assert await container.get_raw(comms[0].id) == new


_MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 27 0:40 / /mnt/with\\040space rw,relatime - tmpfs tmpfs rw
31 27 0:41 / /srv/data rw,relatime shared:7 master:2 - nfs4 server:/export rw,vers=4.2
32 31 0:42 / /srv/data/local rw,relatime - xfs /dev/vdb rw
33 31 0:43 / /srv/data/local rw,relatime - fuse.sshfs host:/x rw
"""


def test_mountinfo_parser() -> None:
    mounts = parse_mountinfo(_MOUNTINFO + "not a mountinfo line\n")
    assert mounts == [("/proc", "proc"), ("/", "ext4"), ("/mnt/with space", "tmpfs"), ("/srv/data", "nfs4"),
                      ("/srv/data/local", "xfs"), ("/srv/data/local", "fuse.sshfs")]
    assert filesystem_type("/", mounts) == "ext4"
    assert filesystem_type("/srv/datax/y", mounts) == "ext4"
    assert filesystem_type("/srv/data", mounts) == "nfs4"
    assert filesystem_type("/srv/data/comms/a", mounts) == "nfs4"
    assert filesystem_type("/srv/data/local/comms", mounts) == "fuse.sshfs"  # stacked: the last one is on top
    assert filesystem_type("/mnt/with space/x", mounts) == "tmpfs"
    assert filesystem_type("relative", []) is None


@pytest.mark.parametrize("where", ["the tree", "a mount inside the tree"])
async def test_auto_mode_does_not_watch_a_network_filesystem(tree: tuple[str, dict[str, str]], comms: list[Any],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture, where: str) -> None:
    root, _paths = tree
    real = os.path.realpath(root)
    mount = real if where == "the tree" else os.path.join(real, "remote")
    text = f"27 1 254:0 / / rw - ext4 /dev/vda rw\n41 27 0:41 / {mount} rw - nfs4 server:/export rw\n"
    monkeypatch.setattr(directory, "_read_mountinfo", lambda: text)
    before = _inotify_fds()
    with caplog.at_level(logging.INFO, logger="aioaccess.backends.directory"):
        container = DirectoryBackedCommunicationContainer(root)
    assert "Not watching" in caplog.text and "nfs4" in caplog.text
    for _ in range(2):
        assert await container.get_raw(comms[0].id) == cp_write(comms[0])
    assert not container.raw_table and _inotify_fds() == before
    # watch=True is the caller's word that only this host writes there
    with caplog.at_level(logging.WARNING, logger="aioaccess.backends.directory"):
        forced = DirectoryBackedCommunicationContainer(root, watch=True)
    assert "misses changes made by other hosts" in caplog.text
    await forced.get_raw(comms[0].id)
    assert comms[0].id in forced.raw_table
    await forced.aclose()


async def test_watch_true_refuses_what_it_cannot_watch(tree: tuple[str, dict[str, str]],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root, _paths = tree
    monkeypatch.setattr(directory, "inotify_simple", None)
    with pytest.raises(RuntimeError, match="inotify_simple is not installed"):
        DirectoryBackedCommunicationContainer(root, watch=True)
    assert not DirectoryBackedCommunicationContainer(root)._wants_watch


async def test_a_forked_child_drops_its_copy_of_the_watch_and_the_parent_keeps_watching(
        tree: tuple[str, dict[str, str]], comms: list[Any]) -> None:
    root, paths = tree
    container = await _watched(root)
    first = comms[0]
    await container.get_raw(first.id)
    assert first.id in container.raw_table
    parent_fd = container._fd
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no shared inotify queue, nothing trusted without a watch of its own
        ok = (container._fd is None and container._loop is None and not container.raw_table
              and parent_fd not in _inotify_fds())
        os.write(write_end, b"1" if ok else b"0")
        os._exit(0)
    os.close(write_end)
    got = os.read(read_end, 1)
    os.close(read_end)
    assert os.waitpid(pid, 0)[1] == 0
    assert got == b"1"
    assert container._fd == parent_fd and first.id in container.raw_table
    new = cp_write(concrete_comms(1, prefix="after-fork")[0])
    _replace(paths[first.id], new)
    await _until(lambda: first.id not in container.raw_table, "the parent's watch drops the entry")
    assert await container.get_raw(first.id) == new
    await container.aclose()
