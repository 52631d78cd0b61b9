"""Slow, idle, pipelining and too many clients: cut, refused or served, never left to grow.

Idle timeouts are small here (seconds); the 1,000-connection flood runs
against a subprocess server whose RSS is recorded before and after.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import pytest
from _reliability import (
    AioaccessProcess,
    ThreadedServer,
    add_figure,
    call_frame,
    concrete_fetch,
    raise_nofile,
    rss_kb,
    set_figure,
)
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    DirectoryBackedStoreHandler,
    FetchCommunicationClient,
    FetchCommunicationServiceWrapper,
    Server,
    ServerConfig,
)
from aioaccess.schema import FetchCommunicationService, StoreCommunicationService
from aioaccess.server import Processor
from aioaccess.wire.messages import encode_varint, parse_header

FETCH_ALIVE = call_frame("alive", b"\x00")
#: The start of a 256-byte frame: a call arriving, so the connection is busy and never closed to make room.
PARTIAL_FRAME = b"\x00\x00\x01\x00\x80"


def _fetch_frame(ids: list[str], seqid: int = 1) -> bytes:
    body = b"\x1c\x19" + bytes(((len(ids) << 4) | 8,))
    for i in ids:
        body += encode_varint(len(i)) + i.encode()
    return call_frame("fetch", body + b"\x00\x00", seqid=seqid)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(4)
    return await reader.readexactly(int.from_bytes(head, "big"))


async def _wait_closed(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the server closes the connection (fails the test beyond ``limit``)."""
    started = time.monotonic()
    async with asyncio.timeout(limit):
        while await reader.read(65536):
            pass
    return time.monotonic() - started


@pytest.fixture
async def fetch_server_small_timeouts(comm_dir: str) -> Any:
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    server = Server(ServerConfig(idle_timeout=1.5, max_connections=20))
    listener = server.add_service(Processor(FetchCommunicationService, handler), "127.0.0.1", 0)
    await server.startup()
    try:
        yield server, listener.bound_port
    finally:
        await server.shutdown()


async def test_idle_client_is_cut(fetch_server_small_timeouts: Any) -> None:
    server, port = fetch_server_small_timeouts
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await _wait_closed(reader, 20)  # configured 1.5 s; the bound only catches a hang
        assert server.state.idle_closed >= 1
    finally:
        writer.close()


async def test_slowloris_is_cut_while_a_busy_client_is_not(fetch_server_small_timeouts: Any) -> None:
    """One byte a second never completes a frame: cut after the idle timeout; a steady client stays."""
    server, port = fetch_server_small_timeouts
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
    good = FetchCommunicationClient.connect("127.0.0.1", port, timeout=10)
    frame = _fetch_frame(["comm-1"])

    sent = 0

    async def trickle() -> int:
        nonlocal sent
        try:
            for byte in frame:
                slow_writer.write(bytes((byte,)))
                await slow_writer.drain()
                sent += 1
                await asyncio.sleep(1.0)
        except (ConnectionError, OSError):
            pass
        return sent

    async with good:
        task = asyncio.create_task(trickle())
        closed = asyncio.create_task(_wait_closed(slow_reader, 30))
        while not closed.done():
            assert [len(r) > 0 for r in await good.fetch_raw(["comm-1"])] == [True]
            await asyncio.sleep(0.1)
        await closed
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert sent < len(frame), "the trickled frame must never have been completed"
        assert await good.alive() is True  # the steady client was never cut
    slow_writer.close()
    assert server.state.idle_closed >= 1
    add_figure("slow_clients_cut")


async def test_connection_cap_refuses_with_a_clear_message(fetch_server_small_timeouts: Any) -> None:
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper
    from thrift.Thrift import TApplicationException

    server, port = fetch_server_small_timeouts
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
    for _reader, writer in held:
        writer.write(PARTIAL_FRAME)
    try:
        async with asyncio.timeout(10):
            while len(server.state.connections) < 20:
                await asyncio.sleep(0.01)

        def refused_call() -> str:
            with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
                try:
                    client.getCommunicationCount()
                except TApplicationException as exc:
                    return str(exc.message)
            raise AssertionError("the 21st connection was served")

        message = await asyncio.to_thread(refused_call)
        assert "limit of 20 connections" in message
        assert server.state.refused >= 1
        add_figure("connections_refused_over_cap")
    finally:
        for _reader, writer in held:
            writer.close()
    # Once below the cap again, new clients are served.
    async with asyncio.timeout(10):
        while len(server.state.connections) >= 20:
            await asyncio.sleep(0.01)
    async with FetchCommunicationClient.connect("127.0.0.1", port, timeout=10) as client:
        assert await client.getCommunicationCount() == 10


