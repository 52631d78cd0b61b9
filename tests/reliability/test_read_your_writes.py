"""Read-your-writes over a directory: a fetch sent after a change to a file finished never gets the older bytes.

A fetch-server subprocess (the CLI, uvloop) serves a directory while this process changes its files
in every way (delete, ``os.replace``, in-place write, truncate, rewrite, rename away, rename in, delete
and recreate, a directory copied in) and fetches each changed id right after the change returned,
through the fast path (one id: answered from the cached table in ``data_received``) and the general
path (15 ids: the handler).  Another thread fetches random ids all the while, so the old bytes are
usually cached, and the server busy, when the change lands.  The last phase starts by replacing a
watched directory, after which the container confirms reads with ``stat``; the same rounds run there.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from typing import Any

from _reliability import AioaccessProcess, add_figure, set_figure
from concrete.access.ttypes import FetchRequest
from concrete.services.ttypes import ServicesException
from concrete.util import create_comm
from concrete.util import write_communication_to_buffer as cp_write
from concrete.util.access_wrapper import FetchCommunicationClientWrapper
from thrift.Thrift import TApplicationException

WATCHED_SECONDS = 3.0
STAT_SECONDS = 1.5
N_IDS = 12
KINDS = ("delete", "replace", "in-place", "truncate", "rewrite", "rename-away", "rename-in", "recreate")
GONE, BROKEN = "gone", "broken"  # what a fetch may see instead of a version


class Tree:
    """``root/top-*.comm`` and ``root/sub/sub-*.comm``, each holding one numbered version of its text."""

    def __init__(self, root: str, outside: str) -> None:
        self.root, self.outside = root, outside
        self.comms = {f"{where}-{i}": create_comm(f"{where}-{i}", "") for where in ("top", "sub") for i in range(N_IDS)}
        self.serial = 0
        self.now: dict[str, str] = {}  # id -> the text its file holds now (GONE, BROKEN)
        os.makedirs(os.path.join(root, "sub"))
        for comm_id in self.comms:
            self.write(comm_id, self.path(comm_id))

    def path(self, comm_id: str, root: str | None = None) -> str:
        sub = "sub" if comm_id.startswith("sub") else ""
        return os.path.join(root or self.root, sub, f"{comm_id}.comm")

    def version(self, comm_id: str) -> tuple[str, bytes]:
        """A new text (same length every time) and the Communication's bytes holding it."""
        self.serial += 1
        comm = self.comms[comm_id]
        comm.text = f"{comm_id} version {self.serial:09d}"
        return comm.text, bytes(cp_write(comm))

    def write(self, comm_id: str, path: str, mode: str = "wb") -> str:
        text, data = self.version(comm_id)
        with open(path, mode) as f:
            f.write(data)
        if path == self.path(comm_id):
            self.now[comm_id] = text
        return text

    def change(self, comm_id: str, kind: str) -> None:
        """Change ``comm_id``'s file in the way ``kind`` names; self.now says what it holds afterwards."""
        path = self.path(comm_id)
        if kind == "delete":
            os.unlink(path)
            self.now[comm_id] = GONE
        elif kind == "replace":
            self.write(comm_id, path + ".tmp")
            self.now[comm_id] = self.comms[comm_id].text
            os.replace(path + ".tmp", path)
        elif kind == "in-place":  # same size, same inode, no truncation
            self.write(comm_id, path, "r+b")
        elif kind == "truncate":
            os.truncate(path, 0)
            self.now[comm_id] = BROKEN
        elif kind == "rewrite":  # truncate and write
            self.write(comm_id, path)
        elif kind == "rename-away":
            os.rename(path, os.path.join(self.outside, f"{comm_id}.comm"))
            self.now[comm_id] = GONE
        elif kind == "rename-in":
            staged = os.path.join(self.outside, f"{comm_id}.comm")
            self.write(comm_id, staged)
            os.rename(staged, path)
            self.now[comm_id] = self.comms[comm_id].text
        elif kind == "recreate":
            os.unlink(path)
            self.write(comm_id, path)
        elif kind == "copy-dir-in":  # a new copy of the whole sub directory replaces it
            staged = os.path.join(self.outside, "sub")
            os.makedirs(staged)
            texts = {i: self.write(i, self.path(i, self.outside)) for i in self.comms if i.startswith("sub")}
            shutil.rmtree(os.path.join(self.root, "sub"))
            shutil.copytree(staged, os.path.join(self.root, "sub"))
            shutil.rmtree(staged)
            self.now.update(texts)
        else:
            raise AssertionError(kind)

    def restore(self, comm_id: str) -> None:
        if self.now[comm_id] in (GONE, BROKEN):
            self.write(comm_id, self.path(comm_id))


