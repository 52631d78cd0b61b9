"""--max-reply-size and --max-buffered-bytes (and their [server] keys) on real server processes."""

from __future__ import annotations

import os
import socket
import sys
import tarfile
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from _procs import aioaccess_server, server_process
from concrete.access import FetchCommunicationService as CpFetchService
from concrete.access.ttypes import FetchRequest
from concrete.services.ttypes import ServicesException as CpServicesException
from concrete.util import write_communication_to_buffer as cp_write
from concrete.util.access_wrapper import FetchCommunicationClientWrapper as CpFetchClientWrapper
from conftest import concrete_comms, unused_port
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.transport.TTransport import TFramedTransport, TMemoryBuffer

from aioaccess.cli.config_file import ConfigError, parse_config
from aioaccess.cli.main import main

FRAME = 4096  # --max-frame-size of the servers here
BUFFERED = 8192  # --max-buffered-bytes: two partial frames of PARTIAL bytes fit, a third does not
PARTIAL = 3000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Five Communications as a directory and as a .tar.gz, and a reply limit between one and two of them."""
    root = tmp_path_factory.mktemp("limits")
    comms = concrete_comms(5, prefix="limit")
    raws = [cp_write(c) for c in comms]
    (root / "dir").mkdir()
    for comm, raw in zip(comms, raws, strict=True):
        (root / "dir" / f"{comm.id}.comm").write_bytes(raw)
    tgz = root / "comms.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        for comm in comms:
            tar.add(root / "dir" / f"{comm.id}.comm", arcname=f"{comm.id}.comm")
    limit = max(map(len, raws)) + 64  # any two Communications (and the reply's framing) go past it
    assert 2 * min(map(len, raws)) > limit
    return {"dir": os.fspath(root / "dir"), "tgz": os.fspath(tgz), "ids": [c.id for c in comms], "limit": limit}


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory, corpus: dict[str, Any]) -> Iterator[int]:
    """``aioaccess fetch-server DIR`` with all three limits given as flags."""
    with aioaccess_server(tmp_path_factory.mktemp("cli-server"), "fetch-server", corpus["dir"],
                          "--max-reply-size", str(corpus["limit"]), "--max-frame-size", str(FRAME),
                          "--max-buffered-bytes", str(BUFFERED)) as port:
        yield port


@pytest.fixture(scope="module")
def config_server(tmp_path_factory: pytest.TempPathFactory, corpus: dict[str, Any]) -> Iterator[int]:
    """``aioaccess serve CONFIG.toml`` with the same limits as [server] keys, over the .tar.gz (in memory)."""
    tmp = tmp_path_factory.mktemp("config-server")
    port = unused_port()
    config = tmp / "serve.toml"
    config.write_text(f"[server]\nmax_reply_size = {corpus['limit']}\nmax_frame_size = {FRAME}\n"
                      f"max_buffered_bytes = {BUFFERED}\n"
                      f'[[services]]\nkind = "fetch"\nport = {port}\nsource = "{corpus["tgz"]}"\n')
    with server_process(tmp, [sys.executable, "-m", "aioaccess", "serve", os.fspath(config)], port):
        yield port


def cp_fetch(port: int, ids: list[str]) -> list[str]:
    with CpFetchClientWrapper("127.0.0.1", port) as client:
        return [c.id for c in client.fetch(FetchRequest(communicationIds=ids)).communications]


# -- --max-reply-size ------------------------------------------------------------------------
@pytest.mark.parametrize("server", ["cli_server", "config_server"])
def test_a_reply_over_the_limit_is_a_services_exception_naming_it(server: str, corpus: dict[str, Any],
                                                                  request: pytest.FixtureRequest) -> None:
    port = request.getfixturevalue(server)
    ids = corpus["ids"]
    for many in (ids[:2], ids):
        with pytest.raises(CpServicesException) as info:
            cp_fetch(port, many)
        assert f"over this server's limit of {corpus['limit']}" in info.value.message
    # One Communication is always sent, and the connection-level failure above left the server serving.
    for comm_id in ids:
        assert cp_fetch(port, [comm_id]) == [comm_id]


def test_fetch_client_reports_the_limit_in_one_line(cli_server: int, corpus: dict[str, Any],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fetch-client", "--port", str(cli_server), *corpus["ids"][:3]])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "ServicesException" in err and str(corpus["limit"]) in err


# -- --max-buffered-bytes --------------------------------------------------------------------
def fetch_frame(comm_id: str) -> bytes:
    """A complete framed compact fetch call, built by concrete-python's Thrift client."""
    buf = TMemoryBuffer()
    CpFetchService.Client(TCompactProtocol(TFramedTransport(buf))).send_fetch(FetchRequest(communicationIds=[comm_id]))
    return buf.getvalue()


def read_frame(sock: socket.socket) -> bytes | None:
    """One reply frame, or None if the server closed the connection."""
    data = b""
    try:
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
    except ConnectionResetError:
        return None
    return data[4:]


@pytest.mark.parametrize("server", ["cli_server", "config_server"])
def test_a_partial_frame_past_the_buffer_budget_closes_only_its_connection(
        server: str, corpus: dict[str, Any], request: pytest.FixtureRequest) -> None:
    port = request.getfixturevalue(server)
    frame = fetch_frame("x" * 3900)
    assert PARTIAL < len(frame) <= FRAME and 2 * PARTIAL <= BUFFERED < 3 * PARTIAL
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
    try:
        for sock in socks:
            sock.sendall(frame[:PARTIAL])
            # A full call on another connection: once it is answered the server has read this partial frame.
            assert cp_fetch(port, corpus["ids"][:1]) == corpus["ids"][:1]
        replies = []
        for sock in socks:
            try:
                sock.sendall(frame[PARTIAL:])
            except (BrokenPipeError, ConnectionResetError):
                replies.append(None)
                continue
            replies.append(read_frame(sock))
    finally:
        for sock in socks:
            sock.close()
    # The third partial frame went past the budget: that connection alone was closed; the two
    # connections holding the first two frames finished them and got their (fetch) replies.
    assert replies[2] is None
    assert all(reply is not None and b"fetch" in reply for reply in replies[:2])
    assert cp_fetch(port, corpus["ids"][1:2]) == corpus["ids"][1:2]