async def test_pipelined_calls_behind_a_slow_backend_stop_reading(store_dir: str) -> None:
    """A client pipelining stores faster than the backend writes is paused, not buffered without bound."""
    gate = asyncio.Event()

    class GatedStore(DirectoryBackedStoreHandler):
        async def _put_raw(self, comm_id: str, raw: bytes) -> None:
            await gate.wait()
            await super()._put_raw(comm_id, raw)

    server = Server(ServerConfig(max_frame_size=1 << 20, idle_timeout=30))
    listener = server.add_service(Processor(StoreCommunicationService, GatedStore(store_dir, fsync=False)),
                                  "127.0.0.1", 0)
    await server.startup()
    comm = concrete_comms(1, "piped")[0]
    comm.text = "x" * 200_000
    frame = call_frame("store", b"\x1c" + cp_write(comm) + b"\x00")
    n = 300  # 60 MB of pipelined stores
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.bound_port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)

        async def send_all() -> None:
            for _ in range(n):
                writer.write(frame)
                await writer.drain()

        sender = asyncio.create_task(send_all())
        await asyncio.sleep(1.0)
        (conn,) = server.state.connections
        buffered = sum(map(len, conn.pending)) + conn.decoder.buffered
        assert not sender.done(), "the server read every pipelined frame while its backend was stalled"
        # The backlog limit (4 MiB) plus at most a read's worth of whole and partial frames; not 60 MB.
        assert buffered <= 4 * (1 << 20) + 2 * (1 << 20), f"{buffered} bytes buffered for one stalled connection"
        set_figure("pipelined_bytes_buffered_when_stalled", {"sent_total": n * len(frame), "buffered": buffered})
        gate.set()
        async with asyncio.timeout(60):
            await sender
            for _ in range(n):
                assert parse_header(await _read_frame(reader)).mtype == 2
        writer.close()
    finally:
        gate.set()
        await server.shutdown()
    assert os.listdir(store_dir) == ["piped-0.comm"]


async def test_client_that_never_reads_cannot_make_the_server_buffer_replies(tmp_path: Any) -> None:
    """Regression: 46 KB of pipelined fetches from a client that never read made the server buffer 2 GB."""
    from concrete.util import create_comm
    from concrete.util import write_communication_to_file as cp_write_file

    comm = create_comm("big", "")
    comm.text = "x" * 500_000
    cp_write_file(comm, os.fspath(tmp_path / "big.comm"))
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(os.fspath(tmp_path)))
    server = Server(ServerConfig(idle_timeout=30))
    listener = server.add_service(Processor(FetchCommunicationService, handler), "127.0.0.1", 0)
    await server.startup()
    n = 200  # 100 MB of replies owed
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.bound_port, limit=1 << 16)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        writer.write(b"".join(_fetch_frame(["big"], seqid=i + 1) for i in range(n)))
        await writer.drain()
        await asyncio.sleep(1.0)  # the client reads nothing meanwhile
        (conn,) = server.state.connections
        buffered = conn.transport.get_write_buffer_size()
        set_figure("unread_replies_buffered_bytes", {"owed": n * 500_000, "buffered": buffered})
        assert buffered < 8 << 20, f"{buffered} bytes of replies buffered for a client that reads nothing"
        # Once the client reads, every reply arrives, in order.
        async with asyncio.timeout(60):
            for i in range(n):
                header = parse_header(await _read_frame(reader))
                assert header.mtype == 2 and header.seqid == i + 1
        writer.close()
    finally:
        await server.shutdown()


