"""``--workers N``: several processes on one port, restarted when they die, stopped by one SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from conftest import unused_port

from aioaccess import FetchCommunicationClient
from aioaccess.server.supervisor import reserve_port

# The console script next to this interpreter (not a pyenv shim), else ``python -m aioaccess``.
_SCRIPT = os.path.join(os.path.dirname(sys.executable), "aioaccess")
AIOACCESS = [_SCRIPT] if os.path.exists(_SCRIPT) else [sys.executable, "-m", "aioaccess"]


@pytest.fixture
async def procs() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    started: list[asyncio.subprocess.Process] = []
    yield started
    for proc in started:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


async def start(procs: list[Any], *args: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(*AIOACCESS, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.append(proc)
    return proc


async def wait_fetch(port: int) -> None:
    proc = await asyncio.create_subprocess_exec(*AIOACCESS, "wait-service", "FetchCommunication", "--host",
                                                "127.0.0.1", "--port", str(port), "--timeout", "30",
                                                "--sleep-interval", "0.1", "-l", "WARNING")
    assert await proc.wait() == 0


async def pids_answering(port: int, calls: int) -> set[int]:
    """Server pids from ``about()`` over ``calls`` fresh connections."""
    pids = set()
    for _ in range(calls):
        async with FetchCommunicationClient.connect("127.0.0.1", port, timeout=10) as client:
            info = await client.about()
        pids.add(int(info.description.removeprefix("pid=")))
    return pids


async def both_workers(port: int) -> tuple[set[int], int]:
    """The worker pids once two answer (wait-service returns when the first listens), and the about() calls made."""
    deadline = time.monotonic() + 60
    pids: set[int] = set()
    calls = 0
    while time.monotonic() < deadline:
        pids |= await pids_answering(port, 20)
        calls += 20
        if len(pids) >= 2:
            break
        await asyncio.sleep(0.2)
    return pids, calls


async def test_two_workers_answer_from_two_pids_and_stop_on_sigterm(comm_dir: str, procs: list[Any]) -> None:
    port, metrics_port = unused_port(), unused_port()
    proc = await start(procs, "fetch-server", comm_dir, "--port", str(port), "--workers", "2", "-l", "INFO",
                       "--metrics-port", str(metrics_port))
    await wait_fetch(port)
    pids, calls = await both_workers(port)
    assert len(pids) == 2
    assert proc.pid not in pids
    # the supervisor serves the workers' metrics, summed (Prometheus multiprocess mode)
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
        text = await resp.text()
    assert f'aioaccess_calls_total{{method="about",outcome="ok",service="fetch"}} {calls:.1f}' in text
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    text = err.decode()
    assert text.count("exited with 0") == 2
    for pid in pids:  # the workers are gone too
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_a_dead_worker_is_restarted(comm_dir: str, procs: list[Any]) -> None:
    port = unused_port()
    proc = await start(procs, "fetch-server", comm_dir, "--port", str(port), "--workers", "2", "-l", "WARNING")
    await wait_fetch(port)
    first, _ = await both_workers(port)
    assert len(first) == 2
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    now: set[int] = set()
    while time.monotonic() < deadline:
        now = await pids_answering(port, 10)
        if len(now) == 2 and victim not in now:
            break
        await asyncio.sleep(0.2)
    assert victim not in now and len(now) == 2 and now & first
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "restarting" in err.decode()


async def test_workers_that_cannot_start_stop_the_supervisor(procs: list[Any], tmp_path: Any) -> None:
    proc = await start(procs, "fetch-server", str(tmp_path / "missing"), "--port", str(unused_port()),
                       "--workers", "2")
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert "Traceback" not in err.decode()
    errors = [line for line in err.decode().splitlines() if "error:" in line]
    assert len(errors) == 1 and "missing" in errors[0]  # the first worker failed alone; no others started


@pytest.mark.parametrize("which", ["port", "metrics-port"])
async def test_port_in_use_is_caught_before_workers_start(procs: list[Any], comm_dir: str, which: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        busy_port = str(busy.getsockname()[1])
        ports = {"port": str(unused_port()), "metrics-port": str(unused_port()), which: busy_port}
        proc = await start(procs, "fetch-server", comm_dir, "--port", ports["port"], "--metrics-port",
                           ports["metrics-port"], "--workers", "2", "-l", "ERROR")
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert err.decode().count("\n") == 1 and ("cannot listen" in err.decode() or "cannot start" in err.decode())


def test_reserve_port_holds_the_port_for_reuseport_binds() -> None:
    held = reserve_port("127.0.0.1", 0)
    try:
        port = held.getsockname()[1]
        again = reserve_port("127.0.0.1", port)  # another SO_REUSEPORT socket may share it
        again.close()
    finally:
        held.close()


async def test_serve_config_with_two_workers(comm_dir: str, procs: list[Any], tmp_path: Any) -> None:
    port = unused_port()
    config = tmp_path / "workers.toml"
    config.write_text(f'[server]\nworkers = 2\ngraceful_timeout = 5\n\n'
                      f'[[services]]\nkind = "fetch"\nport = {port}\nsource = "{comm_dir}"\n')
    proc = await start(procs, "serve", str(config), "-l", "WARNING")
    await wait_fetch(port)
    pids, _ = await both_workers(port)
    assert len(pids) == 2 and proc.pid not in pids
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return not any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
async def test_workers_stop_when_the_supervisor_is_killed(comm_dir: str, procs: list[Any]) -> None:
    port = unused_port()
    proc = await start(procs, "fetch-server", comm_dir, "--port", str(port), "--workers", "2", "-l", "WARNING")
    await wait_fetch(port)
    pids, _ = await both_workers(port)
    proc.kill()
    await proc.communicate()
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not any(_running(pid) for pid in pids)
