"""The aioaccess command line: fetch-server/store-server as real processes, fetch-client, errors."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from concrete.util import write_communication_to_buffer as cp_write
from concrete.util.access_wrapper import FetchCommunicationClientWrapper as CpFetchClientWrapper
from concrete.util.access_wrapper import StoreCommunicationClientWrapper as CpStoreClientWrapper
from conftest import concrete_comms, unused_port

from aioaccess.cli.main import main


def _wait_for_port(port: int, proc: subprocess.Popen[str], limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}: {proc.communicate()[1]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


@pytest.fixture(scope="module")
def cli_comms(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Any]]:
    root = tmp_path_factory.mktemp("cli") / "comms"
    (root / "sub").mkdir(parents=True)
    comms = concrete_comms(6, prefix="cli")
    for i, c in enumerate(comms):
        (root / ("sub" if i % 2 else "") / f"{c.id}.comm").write_bytes(cp_write(c))
    return os.fspath(root), comms


@pytest.fixture(scope="module")
def fetch_port(cli_comms: tuple[str, list[Any]]) -> Iterator[int]:
    """``python -m aioaccess fetch-server DIR --port P`` in a real process; SIGTERM must exit 0."""
    port = unused_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aioaccess", "fetch-server", cli_comms[0], "--port", str(port), "-l", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    _wait_for_port(port, proc)
    yield port
    code, err = _stop(proc)
    assert code == 0, err


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_count(fetch_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["fetch-client", "--port", str(fetch_port), "--count"], capsys)[:2] == (0, "6\n")


def test_alive_and_about(fetch_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["fetch-client", "--port", str(fetch_port), "--alive", "--about"], capsys)
    assert code == 0
    assert "CommunicationContainerFetchHandler" in out
    assert out.strip().splitlines()[-1] == "True"


def test_get_ids_with_offset_and_count(fetch_port: int, cli_comms: tuple[str, list[Any]],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with CpFetchClientWrapper("127.0.0.1", fetch_port) as ref:
        every = ref.getCommunicationIDs(0, 100)
    assert sorted(every) == sorted(c.id for c in cli_comms[1])
    code, out, _ = run_main(["fetch-client", "--port", str(fetch_port), "--get-ids"], capsys)
    assert (code, out.split()) == (0, every)
    code, out, _ = run_main(["fetch-client", "--port", str(fetch_port), "--get-ids", "--get-ids-offset", "2",
                             "--get-ids-count", "3"], capsys)
    assert (code, out.split()) == (0, every[2:5])


def test_fetch_ids_prints_id_and_text(fetch_port: int, cli_comms: tuple[str, list[Any]],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    comms = cli_comms[1]
    code, out, _ = run_main(["fetch-client", "--port", str(fetch_port), comms[3].id, "absent", comms[0].id], capsys)
    assert code == 0
    assert out == f"{comms[3].id}\n{comms[3].text}\n{comms[0].id}\n{comms[0].text}\n"


def test_save_as_tgz(fetch_port: int, cli_comms: tuple[str, list[Any]], tmp_path: Any,
                     capsys: pytest.CaptureFixture[str]) -> None:
    comms = cli_comms[1]
    target = tmp_path / "out.tgz"
    code, out, _ = run_main(["fetch-client", "--port", str(fetch_port), "--save-as-tgz", os.fspath(target),
                             *[c.id for c in comms]], capsys)
    assert code == 0
    with tarfile.open(target, "r:gz") as tar:
        members = tar.getmembers()
        # [ID].concrete as concrete-python's CommunicationWriterTGZ names them ([ID].comm accepted too)
        assert [os.path.splitext(m.name)[0] for m in members] == [c.id for c in comms]
        assert {os.path.splitext(m.name)[1] for m in members} <= {".concrete", ".comm"}
        for m, c in zip(members, comms, strict=True):
            f = tar.extractfile(m)
            assert f is not None and f.read() == cp_write(c)


def test_ids_from_stdin_with_the_console_script(fetch_port: int, cli_comms: tuple[str, list[Any]]) -> None:
    exe = shutil.which("aioaccess")
    assert exe is not None, "console script not installed"
    comms = cli_comms[1]
    done = subprocess.run([exe, "fetch-client", "--port", str(fetch_port), "-"],
                          input=f"{comms[1].id}\n\n{comms[2].id}\n", capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == comms[1].id
    assert comms[2].id in done.stdout.splitlines()


@pytest.mark.parametrize(
    "argv",
    [
        ["fetch-client", "--bogus"],
        ["fetch-client", "--port", "abc", "--count"],
        ["fetch-server"],
        ["fetch-server", "/definitely/not/here"],
        ["fetch-server", ".", "--idle-timeout", "-1"],
        ["store-server", "/definitely/not/here"],
        ["no-such-command"],
        ["fetch-client"],  # nothing to do
    ],
)
def test_bad_usage_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(argv, capsys)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error" in lines[0] and "Traceback" not in err


def test_unreachable_server_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["fetch-client", "--port", str(unused_port()), "--count", "--timeout", "2"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "cannot connect" in err


def test_port_in_use_is_a_one_line_error(fetch_port: int, cli_comms: tuple[str, list[Any]]) -> None:
    done = subprocess.run([sys.executable, "-m", "aioaccess", "fetch-server", cli_comms[0], "--port", str(fetch_port),
                           "-l", "ERROR"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("aioaccess fetch-server: error:")
    assert "Traceback" not in done.stderr


def test_store_server_process_stores_and_exits_0_on_sigterm(tmp_path: Any) -> None:
    port = unused_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aioaccess", "store-server", os.fspath(tmp_path), "--port", str(port), "-l", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for_port(port, proc)
        comms = concrete_comms(3, prefix="cli-store")
        with CpStoreClientWrapper("127.0.0.1", port) as client:
            for c in comms:
                client.store(c)
    finally:
        code, err = _stop(proc)
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == sorted(f"{c.id}.comm" for c in comms)
    for c in comms:
        assert (tmp_path / f"{c.id}.comm").read_bytes() == cp_write(c)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from aioaccess import __version__

    code, out, _ = run_main(["--version"], capsys)
    assert code == 0 and __version__ in out


async def test_service_error_is_a_one_line_error_exit_1(comm_dir: str, cp_comms: list[Any]) -> None:
    import asyncio

    from aioaccess import CommunicationContainerFetchHandler, DirectoryBackedCommunicationContainer
    from aioaccess.server.wrappers import FetchCommunicationServiceWrapper

    with open(os.path.join(comm_dir, "broken.comm"), "wb") as f:
        f.write(cp_write(cp_comms[0])[:-4])
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    async with FetchCommunicationServiceWrapper(handler).serving() as listener:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "aioaccess", "fetch-client", "--port", str(listener.bound_port), "broken",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("aioaccess fetch-client: error: ServicesException:") and "corrupt" in lines[0]
    assert out == b""