async def _hold_and_serve(port: int, n: int) -> int:
    """Open ``n`` connections, keep all open, then make one fetch on every one of them at once."""
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    sem = asyncio.Semaphore(100)

    async def open_one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with sem:
            return await asyncio.open_connection("127.0.0.1", port)

    try:
        conns = list(await asyncio.gather(*(open_one() for _ in range(n))))

        async def one(i: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            writer.write(_fetch_frame([f"comm-{i % 10}"], seqid=i + 1))
            await writer.drain()
            reply = await _read_frame(reader)
            header = parse_header(reply)
            return header.mtype == 2 and header.seqid == i + 1 and f"comm-{i % 10}".encode() in reply

        async with asyncio.timeout(120):
            results = await asyncio.gather(*(one(i, r, w) for i, (r, w) in enumerate(conns)))
        # Every connection is still open and usable after all were served.
        for reader, writer in conns[:: max(1, n // 50)]:
            writer.write(FETCH_ALIVE)
            await writer.drain()
            assert parse_header(await _read_frame(reader)).mtype == 2
        return sum(results)
    finally:
        for _reader, writer in conns:
            writer.close()


@pytest.mark.slow
async def test_thousand_connections_held_and_served(comm_dir: str) -> None:
    n = 1000
    assert raise_nofile(4 * n) >= 2 * n + 100, "RLIMIT_NOFILE too low for this test"
    with AioaccessProcess("fetch-server", comm_dir, "--idle-timeout", "120") as server:
        before = rss_kb(server.pid)
        served = await _hold_and_serve(server.port, n)
        assert served == n
        peak = rss_kb(server.pid)
        await asyncio.sleep(0.5)
        served_again = await _hold_and_serve(server.port, n)
        assert served_again == n
        after = rss_kb(server.pid)
        assert [c.id for c in await asyncio.to_thread(concrete_fetch, server.port, ["comm-3"])] == ["comm-3"]
    set_figure("connections_held_and_served", n)
    set_figure("flood_rss_kb", {"before": before, "peak": peak, "after_second_flood": after})
    assert after - before < 100 * 1024, f"RSS grew from {before} KiB to {after} KiB over two floods"


def test_cap_refusal_in_subprocess_server(comm_dir: str) -> None:
    """The refusal message as concrete-python sees it from ``aioaccess fetch-server --max-connections``."""
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper
    from thrift.Thrift import TApplicationException

    with AioaccessProcess("fetch-server", comm_dir, "--max-connections", "3", "--idle-timeout", "30") as server:
        # wait_port's probe connection may still count: wait until it has gone.
        time.sleep(0.2)
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        for s in held:
            s.sendall(PARTIAL_FRAME)
        try:
            time.sleep(0.2)
            with FetchCommunicationClientWrapper("127.0.0.1", server.port) as client:
                with pytest.raises(TApplicationException, match="limit of 3 connections"):
                    client.getCommunicationCount()
        finally:
            for s in held:
                s.close()
        time.sleep(0.2)
        assert [c.id for c in concrete_fetch(server.port, ["comm-0"])] == ["comm-0"]


def test_threaded_server_helper_serves_concrete_client(comm_dir: str) -> None:
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    with ThreadedServer(FetchCommunicationServiceWrapper(handler)) as server:
        assert [c.id for c in concrete_fetch(server.port, ["comm-2", "nope", "comm-1"])] == ["comm-2", "comm-1"]


def test_server_raises_its_fd_limit_so_the_cap_refuses_cleanly(comm_dir: str) -> None:
    """Started with ulimit -n 128, a server with --max-connections 300 makes room for 300 and refuses the 301st."""
    import resource

    from concrete.util.access_wrapper import FetchCommunicationClientWrapper
    from thrift.Thrift import TApplicationException

    raise_nofile(1024)
    with AioaccessProcess("fetch-server", comm_dir, "--max-connections", "300", "--idle-timeout", "60",
                          nofile=(128, 4096)) as server:
        soft, _hard = resource.prlimit(server.pid, resource.RLIMIT_NOFILE)
        assert soft >= 300 + 128
        time.sleep(0.2)  # wait_port's probe connection has gone
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(300)]
        try:
            for i, s in enumerate(held):
                s.sendall(_fetch_frame([f"comm-{i % 10}"], seqid=i + 1))
            for s in held:
                head = s.recv(4, socket.MSG_WAITALL)
                body = s.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL)
                assert parse_header(body).mtype == 2
                s.sendall(PARTIAL_FRAME)
            with FetchCommunicationClientWrapper("127.0.0.1", server.port) as client:
                with pytest.raises(TApplicationException, match="limit of 300 connections"):
                    client.getCommunicationCount()
        finally:
            for s in held:
                s.close()


def test_out_of_file_descriptors_server_survives_and_recovers(comm_dir: str) -> None:
    """With ulimit -n 64 (hard), accept() fails with EMFILE: the server warns at startup, stays up, recovers."""
    with AioaccessProcess("fetch-server", comm_dir, nofile=(64, 64)) as server:
        assert "Open-file limit 64" in server.log_tail()
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(150)]
        time.sleep(1.0)
        assert server.alive()
        for s in held:
            s.close()
        time.sleep(1.5)  # asyncio retries accept() a second after EMFILE
        assert [c.id for c in concrete_fetch(server.port, ["comm-4"])] == ["comm-4"]
        assert server.alive()
    add_figure("emfile_floods_survived")


