"""The assembly an embedder runs (``aioaccess.app``): the README's example, one lifespan, clear setup errors,
and a CLI that imports a command's implementation only when it runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms

from aioaccess import read_communication_from_buffer
from aioaccess.app import App, AppConfig, BackendOptions, ServiceSpec, SetupError
from aioaccess.client import HTTPStoreCommunicationClient, StoreCommunicationClient
from aioaccess.server import ServerConfig

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def _readme_example() -> str:
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("### Embedding", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_embedding_example_runs() -> None:
    done = subprocess.run([sys.executable, "-c", _readme_example()], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    count, _, port = done.stdout.strip().partition(" Communications; HTTP on port ")
    assert count == "50" and int(port) > 0


async def test_one_lifespan_stores_closes_and_releases_every_port(tmp_path: object) -> None:
    """Thrift and HTTP stores into one directory; leaving the block closes both and frees their ports."""
    target = str(tmp_path)
    config = AppConfig([ServiceSpec("inbox", "store", port=0, options={"target": target}),
                        ServiceSpec("web", "http", port=0, options={"store": "inbox"})],
                       ServerConfig(graceful_timeout=2.0))
    one, two = concrete_comms(2, "emb")
    async with App(config) as app:
        ports = app.bound_port("inbox"), app.bound_port("web")
        async with StoreCommunicationClient.connect("127.0.0.1", ports[0]) as client:
            await client.store_raw(cp_write(one))
        async with HTTPStoreCommunicationClient(f"http://127.0.0.1:{ports[1]}/store_http_endpoint/") as http:
            await http.store(read_communication_from_buffer(cp_write(two)))
    assert app.http[0].runner is None
    for comm in (one, two):
        with open(os.path.join(target, f"{comm.id}.comm"), "rb") as f:
            assert f.read() == cp_write(comm)
    for port in ports:  # both listeners are closed
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


async def test_a_taken_port_is_a_setup_error_and_closes_what_was_opened(tmp_path: object) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        spec = ServiceSpec("corpus", "fetch", port=port, options={"source": "sample"})
        app = App(AppConfig([spec]))
        with pytest.raises(SetupError, match=f"^cannot listen on 127.0.0.1:{port}: "):
            await app.start()
        with pytest.raises(SetupError, match=r"^c\.toml: cannot listen: "):
            await App(AppConfig([spec], path="c.toml")).start()
    assert app.server.should_exit.is_set() is False and app.server.started.is_set() is False


async def test_a_missing_source_is_a_setup_error() -> None:
    spec = ServiceSpec("corpus", "fetch", port=0, options={"source": "/nonexistent/corpus"},
                       backend=BackendOptions())
    with pytest.raises(SetupError, match="source '/nonexistent/corpus' does not exist"):
        await App(AppConfig([spec])).start()


_IMPORTS = """
import json, sys
import aioaccess
before = set(sys.modules)
from aioaccess.cli.main import main
try:
    main(["fetch-client", "--help"])
except SystemExit:
    pass
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_fetch_client_help_imports_no_server_backend_or_http_code() -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORTS], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    new = json.loads(done.stdout.strip().splitlines()[-1])
    heavy = ("redis", "aiobotocore", "obstore", "aiohttp", "thriftpy2", "aioaccess.app.assembly",
             "aioaccess.server", "aioaccess.handlers", "aioaccess.backends", "aioaccess.http", "aioaccess.schema")
    assert [m for m in new if m.split(".")[0] in heavy or m.startswith(heavy)] == []
    assert "aioaccess.cli.fetch_client" in new and "aioaccess.cli.commands" not in new
