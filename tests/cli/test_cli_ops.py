"""The operating commands, driven through the real console script in subprocesses.

store-server under load then SIGTERM (no acknowledged store lost), wait-service,
store-client from files/archives, serve CONFIG.toml, and one-line errors with
exit status 2 for bad flags and bad configs.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms, unused_port

from aioaccess import FetchCommunicationClient, StoreCommunicationClient
from aioaccess.cli.config_file import ConfigError, parse_config
from aioaccess.cli.main import main

# The console script next to this interpreter (not a pyenv shim), else ``python -m aioaccess``.
_SCRIPT = os.path.join(os.path.dirname(sys.executable), "aioaccess")
AIOACCESS = [_SCRIPT] if os.path.exists(_SCRIPT) else [sys.executable, "-m", "aioaccess"]


async def run_cli(*args: str, stdin: bytes | None = None, timeout: float = 60) -> tuple[int, str, str]:
    """Run ``aioaccess ARGS`` to completion; (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(*AIOACCESS, *args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def start_cli(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*AIOACCESS, "-l", "WARNING", *args, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)


async def wait_up(service: str, port: int, proc: asyncio.subprocess.Process) -> None:
    code, _, err = await run_cli("wait-service", service, "--port", str(port), "--host", "127.0.0.1",
                                 "--timeout", "30", "--sleep-interval", "0.1", "-l", "WARNING")
    assert code == 0, err
    assert proc.returncode is None


async def stop(proc: asyncio.subprocess.Process, sig: int | None = signal.SIGTERM) -> tuple[int, str]:
    """Send ``sig`` (None: it was sent already) and wait for the exit status."""
    if sig is not None and proc.returncode is None:
        proc.send_signal(sig)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.fixture
async def server_procs() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Processes a test starts; killed (and reaped) if the test left them running."""
    procs: list[asyncio.subprocess.Process] = []
    yield procs
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


# -- graceful shutdown: the acceptance test ------------------------------------
async def test_sigterm_during_concurrent_stores_loses_no_acknowledged_store(
        store_dir: str, server_procs: list[Any]) -> None:
    port = unused_port()
    proc = await start_cli("store-server", store_dir, "--port", str(port), "--graceful-timeout", "20")
    server_procs.append(proc)
    await wait_up("StoreCommunication", port, proc)

    raws = {c.id: cp_write(c) for c in concrete_comms(2000, prefix="sigterm")}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for comm_id in raws:
        queue.put_nowait(comm_id)
    acked: list[str] = []
    failed: list[str] = []
    halfway = asyncio.Event()

    async def worker() -> None:
        try:
            async with StoreCommunicationClient.connect("127.0.0.1", port, timeout=30) as client:
                while not queue.empty():
                    comm_id = queue.get_nowait()
                    try:
                        await client.store_raw(raws[comm_id])
                    except Exception:
                        failed.append(comm_id)
                        return
                    acked.append(comm_id)
                    if len(acked) >= len(raws) // 2:
                        halfway.set()
        except OSError:
            return

    tasks = [asyncio.create_task(worker()) for _ in range(32)]
    await halfway.wait()
    proc.send_signal(signal.SIGTERM)
    await asyncio.gather(*tasks)
    code, err = await stop(proc, None)

    assert code == 0, err
    assert "Traceback" not in err
    assert len(raws) // 2 <= len(acked) < len(raws)  # the signal really came mid-stream
    leftovers = [n for n in os.listdir(store_dir) if n.startswith(".tmp-")]
    assert leftovers == []
    for comm_id in acked:
        with open(os.path.join(store_dir, f"{comm_id}.comm"), "rb") as f:
            assert f.read() == raws[comm_id], comm_id


# -- wait-service --------------------------------------------------------------
async def test_wait_service_times_out_with_status_1() -> None:
    code, _, err = await run_cli("wait-service", "FetchCommunication", "--host", "127.0.0.1",
                                 "--port", str(unused_port()), "--timeout", "0.3", "--sleep-interval", "0.1")
    assert code == 1
    assert "is down" in err


async def test_wait_service_returns_0_for_a_live_store(store_server: Any) -> None:
    code, _, err = await run_cli("wait-service", "StoreCommunication", "--host", "127.0.0.1",
                                 "--port", str(store_server.bound_port), "--timeout", "10")
    assert code == 0, err
    assert "is up" in err


@pytest.mark.interop
async def test_wait_service_and_concrete_pythons_wait_script_agree(comm_dir: str, server_procs: list[Any]) -> None:
    """Our wait-service waits for concrete-python's fetch-server.py; its wait-concrete-service.py for ours."""
    bindir = os.path.dirname(sys.executable)
    cp_port, our_port = unused_port(), unused_port()
    theirs = await asyncio.create_subprocess_exec(sys.executable, os.path.join(bindir, "fetch-server.py"), comm_dir,
                                                  "--host", "127.0.0.1", "-p", str(cp_port), "-l", "warning",
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    server_procs.append(theirs)
    ours = await start_cli("fetch-server", comm_dir, "--port", str(our_port))
    server_procs.append(ours)
    await wait_up("FetchCommunication", cp_port, theirs)
    waited = await asyncio.create_subprocess_exec(
        sys.executable, os.path.join(bindir, "wait-concrete-service.py"), "FetchCommunication", "--host",
        "127.0.0.1", "--port", str(our_port), "--timeout", "30", "--sleep-interval", "1",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(waited.communicate(), 60)
    assert waited.returncode == 0, err.decode()
    code, err_text = await stop(ours)
    assert code == 0, err_text


# -- store-client ----------------------------------------------------------------
async def test_store_client_stores_files_directories_and_archives(tmp_path: Any, store_server: Any,
                                                                  store_dir: str) -> None:
    comms = concrete_comms(12, prefix="sc")
    raws = {c.id: cp_write(c) for c in comms}
    files = tmp_path / "files"
    (files / "nested").mkdir(parents=True)
    for comm in comms[:4]:
        (files / "nested" / f"{comm.id}.comm").write_bytes(raws[comm.id])
    with zipfile.ZipFile(tmp_path / "some.zip", "w") as zf:
        for comm in comms[4:8]:
            zf.writestr(f"{comm.id}.concrete", raws[comm.id])
    with tarfile.open(tmp_path / "some.tar.gz", "w:gz") as tar:
        for comm in comms[8:11]:
            info = tarfile.TarInfo(f"{comm.id}.comm")
            info.size = len(raws[comm.id])
            tar.addfile(info, io.BytesIO(raws[comm.id]))
    (tmp_path / "one.comm").write_bytes(raws[comms[11].id])

    code, out, err = await run_cli("store-client", "--host", "127.0.0.1", "--port", str(store_server.bound_port),
                                   "--concurrency", "3", str(files), str(tmp_path / "some.zip"),
                                   str(tmp_path / "some.tar.gz"), str(tmp_path / "one.comm"))
    assert code == 0, err
    assert out.startswith("stored 12, failed 0,") and out.rstrip().endswith("MB/s")
    for comm_id, raw in raws.items():
        with open(os.path.join(store_dir, f"{comm_id}.comm"), "rb") as f:
            assert f.read() == raw


async def test_store_client_counts_failures_and_exits_1(tmp_path: Any, store_server: Any) -> None:
    good = concrete_comms(1, prefix="ok")[0]
    (tmp_path / "good.comm").write_bytes(cp_write(good))
    (tmp_path / "garbage.comm").write_bytes(b"\xff\x00 not thrift")
    bad_id = concrete_comms(1, prefix="../escape")[0]  # the directory store refuses ids with a path
    (tmp_path / "badid.comm").write_bytes(cp_write(bad_id))
    code, out, err = await run_cli("store-client", "--host", "127.0.0.1", "--port", str(store_server.bound_port),
                                   str(tmp_path))
    assert code == 1
    assert out.startswith("stored 1, failed 2,"), out
    assert "Traceback" not in err


async def test_store_client_unreachable_server_is_a_one_line_error(tmp_path: Any) -> None:
    (tmp_path / "c.comm").write_bytes(cp_write(concrete_comms(1)[0]))
    code, out, err = await run_cli("store-client", "--host", "127.0.0.1", "--port", str(unused_port()),
                                   str(tmp_path))
    assert code == 2
    assert err.count("\n") == 1 and "cannot reach the store server" in err


# -- serve CONFIG.toml -------------------------------------------------------------
async def test_serve_runs_fetch_store_and_http_on_one_loop(tmp_path: Any, comm_dir: str, store_dir: str,
                                                           server_procs: list[Any]) -> None:
    import aiohttp

    fetch_port, store_port, http_port, metrics_port, relay_port = (unused_port() for _ in range(5))
    config = tmp_path / "serve.toml"
    config.write_text(f"""
[server]
graceful_timeout = 5
metrics_port = {metrics_port}

[[services]]
name = "corpus"
kind = "fetch"
port = {fetch_port}
source = "{comm_dir}"

[[services]]
name = "inbox"
kind = "store"
port = {store_port}
target = "{store_dir}"
fsync = false

[[services]]
kind = "http"
port = {http_port}
fetch = "corpus"
store = "inbox"

[[services]]
kind = "relay"
port = {relay_port}
upstream = "127.0.0.1:{fetch_port}"
""")
    proc = await start_cli("serve", str(config))
    server_procs.append(proc)
    await wait_up("FetchCommunication", fetch_port, proc)
    await wait_up("StoreCommunication", store_port, proc)

    async with FetchCommunicationClient.connect("127.0.0.1", fetch_port) as fetch:
        assert await fetch.getCommunicationCount() == 10
    async with FetchCommunicationClient.connect("127.0.0.1", relay_port) as relayed:
        relayed_ids = await relayed.getCommunicationIDs(0, 100)
    assert sorted(relayed_ids) == sorted(n.removesuffix(".comm") for n in os.listdir(comm_dir))
    new = concrete_comms(1, prefix="served")[0]
    async with StoreCommunicationClient.connect("127.0.0.1", store_port) as store:
        await store.store_raw(cp_write(new))
    assert os.path.exists(os.path.join(store_dir, f"{new.id}.comm"))

    def http_count() -> int:  # concrete-python's own HTTP/TJSON client
        from concrete.util.access_wrapper import HTTPFetchCommunicationClientWrapper

        with HTTPFetchCommunicationClientWrapper(f"http://127.0.0.1:{http_port}/fetch_http_endpoint/") as client:
            return int(client.getCommunicationCount())

    assert await asyncio.to_thread(http_count) == 10
    some = sorted(os.listdir(comm_dir))[:2]
    tgz = tmp_path / "fetched.tgz"
    code, out, err = await run_cli("fetch-client", "--uri", f"http://127.0.0.1:{http_port}/fetch_http_endpoint/",
                                   "--count", "--benchmark", "--save-as-tgz", str(tgz), "-", stdin="\n".join(
                                       n.removesuffix(".comm") for n in some).encode())
    assert code == 0, err
    assert out.strip() == "10"
    assert "Time elapsed in getCommunicationCount()" in err and "Fetched 2 Communications" in err
    with tarfile.open(tgz) as tar:
        assert sorted(tar.getnames()) == [n.replace(".comm", ".concrete") for n in some]
        for name in some:
            with open(os.path.join(comm_dir, name), "rb") as f:
                stored = f.read()
            member = tar.extractfile(name.replace(".comm", ".concrete"))
            assert member is not None and member.read() == stored

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{metrics_port}/metrics") as resp:
            text = await resp.text()
    assert 'aioaccess_calls_total{method="getCommunicationCount",outcome="ok",service="corpus"} 1.0' in text
    assert 'aioaccess_calls_total{method="store",outcome="ok",service="inbox"} 1.0' in text
    assert 'aioaccess_calls_total{method="getCommunicationIDs",outcome="ok",service="relay-3"} 1.0' in text
    assert 'aioaccess_calls_total{method="getCommunicationCount",outcome="ok",service="http-2"} 2.0' in text
    assert 'aioaccess_calls_total{method="fetch",outcome="ok",service="http-2"} 1.0' in text

    code, err = await stop(proc)
    assert code == 0, err


async def test_serve_check_validates_without_binding(tmp_path: Any, comm_dir: str) -> None:
    config = tmp_path / "ok.toml"
    config.write_text(f'[[services]]\nkind = "fetch"\nport = {unused_port()}\nsource = "{comm_dir}"\n')
    code, out, err = await run_cli("serve", str(config), "--check")
    assert code == 0, err
    assert out.strip() == f"{config}: OK, 1 services"


# -- bad flags and bad configs: one line on stderr, exit 2 ---------------------------
BAD_CONFIGS = {
    "not toml": "[[services]\n",
    "no services": "[server]\nworkers = 1\n",
    "unknown kind": '[[services]]\nkind = "ftp"\nport = 1\n',
    "unknown key": '[[services]]\nkind = "fetch"\nport = 1\nsource = "x"\nsorce = "y"\n',
    "missing source": '[[services]]\nkind = "fetch"\nport = 1\n',
    "bad port type": '[[services]]\nkind = "store"\nport = "9090"\ntarget = "x"\n',
    "bad server key": '[server]\nthreads = 4\n[[services]]\nkind = "store"\nport = 1\ntarget = "x"\n',
    "bad loop": '[server]\nloop = "trio"\n[[services]]\nkind = "store"\nport = 1\ntarget = "x"\n',
    "duplicate port": '[[services]]\nkind = "store"\nport = 7\ntarget = "x"\n'
                      '[[services]]\nkind = "fetch"\nport = 7\nsource = "x"\n',
    "http names nothing": '[[services]]\nkind = "http"\nport = 7\nfetch = "nope"\n',
    "bad upstream": '[[services]]\nkind = "relay"\nport = 7\nupstream = "nohost"\n',
    "negative grace": '[server]\ngraceful_timeout = -1\n[[services]]\nkind = "store"\nport = 1\ntarget = "x"\n',
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_configs_are_refused_naming_the_problem(name: str) -> None:
    import tomllib

    with pytest.raises((ConfigError, tomllib.TOMLDecodeError)) as info:
        parse_config(tomllib.loads(BAD_CONFIGS[name]), "c.toml")
    assert "\n" not in str(info.value)


def bad_cli_cases(tmp_path: Any) -> list[tuple[str, ...]]:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text(BAD_CONFIGS["unknown key"])
    missing_source = tmp_path / "missing.toml"
    missing_source.write_text(f'[[services]]\nkind = "fetch"\nport = {unused_port()}\nsource = "/no/such/dir"\n')
    return [
        ("fetch-server",),
        ("fetch-server", "/no/such/source"),
        ("store-server", str(tmp_path), "--port", "ninety"),
        ("store-server", str(tmp_path), "--graceful-timeout", "-1"),
        ("fetch-server", str(tmp_path), "--workers", "0"),
        ("wait-service", "Nope"),
        ("store-client", "/no/such/file"),
        ("serve", str(tmp_path / "absent.toml")),
        ("serve", str(bad_toml)),
        ("serve", str(missing_source)),
        ("no-such-command",),
    ]


def test_bad_flags_and_configs_exit_2_with_one_line_in_process(tmp_path: Any, capsys: Any) -> None:
    for case in bad_cli_cases(tmp_path):
        try:
            code = main(list(case))
        except SystemExit as exc:  # argparse
            code = exc.code
        out, err = capsys.readouterr()
        assert code == 2, (case, err)
        assert out == "", case
        assert err.count("\n") == 1 and "error" in err, (case, err)


async def test_bad_flags_and_configs_exit_2_with_one_line(tmp_path: Any) -> None:
    """The same through the console script, for a flag, a source and a config."""
    cases = [bad_cli_cases(tmp_path)[i] for i in (2, 1, 8)]
    results = await asyncio.gather(*(run_cli(*case) for case in cases))
    for case, (code, out, err) in zip(cases, results, strict=True):
        assert code == 2, (case, err)
        assert out == "", case
        assert err.count("\n") == 1 and "error" in err, (case, err)


def test_version_and_loglevel_on_every_command(capsys: Any) -> None:
    for command in ("store-client", "wait-service", "serve"):
        with pytest.raises(SystemExit) as info:
            main([command, "--version"])
        assert info.value.code == 0 and capsys.readouterr().out.startswith("aioaccess ")
        with pytest.raises(SystemExit) as info:
            main([command, "-l", "DEBUG", "--help"])
        assert info.value.code == 0 and "--loglevel" in capsys.readouterr().out


def test_the_documented_config_example_is_valid() -> None:
    import tomllib

    from aioaccess.cli import config_file

    example = config_file.__doc__.split("::", 1)[1].split("Backend keys")[0]
    data = tomllib.loads("\n".join(line[4:] for line in example.splitlines()))
    data["services"][3].pop("static")  # /srv/www need not exist here
    config = parse_config(data, "example.toml")
    assert [(s.name, s.kind) for s in config.services] == [
        ("corpus", "fetch"), ("store-1", "store"), ("relay-2", "relay"), ("http-3", "http")]
    assert config.metrics_port == 9100 and config.server.graceful_timeout == 30.0