async def test_unfinished_frames_share_one_buffer_budget(comm_dir: str) -> None:
    """Connections each holding most of a big frame: past the server-wide budget they are closed, others served.

    Without the budget, ten connections each sending 60 MB of a 64 MiB frame held 615 MB of a
    CLI fetch-server's memory (and 10,000 connections could ask for 640 GB).
    """
    mib = 1 << 20
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    server = Server(ServerConfig(max_frame_size=8 * mib, max_buffered_bytes=16 * mib, idle_timeout=30))
    listener = server.add_service(Processor(FetchCommunicationService, handler), "127.0.0.1", 0)
    await server.startup()
    port = listener.bound_port
    hogs: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(5):  # 5 x 6 MiB of 8 MiB frames: 30 MiB asked, 16 MiB allowed
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            hogs.append((reader, writer))
            try:
                writer.write((8 * mib).to_bytes(4, "big") + b"\x82" * (6 * mib))
                await writer.drain()
            except ConnectionError:
                pass  # closed by the server while sending
        await asyncio.sleep(0.5)
        assert server.state.buffer_overflows >= 2
        assert server.state.buffered_bytes <= 16 * mib + 6 * mib
        closed = 0
        for reader, _writer in hogs:
            try:
                async with asyncio.timeout(0.2):
                    closed += await reader.read(1) == b""
            except TimeoutError:
                pass
            except ConnectionError:
                closed += 1
        assert closed == server.state.buffer_overflows
        async with FetchCommunicationClient.connect("127.0.0.1", port, timeout=10) as client:
            assert len(await client.fetch_raw(["comm-1", "comm-2"])) == 2
        set_figure("buffer_budget", {"asked_bytes": 30 * mib, "budget": 16 * mib,
                                     "held": server.state.buffered_bytes, "closed": closed})
    finally:
        for _reader, writer in hogs:
            writer.close()
    async with asyncio.timeout(10):
        while server.state.connections:
            await asyncio.sleep(0.02)
    assert server.state.buffered_bytes == 0  # every charge was given back
    await server.shutdown()


@pytest.fixture
def big_comm_dir(tmp_path: Any) -> str:
    from concrete.util import create_comm
    from concrete.util import write_communication_to_file as cp_write_file

    comm = create_comm("big", "")
    comm.text = "x" * 30_000_000  # far more than the kernel's socket buffers hold
    cp_write_file(comm, os.fspath(tmp_path / "big.comm"))
    return os.fspath(tmp_path)


def _stalled_socket(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(_fetch_frame(["big"]))
    return s


async def test_client_that_stops_reading_is_cut_after_the_idle_timeout(big_comm_dir: str) -> None:
    """Regression: an idle close waited forever to flush a reply nobody read (the slot and 27 MB stayed taken)."""
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(big_comm_dir))
    server = Server(ServerConfig(idle_timeout=1.0))
    listener = server.add_service(Processor(FetchCommunicationService, handler), "127.0.0.1", 0)
    await server.startup()
    s = _stalled_socket(listener.bound_port)
    try:
        async with asyncio.timeout(20):  # configured 1 s; cut within two idle periods
            while not server.state.total_connections or server.state.connections:
                await asyncio.sleep(0.05)
        assert server.state.idle_closed == 1
    finally:
        s.close()
        await server.shutdown()


@pytest.mark.slow
async def test_slow_reader_keeps_its_connection_while_the_reply_moves(big_comm_dir: str) -> None:
    """A peer reading a big reply slowly for longer than the idle timeout is not idle: it gets the whole reply."""
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(big_comm_dir))
    server = Server(ServerConfig(idle_timeout=1.0))
    listener = server.add_service(Processor(FetchCommunicationService, handler), "127.0.0.1", 0)
    await server.startup()
    s = _stalled_socket(listener.bound_port)
    s.setblocking(False)
    got = bytearray()
    try:
        for _ in range(8):  # 4 s of reading about 12 KB/s
            await asyncio.sleep(0.5)
            try:
                got += s.recv(6144)
            except BlockingIOError:
                pass
        assert server.state.idle_closed == 0
        s.setblocking(True)
        s.settimeout(30)
        size = int.from_bytes(got[:4], "big")
        while len(got) < 4 + size:
            chunk = await asyncio.to_thread(s.recv, 1 << 20)
            assert chunk, "the server cut a peer that was reading"
            got += chunk
        assert parse_header(bytes(got[4:])).mtype == 2 and len(got) == 4 + size
    finally:
        s.close()
        await server.shutdown()


@pytest.mark.slow
def test_client_that_stops_reading_is_cut_by_the_cli_server(big_comm_dir: str) -> None:
    """Same with ``aioaccess fetch-server`` (uvloop when installed)."""
    with AioaccessProcess("fetch-server", big_comm_dir, "--idle-timeout", "1") as server:
        s = _stalled_socket(server.port)
        try:
            time.sleep(4.0)  # two idle periods and then some, reading nothing
            s.settimeout(10)
            received, cut = 0, False
            try:
                while chunk := s.recv(1 << 20):
                    received += len(chunk)
            except (ConnectionResetError, TimeoutError):
                cut = True
            assert cut or received < 30_000_000, "the server waited on a peer that stopped reading"
        finally:
            s.close()
        assert [c.id for c in concrete_fetch(server.port, ["big"])] == ["big"]
    add_figure("stalled_readers_cut", 2)
