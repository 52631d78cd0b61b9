"""SIGTERM under load: every call whose frame the server read is answered, then the connection closes cleanly.

64 connections (32 fetching, 32 storing) keep calls going against ``aioaccess serve`` (one process, and
``workers = 2``) when it gets SIGTERM.  Each connection must end with a clean EOF between replies: no
connection reset, no reply cut short; the process exits 0 and every acknowledged store is on disk.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest
from _procs import ManagedProcess, port_open, unused_port
from _reliability import call_frame, set_figure
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms

from aioaccess.wire.messages import REPLY, encode_varint, parse_header

FETCHERS = STORERS = 32


class Tally:
    def __init__(self) -> None:
        self.calls = self.resets = self.cut_replies = self.clean_eofs = 0
        self.acked: dict[str, bytes] = {}


async def _call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, frames: list[bytes], seqid: int,
                tally: Tally) -> list[bytes] | None:
    """Send ``frames`` (pipelined, seqids from ``seqid``); the bodies of their replies after the header, or None
    once the connection has ended (tallied)."""
    bodies = []
    try:
        writer.write(b"".join(frames))
        await writer.drain()
        for n in range(len(frames)):
            head = await reader.readexactly(4)
            body = await reader.readexactly(int.from_bytes(head, "big"))
            header = parse_header(body)
            assert (header.mtype, header.seqid) == (REPLY, seqid + n), header
            tally.calls += 1
            bodies.append(body[header.body_offset:])
    except (ConnectionResetError, BrokenPipeError):
        tally.resets += 1
        return None
    except asyncio.IncompleteReadError as exc:
        if exc.partial or exc.expected != 4:
            tally.cut_replies += 1
        else:
            tally.clean_eofs += 1  # the server said goodbye before it read the next call
        return None
    return bodies


async def _fetcher(port: int, tally: Tally) -> None:
    """Four fetches at a time, so that calls the server has not read yet are usually on their way."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    seqid = 1
    try:
        while True:
            frames = []
            for n in range(seqid, seqid + 4):
                comm_id = f"comm-{n % 10}".encode()
                args = b"\x1c\x19\x18" + encode_varint(len(comm_id)) + comm_id + b"\x00\x00"
                frames.append(call_frame("fetch", args, seqid=n))
            if await _call(reader, writer, frames, seqid, tally) is None:
                return
            seqid += 4
    finally:
        writer.close()


async def _storer(port: int, k: int, tally: Tally) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    comm = concrete_comms(1, prefix=f"s{k}")[0]
    seqid = 0
    try:
        while True:
            seqid += 1
            comm.id = f"s{k}-{seqid}"
            raw = cp_write(comm)
            result = await _call(reader, writer, [call_frame("store", b"\x1c" + raw + b"\x00", seqid=seqid)], seqid,
                                 tally)
            if result is None:
                return
            assert result == [b"\x00"], result  # success, no exception
            tally.acked[comm.id] = raw
    finally:
        writer.close()


def _on_disk(store_dir: str, comm_id: str, raw: bytes) -> bool:
    try:
        with open(os.path.join(store_dir, f"{comm_id}.comm"), "rb") as f:
            return f.read() == raw
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_under_load_answers_what_it_read_and_resets_nothing(tmp_path: Any, comm_dir: str,
                                                                         workers: int) -> None:
    store_dir = os.fspath(tmp_path / "inbox")
    os.mkdir(store_dir)
    fetch_port, store_port = unused_port(), unused_port()
    config = tmp_path / "serve.toml"
    config.write_text(f"""[server]
workers = {workers}
[[services]]
kind = "fetch"
port = {fetch_port}
source = "{comm_dir}"
[[services]]
kind = "store"
port = {store_port}
target = "{store_dir}"
fsync = false
""")
    server = ManagedProcess([sys.executable, "-m", "aioaccess", "serve", os.fspath(config)], store_port,
                            os.fspath(tmp_path / "serve.log"))
    server.ready = lambda: port_open(fetch_port) and port_open(store_port)  # type: ignore[method-assign]
    tally = Tally()
    with server:
        async with asyncio.timeout(60):  # every worker listens on both ports (each logs it)
            while server.log_tail(None).count("Serving DirectoryBackedStoreHandler") < workers:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the readiness probes have gone
        clients = [asyncio.create_task(_fetcher(fetch_port, tally)) for _ in range(FETCHERS)]
        clients += [asyncio.create_task(_storer(store_port, k, tally)) for k in range(STORERS)]
        async with asyncio.timeout(60):
            while tally.calls < 4000 or len(tally.acked) < 200:
                await asyncio.sleep(0.05)
        assert server.proc is not None
        server.proc.terminate()
        async with asyncio.timeout(60):
            await asyncio.gather(*clients)
            status = await asyncio.to_thread(server.proc.wait, 30)
        log = server.log_tail(None)
    missing = [i for i, raw in tally.acked.items() if not _on_disk(store_dir, i, raw)]
    set_figure(f"sigterm_under_load_workers_{workers}", {
        "connections": FETCHERS + STORERS, "calls_answered": tally.calls, "stores_acked": len(tally.acked),
        "resets": tally.resets, "replies_cut": tally.cut_replies, "clean_eofs": tally.clean_eofs,
        "acked_missing": len(missing)})
    assert status == 0, log
    assert log.count("Server stopped") == workers, log
    assert (tally.resets, tally.cut_replies) == (0, 0), log[-3000:]
    assert tally.clean_eofs == FETCHERS + STORERS
    assert missing == []
