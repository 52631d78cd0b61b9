"""Hostile ids through concrete-python's store client: refused by rule, nothing written outside the store."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
from _reliability import AioaccessProcess, add_figure, call_frame, concrete_fetch, drain_replies, walk_files
from concrete.util import create_comm, read_communication_from_file

NAME_MAX = 255

#: id -> the rule its refusal must name (None: may be stored, as a direct child of the store).
HOSTILE_IDS: dict[str, str | None] = {
    "../../somewhere/x": "path separator",
    "../escaped": "path separator",
    "a/../../x": "path separator",
    "..": "'..'",
    "..hidden": "'..'",
    "a..b": "'..'",
    "a/b": "path separator",
    "a\\b": "path separator",
    "..\\..\\x": "path separator",
    "C:\\Windows\\x": "path separator",
    "": "empty",
    "\x00": "control characters",
    "a\x00b": "control characters",
    "a\x00/../../x": "control characters",
    "line\nbreak": "control characters",
    "tab\there": "control characters",
    "bell\x07": "control characters",
    "esc\x1b[31m": "control characters",
    "del\x7f": "control characters",
    "x" * (NAME_MAX - len(".comm") + 1): "file-system limit",
    "é" * 126: "file-system limit",  # 252 bytes + ".comm" > 255 bytes, though 126 characters
    "x" * 5000: "longer than",
    # Unicode look-alikes of separators are ordinary characters: allowed, but must stay inside.
    "\u2215etc\u2215passwd": None,
    "a\u2044b": None,
    "\uff0fx\uff3cy": None,
    "\u202eevil": None,
    ".": None,
    "~": None,
    "x" * (NAME_MAX - len(".comm")): None,
}


def _snapshot(root: str) -> dict[str, tuple[int, int]]:
    return {p: (os.lstat(p).st_size, os.lstat(p).st_mtime_ns) for p in walk_files(root)}


@pytest.fixture
def layout(tmp_path: Any) -> dict[str, str]:
    """parent/ holding store/ (the target), outside/ with a file, and a symlink in store/ pointing out."""
    parent = tmp_path / "parent"
    store = parent / "store"
    outside = parent / "outside"
    store.mkdir(parents=True)
    outside.mkdir()
    (outside / "victim.comm").write_bytes(b"do not touch")
    os.symlink(outside / "victim.comm", store / "link.comm")
    os.symlink(outside, store / "dirlink")
    return {"parent": os.fspath(parent), "store": os.fspath(store), "outside": os.fspath(outside)}


def test_hostile_ids_through_concrete_store_client(layout: dict[str, str]) -> None:
    from concrete.services.ttypes import ServicesException
    from concrete.util.access_wrapper import StoreCommunicationClientWrapper

    parent, store = layout["parent"], layout["store"]
    ids = dict(HOSTILE_IDS)
    ids[os.path.join(layout["outside"], "abs")] = "path separator"  # an absolute path
    ids["/etc/x"] = "path separator"
    ids["link"] = "outside the store"  # store/link.comm is a symlink to outside/victim.comm
    ids["dirlink/x"] = "path separator"
    before = _snapshot(parent)
    stored: list[str] = []
    with AioaccessProcess("store-server", store, "--no-fsync") as server:
        with StoreCommunicationClientWrapper("127.0.0.1", server.port) as client:
            for comm_id, rule in ids.items():
                comm = create_comm(comm_id, "hostile id")
                try:
                    client.store(comm)
                except ServicesException as exc:
                    assert rule is not None, f"{comm_id!r} was refused: {exc.message}"
                    assert rule in exc.message, f"{comm_id!r}: {exc.message!r} does not name {rule!r}"
                    add_figure("hostile_ids_refused")
                else:
                    assert rule is None, f"{comm_id!r} was stored; expected a refusal naming {rule!r}"
                    stored.append(comm_id)
                add_figure("hostile_ids_tried")
            # The connection survived every refusal: a plain store still works.
            client.store(create_comm("plain", "fine"))
            stored.append("plain")
        # Invalid UTF-8 in the id (concrete-python cannot even send it): a Thrift exception, nothing written.
        raw_comm = b"\x18\x06..\xff/x\x00"  # Communication{1: id = b'..\xff/x'}, truncated on purpose after it
        closed, kinds = drain_replies(server.port, call_frame("store", b"\x1c" + raw_comm + b"\x00"))
        assert closed and kinds == [3]
        add_figure("hostile_ids_tried")
        assert server.alive()
    after = _snapshot(parent)
    new = {p for p in after if p not in before}
    changed = {p for p in after if p in before and after[p] != before[p]}
    assert changed == set(), f"files changed outside what was stored: {changed}"
    assert new == {os.path.join(store, f"{i}.comm") for i in stored}
    for path in new:
        assert os.path.dirname(path) == store and not os.path.islink(path)
        assert os.path.realpath(path).startswith(store + os.sep)
        read_communication_from_file(path)
    with open(os.path.join(layout["outside"], "victim.comm"), "rb") as f:
        assert f.read() == b"do not touch"
    assert os.path.islink(os.path.join(store, "link.comm"))


def test_fetch_server_hostile_ids_reach_nothing(layout: dict[str, str], comm_dir: str) -> None:
    """A fetch-server looks ids up in its index: traversal ids find nothing, the server stays up."""
    with AioaccessProcess("fetch-server", comm_dir) as server:
        ids = [i for i in HOSTILE_IDS if "\x00" not in i] + ["../comms/comm-1", "/etc/passwd", "comm-1"]
        got = concrete_fetch(server.port, ids)
        assert [c.id for c in got] == ["comm-1"]
        with socket.create_connection(("127.0.0.1", server.port)):
            pass
        assert server.alive()