# -- bad values ------------------------------------------------------------------------------
BAD_FLAGS = [
    (["fetch-server", "DIR", "--max-reply-size", "0"], "--max-reply-size must be 1..2147483647, not 0"),
    (["fetch-server", "DIR", "--max-reply-size", "-5"], "--max-reply-size must be 1..2147483647, not -5"),
    (["fetch-server", "DIR", "--max-reply-size", str(1 << 31)], "--max-reply-size must be 1..2147483647"),
    (["fetch-server", "DIR", "--max-buffered-bytes", "0"], "--max-buffered-bytes must be >= 1, not 0"),
    (["store-server", "DIR", "--max-buffered-bytes", "-1"], "--max-buffered-bytes must be >= 1, not -1"),
    (["relay-server", "127.0.0.1", "1", "--max-buffered-bytes", "-1"], "--max-buffered-bytes must be >= 1"),
    (["fetch-server", "DIR", "--max-buffered-bytes", "1000"],
     "--max-buffered-bytes (1000) is below --max-frame-size (67108864) and would have no effect"),
    (["fetch-server", "DIR", "--max-buffered-bytes", "ten"], "--max-buffered-bytes: invalid int value"),
    # A relay passes the upstream's replies on verbatim: it has no reply limit to set.
    (["relay-server", "127.0.0.1", "1", "--max-reply-size", "10"], "unrecognized arguments: --max-reply-size"),
    # The connection limits of http-server.
    (["http-server", "DIR", "--header-timeout", "-1"], "--header-timeout must be >= 0 (0: never), not -1"),
    (["http-server", "DIR", "--keepalive-timeout", "-0.5"], "--keepalive-timeout must be >= 0 (0: never), not -0.5"),
    (["http-server", "DIR", "--body-timeout", "-3"], "--body-timeout must be >= 0 (0: never), not -3"),
    (["http-server", "DIR", "--max-connections", "0"], "--max-connections must be >= 1, not 0"),
    (["http-server", "DIR", "--header-timeout", "soon"], "--header-timeout: invalid float value"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_FLAGS, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD_FLAGS])
def test_bad_limits_exit_2_with_one_line_naming_the_flag(argv: list[str], message: str, corpus: dict[str, Any],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    argv = [corpus["dir"] if a == "DIR" else a for a in argv]
    try:
        code = main([*argv, "--port", str(unused_port())])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1, err


def test_limit_flags_appear_in_help_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    for command, has_reply_size in (("fetch-server", True), ("store-server", False), ("relay-server", False)):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--max-buffered-bytes MAX_BUFFERED_BYTES" in text and "(default: 1073741824)" in text
        assert ("--max-reply-size" in text) is has_reply_size


# -- [server] keys ---------------------------------------------------------------------------
SERVICE = '[[services]]\nkind = "fetch"\nport = 1\nsource = "x"\n'


def test_server_keys_reach_the_config() -> None:
    config = parse_config(tomllib.loads(f"[server]\nmax_frame_size = 1024\nmax_buffered_bytes = 4096\n"
                                        f"max_reply_size = 2048\n{SERVICE}"), "c.toml")
    assert config.server.max_buffered_bytes == 4096 and config.server.max_frame_size == 1024
    assert config.max_reply_size == 2048
    default = parse_config(tomllib.loads(SERVICE), "c.toml")
    assert default.server.max_buffered_bytes == 1 << 30 and default.max_reply_size == 1 << 30


BAD_KEYS = {
    "max_buffered_bytes = 0": "max_buffered_bytes must be >= 1, not 0",
    "max_buffered_bytes = -4096": "max_buffered_bytes must be >= 1, not -4096",
    'max_buffered_bytes = "1GB"': "max_buffered_bytes must be an integer, not '1GB'",
    "max_buffered_bytes = 1.5e9": "max_buffered_bytes must be an integer, not 1500000000.0",
    "max_buffered_bytes = true": "max_buffered_bytes must be an integer, not True",
    "max_buffered_bytes = 1024": "max_buffered_bytes (1024) is below max_frame_size (67108864) and would have "
                                 "no effect; lower max_frame_size too",
    "max_reply_size = 0": "max_reply_size must be 1..2147483647, not 0",
    "max_reply_size = -1": "max_reply_size must be 1..2147483647, not -1",
    "max_reply_size = 2147483648": "max_reply_size must be 1..2147483647, not 2147483648",
    "max_reply_size = [1]": "max_reply_size must be an integer, not [1]",
}


@pytest.mark.parametrize("line", sorted(BAD_KEYS))
def test_bad_server_keys_are_refused_naming_the_key(line: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(f"[server]\n{line}\n{SERVICE}"), "c.toml")
    assert str(info.value) == f"c.toml: [server]: {BAD_KEYS[line]}"


def test_serve_with_a_bad_key_exits_2_before_binding(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"[server]\nmax_reply_size = 0\n{SERVICE}")
    code = main(["serve", os.fspath(config)])
    err = capsys.readouterr().err
    assert code == 2 and "max_reply_size must be 1..2147483647, not 0" in err and err.count("\n") == 1