def _seen(client: Any, comm_id: str, copies: int) -> str:
    """What a fetch of ``copies`` times ``comm_id`` returns: the text (all copies agree), GONE or BROKEN."""
    try:
        comms = client.fetch(FetchRequest(communicationIds=[comm_id] * copies)).communications
    except (ServicesException, TApplicationException):
        return BROKEN
    if not comms:
        return GONE
    texts = {c.text for c in comms}
    assert len(comms) == copies and len(texts) == 1, f"{comm_id}: {len(comms)} replies, texts {texts}"
    return texts.pop()


def _race(port: int, ids: list[str], stop: threading.Event, seed: int) -> None:
    """Fetch random ids until ``stop``: keeps the old bytes cached and the server busy."""
    rng = random.Random(seed)
    with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
        while not stop.is_set():
            _seen(client, rng.choice(ids), 1)


def _rounds(tree: Tree, client: Any, kinds: tuple[str, ...], seconds: float, at_least: int,
            rng: random.Random) -> int:
    """Change-then-fetch rounds for ``seconds`` and ``at_least`` rounds; fails at the first stale (or otherwise
    wrong) result."""
    rounds = 0
    deadline = time.monotonic() + seconds
    while rounds < at_least or time.monotonic() < deadline:
        comm_id = rng.choice(list(tree.comms))
        tree.restore(comm_id)
        before = tree.now[comm_id]
        assert _seen(client, comm_id, 1) == before  # usually cached from here on
        kind = rng.choice(kinds)
        tree.change(comm_id, kind)
        copies = rng.choice((1, 15))  # 1: the fast path; 15 ids: too many for it, the handler answers
        got = _seen(client, comm_id, copies)
        assert got == tree.now[comm_id], (f"round {rounds}: after {kind} of {comm_id} a fetch ({copies} ids) "
                                         f"got {got!r}, the file holds {tree.now[comm_id]!r} (was {before!r})")
        rounds += 1
        add_figure(f"read_your_writes_rounds_{kind}")
    return rounds


def test_a_fetch_after_a_change_never_returns_the_older_bytes(tmp_path: Any) -> None:
    rng = random.Random(14)
    root, outside = os.fspath(tmp_path / "comms"), os.fspath(tmp_path / "outside")
    os.makedirs(outside)
    tree = Tree(root, outside)
    stop = threading.Event()
    with AioaccessProcess("fetch-server", root) as server:
        racer = threading.Thread(target=_race, args=(server.port, list(tree.comms), stop, 1), daemon=True)
        racer.start()
        try:
            with FetchCommunicationClientWrapper("127.0.0.1", server.port) as client:
                watched = _rounds(tree, client, KINDS, WATCHED_SECONDS, 500, rng)
                # Replacing a watched directory ends the watch: from here on every read is confirmed with stat.
                tree.change("sub-0", "copy-dir-in")
                assert _seen(client, "sub-0", 1) == tree.now["sub-0"]
                confirmed = _rounds(tree, client, (*KINDS, "copy-dir-in"), STAT_SECONDS, 150, rng)
        finally:
            stop.set()
            racer.join(30)
        log = server.log_tail(None)
        assert "Stopped watching" in log
        # False when the machine's inotify instances were all taken (then every phase confirmed with stat)
        set_figure("read_your_writes_first_phase_watched", "cannot watch it" not in log)
    add_figure("read_your_writes_rounds", watched + confirmed)
