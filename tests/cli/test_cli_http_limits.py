"""The connection limits of HTTP services: http-server flags and serve keys, checked and reaching the server.

(Bad http-server flags are among ``test_cli_limits.BAD_FLAGS``.)
"""

from __future__ import annotations

import os
import socket
import sys
import time
import tomllib
from typing import Any

import pytest
from _procs import server_process
from conftest import unused_port

from aioaccess.cli.config_file import ConfigError, parse_config
from aioaccess.cli.http_options import http_limits
from aioaccess.cli.main import main
from aioaccess.http.limits import HTTPLimits


def test_http_limit_flags_appear_in_help_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["http-server", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--header-timeout", "30"), ("--keepalive-timeout", "75"), ("--body-timeout", "60"),
                          ("--max-connections", "10000")):
        assert f"{flag} {flag[2:].upper().replace('-', '_')}" in text
        assert f"(default: {default})" in text


HTTP = '[[services]]\nkind = "http"\nport = 1\nsource = "sample"\n'


def test_http_keys_reach_the_limits() -> None:
    config = parse_config(tomllib.loads(f"[server]\nmax_connections = 500\n{HTTP}header_timeout = 2\n"
                                        "keepalive_timeout = 0\nbody_timeout = 5.5\n"), "c.toml")
    limits, body_timeout = http_limits(config.services[0].options, config.server.max_connections)
    assert limits == HTTPLimits(header_timeout=2.0, keepalive_timeout=None, max_connections=500)
    assert body_timeout == 5.5
    config = parse_config(tomllib.loads(f"{HTTP}max_connections = 7\n"), "c.toml")
    assert http_limits(config.services[0].options, config.server.max_connections)[0].max_connections == 7


@pytest.mark.parametrize(("line", "message"), [
    ("header_timeout = -1", "header_timeout must be >= 0 (0: never), not -1"),
    ("max_connections = 0", "max_connections must be >= 1, not 0"),
    ('keepalive_timeout = "1m"', "keepalive_timeout must be a number, not '1m'"),
])
def test_bad_http_keys_are_refused_naming_the_key(line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(f"{HTTP}{line}\n"), "c.toml")
    assert str(info.value) == f"c.toml: services[0] (http): {message}"


def test_serve_cuts_an_idle_http_client_after_its_keepalive_timeout(tmp_path: Any) -> None:
    port = unused_port()
    config = tmp_path / "http.toml"
    config.write_text(HTTP.replace("port = 1", f"port = {port}") + "keepalive_timeout = 1\n")
    with server_process(tmp_path, [sys.executable, "-m", "aioaccess", "serve", os.fspath(config)], port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            started = time.monotonic()
            assert s.recv(1) == b""  # closed by the server
            waited = time.monotonic() - started
    assert 0.8 < waited < 5, waited
