"""DirectoryBackedStoreHandler removes the temporary files of killed stores, and nothing else."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import pytest
from _procs import aioaccess_server
from concrete.util import read_communication_from_file
from concrete.util.access_wrapper import StoreCommunicationClientWrapper as CpStoreClientWrapper
from conftest import concrete_comms

from aioaccess.handlers.store import DEFAULT_TEMP_MAX_AGE, DirectoryBackedStoreHandler, is_temp_name

HOUR = 3600.0


def age(path: str, seconds: float) -> str:
    """Set ``path``'s times ``seconds`` in the past (the link itself for a symlink)."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)
    return path


def leftover(directory: str, seconds: float = 0.0) -> str:
    """A temporary file named exactly as the handler names them, ``seconds`` old."""
    fd, path = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=directory)
    os.write(fd, b"half a Communication")
    os.close(fd)
    return age(path, seconds)


def names(directory: str) -> set[str]:
    return set(os.listdir(directory))


def test_only_old_files_of_the_exact_temporary_pattern_are_removed(tmp_path: Any, store_dir: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    old = {os.path.basename(leftover(store_dir, 2 * HOUR)) for _ in range(3)}
    for name in (".tmp-ab_09xyz.part", ".tmp-zzzzzzzz.part"):  # the characters tempfile uses
        path = os.path.join(store_dir, name)
        open(path, "wb").close()
        old.add(os.path.basename(age(path, 2 * HOUR)))
    fresh = {os.path.basename(leftover(store_dir, 0)), os.path.basename(leftover(store_dir, HOUR - 60))}
    outside = tmp_path / "outside.part"
    outside.write_bytes(b"not the store's")
    age(os.fspath(outside), 2 * HOUR)
    look_alikes = [
        ".tmp-abcdefg.part", ".tmp-abcdefghi.part", ".tmp-ABCDEFGH.part", ".tmp-abcd-fgh.part",
        ".tmp-abcd.fgh.part", "tmp-abcdefgh.part", "..tmp-abcdefgh.part", "x.tmp-abcdefgh.part",
        ".tmp-abcdefgh.part.comm", ".tmp-abcdefgh.parts", ".tmp-abcdefgh.par", ".tmp-abcdefgh.part~",
        ".tmp-abcdefgh.comm",  # a stored Communication whose id is .tmp-abcdefgh
        ".tmp-abcdefgh.part\n", " .tmp-abcdefgh.part", ".TMP-abcdefgh.part", "keep.comm",
    ]
    for name in look_alikes:
        path = os.path.join(store_dir, name)
        open(path, "wb").close()
        age(path, 2 * HOUR)
    os.mkdir(os.path.join(store_dir, ".tmp-dirdirdi.part"))  # a directory with the name: not ours
    age(os.path.join(store_dir, ".tmp-dirdirdi.part"), 2 * HOUR)
    os.symlink(outside, os.path.join(store_dir, ".tmp-symlinkk.part"))  # a symlink with the name: not ours
    age(os.path.join(store_dir, ".tmp-symlinkk.part"), 2 * HOUR)
    os.mkdir(os.path.join(store_dir, "sub"))  # only the store directory itself holds temporary files
    nested = leftover(os.path.join(store_dir, "sub"), 2 * HOUR)
    before = names(store_dir)
    assert old <= before and len(old) == 5
    assert all(is_temp_name(n) for n in old | fresh) and not any(map(is_temp_name, look_alikes))

    with caplog.at_level(logging.INFO, logger="aioaccess.handlers.store"):
        DirectoryBackedStoreHandler(store_dir, fsync=False)

    assert names(store_dir) == before - old
    assert fresh <= names(store_dir) and os.path.exists(nested) and outside.read_bytes() == b"not the store's"
    assert f"Removed 5 leftover temporary files older than 3600 s from {store_dir}" in caplog.messages
    # Nothing old is left: a second handler removes nothing.
    assert DirectoryBackedStoreHandler(store_dir, fsync=False).remove_stale_temp_files() == 0


def test_the_age_is_a_constructor_argument(store_dir: str) -> None:
    ten_minutes = leftover(store_dir, 600)
    two_minutes = leftover(store_dir, 120)
    DirectoryBackedStoreHandler(store_dir, fsync=False)  # default: an hour
    assert os.path.exists(ten_minutes) and os.path.exists(two_minutes) and DEFAULT_TEMP_MAX_AGE == HOUR
    DirectoryBackedStoreHandler(store_dir, fsync=False, temp_max_age=None)  # never
    assert os.path.exists(ten_minutes)
    DirectoryBackedStoreHandler(store_dir, fsync=False, temp_max_age=300)
    assert not os.path.exists(ten_minutes) and os.path.exists(two_minutes)
    with pytest.raises(ValueError, match="temp_max_age must be >= 0 or None, not -1"):
        DirectoryBackedStoreHandler(store_dir, temp_max_age=-1)


# A store SIGKILLed after writing its temporary file and before renaming it into place.
KILLED_STORE = """
import asyncio, os, signal, sys
from concrete.util import create_comm, write_communication_to_buffer
from aioaccess.handlers.store import DirectoryBackedStoreHandler
handler = DirectoryBackedStoreHandler(sys.argv[1], temp_max_age=None)
raw = write_communication_to_buffer(create_comm("killed", "never renamed"))
os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
asyncio.run(handler.store_raw("killed", raw))
"""


def killed_store(store_dir: str) -> str:
    """Run a store that is killed mid-way; return the temporary file it left."""
    before = names(store_dir)
    proc = subprocess.run([sys.executable, "-c", KILLED_STORE, store_dir], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (left,) = names(store_dir) - before
    return os.path.join(store_dir, left)


def test_the_file_a_killed_store_leaves_is_removed_once_old(store_dir: str) -> None:
    left = killed_store(store_dir)
    assert is_temp_name(os.path.basename(left))
    assert read_communication_from_file(left).id == "killed"  # complete bytes, never renamed
    DirectoryBackedStoreHandler(store_dir)
    assert os.path.exists(left)  # could still be a sibling's store in flight
    age(left, HOUR + 60)
    DirectoryBackedStoreHandler(store_dir)
    assert names(store_dir) == set()


def wait_for_log(path: Any, text: str, count: int, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while path.read_text(encoding="utf-8").count(text) < count:
        assert time.monotonic() < deadline, path.read_text(encoding="utf-8")
        time.sleep(0.05)


def test_store_server_workers_clean_up_and_store(tmp_path: Any, store_dir: str) -> None:
    """Two store-server workers over one directory: old leftovers go once, a fresh one stays, stores work."""
    old = [killed_store(store_dir) for _ in range(2)] + [leftover(store_dir) for _ in range(2)]
    for path in old:
        age(path, 2 * HOUR)
    in_flight = leftover(store_dir, 60)
    comms = concrete_comms(4, prefix="after-cleanup")
    with aioaccess_server(tmp_path, "store-server", store_dir, "--workers", "2") as port:
        log_path = tmp_path / f"server-{port}.log"
        wait_for_log(log_path, "Serving DirectoryBackedStoreHandler", 2)  # the second worker cleaned up too
        for comm in comms:
            with CpStoreClientWrapper("127.0.0.1", port) as client:
                client.store(comm)
        stored = {name for name in names(store_dir) if name.endswith(".comm")}
        assert stored == {f"{c.id}.comm" for c in comms}
        assert names(store_dir) == stored | {os.path.basename(in_flight)}
    for comm in comms:
        assert read_communication_from_file(os.path.join(store_dir, f"{comm.id}.comm")).text == comm.text
    log = log_path.read_text(encoding="utf-8")
    # Each worker cleaned at start; between them every old file was removed exactly once.
    counts = [int(n) for n in re.findall(r"Removed (\d+) leftover temporary files older than 3600 s", log)]
    assert sum(counts) == len(old), log
