"""SIGKILL a directory store-server mid-run: no torn files, no lost acknowledged stores; racing stores of one id."""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from _reliability import AioaccessProcess, add_figure, set_figure
from concrete.util import create_comm, read_communication_from_file
from concrete.util import write_communication_to_buffer as cp_write

from aioaccess import FetchCommunicationClient, StoreCommunicationClient


def _payload(comm_id: str, size: int, rng: random.Random) -> bytes:
    """A concrete-python Communication of about ``size`` bytes, as compact bytes."""
    comm = create_comm(comm_id, "")
    comm.text = "".join(rng.choices("abcdefghij klmnopqrstuvwxyz\n", k=size))
    return bytes(cp_write(comm))


def _check_store_dir(store: str, sent: dict[str, bytes], acked: set[str]) -> dict[str, int]:
    """Every .comm decodes and is one whole payload; every acked id is there, byte-identical."""
    names = os.listdir(store)
    comms = [n for n in names if n.endswith(".comm")]
    temps = [n for n in names if not n.endswith(".comm")]
    for name in temps:
        assert name.startswith(".tmp-"), f"unexpected file {name} in the store"
    for name in comms:
        path = os.path.join(store, name)
        comm = read_communication_from_file(path)  # concrete-python decodes every one
        assert f"{comm.id}.comm" == name
        with open(path, "rb") as f:
            assert f.read() == sent[comm.id], f"{name} is not the complete payload that was sent"
    missing = sorted(i for i in acked if f"{i}.comm" not in comms)
    assert not missing, f"acknowledged stores lost: {missing[:10]}"
    return {"comm_files": len(comms), "temp_leftovers": len(temps)}


async def _store_until_killed(port: int, clients: int, prefix: str, sent: dict[str, bytes], acked: set[str],
                              rng: random.Random) -> int:
    """Store from ``clients`` connections until the server dies; return failed (unacknowledged) calls."""
    failed = 0

    async def client(k: int) -> None:
        nonlocal failed
        async with StoreCommunicationClient.connect("127.0.0.1", port, timeout=30) as c:
            for j in range(10_000):
                comm_id = f"{prefix}-{k}-{j}"
                raw = _payload(comm_id, rng.randint(6_000, 1_000_000), rng)
                sent[comm_id] = raw
                try:
                    await c.store_raw(raw)
                except (ConnectionError, OSError):
                    failed += 1
                    return
                acked.add(comm_id)

    await asyncio.gather(*(client(k) for k in range(clients)))
    return failed


@pytest.mark.slow
async def test_sigkill_mid_run_leaves_no_torn_files_and_loses_no_acked_store(store_dir: str) -> None:
    rng = random.Random(2026)
    sent: dict[str, bytes] = {}
    acked: set[str] = set()
    in_flight_killed = 0
    kills = 3
    port = None
    for round_ in range(kills):
        server = AioaccessProcess("store-server", store_dir, "--graceful-timeout", "1", port=port).start()
        port = server.port
        try:
            storing = asyncio.create_task(_store_until_killed(server.port, 6, f"r{round_}", sent, acked, rng))
            async with asyncio.timeout(60):
                start = len(acked)
                while len(acked) < start + 15 and not storing.done():
                    await asyncio.sleep(0.02)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            server.kill()  # SIGKILL: writes in flight are cut wherever they are
            async with asyncio.timeout(60):
                in_flight_killed += await storing
        finally:
            server.stop()
        figures = _check_store_dir(store_dir, sent, acked)
    add_figure("store_server_sigkills", kills)
    add_figure("stores_acknowledged", len(acked))
    add_figure("stores_acknowledged_found", sum(os.path.exists(os.path.join(store_dir, f"{i}.comm")) for i in acked))
    add_figure("stores_cut_by_sigkill", in_flight_killed)
    set_figure("sigkill_store_dir", figures)

    # A fetch-server over the killed store serves exactly the .comm files; temp leftovers are invisible.
    with AioaccessProcess("fetch-server", store_dir) as fetcher:
        async with FetchCommunicationClient.connect("127.0.0.1", fetcher.port, timeout=30) as client:
            assert await client.getCommunicationCount() == figures["comm_files"]
            ids = sorted(acked)
            for i in range(0, len(ids), 20):
                raws = await client.fetch_raw(ids[i : i + 20])
                assert raws == [sent[x] for x in ids[i : i + 20]]
            all_ids = await client.getCommunicationIDs(0, 100_000)
            assert not [x for x in all_ids if x.startswith(".tmp-")]


async def test_racing_stores_of_one_id_leave_one_complete_payload(store_dir: str) -> None:
    """Many clients store different Communications under one id at once; readers never see a mix."""
    rng = random.Random(7)
    payloads = [_payload("same", rng.randint(6_000, 300_000), rng) for _ in range(12)]
    with AioaccessProcess("store-server", store_dir) as server:
        async with StoreCommunicationClient.connect("127.0.0.1", server.port, timeout=30) as c:
            await c.store_raw(payloads[0])
        with AioaccessProcess("fetch-server", store_dir) as fetcher:
            reads: list[bytes] = []
            stop = asyncio.Event()

            async def reader() -> None:
                async with FetchCommunicationClient.connect("127.0.0.1", fetcher.port, timeout=30) as f:
                    while not stop.is_set():
                        reads.extend(await f.fetch_raw(["same"]))

            async def writer(raw: bytes) -> None:
                async with StoreCommunicationClient.connect("127.0.0.1", server.port, timeout=30) as s:
                    for _ in range(3):
                        await s.store_raw(raw)

            readers = [asyncio.create_task(reader()) for _ in range(2)]
            async with asyncio.timeout(120):
                await asyncio.gather(*(writer(p) for p in payloads))
            stop.set()
            await asyncio.gather(*readers)
    with open(os.path.join(store_dir, "same.comm"), "rb") as f:
        final = f.read()
    assert final in payloads
    assert reads and all(r in payloads for r in reads), "a reader saw a torn or mixed Communication"
    assert sorted(os.listdir(store_dir)) == ["same.comm"]
    add_figure("racing_same_id_stores", 3 * len(payloads) + 1)
    add_figure("racing_same_id_reads_checked", len(reads))


@pytest.mark.slow
async def test_sigterm_mid_run_acknowledges_in_flight_stores_and_exits_cleanly(store_dir: str) -> None:
    """SIGTERM while six clients store: the server finishes the stores in flight, exits 0, nothing acked lost."""
    rng = random.Random(99)
    sent: dict[str, bytes] = {}
    acked: set[str] = set()
    server = AioaccessProcess("store-server", store_dir, "--graceful-timeout", "20").start()
    try:
        storing = asyncio.create_task(_store_until_killed(server.port, 6, "t", sent, acked, rng))
        async with asyncio.timeout(60):
            while len(acked) < 20:
                await asyncio.sleep(0.02)
        assert server.proc is not None
        server.proc.terminate()
        async with asyncio.timeout(60):
            cut = await storing
            returncode = await asyncio.to_thread(server.proc.wait, 30)
    finally:
        server.stop()
    assert returncode == 0, server.log_tail()
    figures = _check_store_dir(store_dir, sent, acked)
    assert figures["temp_leftovers"] == 0  # a graceful stop leaves no temp files
    add_figure("stores_acknowledged", len(acked))
    add_figure("stores_acknowledged_found", sum(os.path.exists(os.path.join(store_dir, f"{i}.comm")) for i in acked))
    set_figure("sigterm_store_run", {"acked": len(acked), "connections_closed_unanswered": cut})
