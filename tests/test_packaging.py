"""The runtime package: base install without backend clients, lazy imports, and one message per missing extra.

A missing optional dependency is simulated in a subprocess by ``sys.modules[name] = None`` before anything
imports it (Python then refuses the import, as when the package is not installed).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from _procs import server_process, unused_port

import aioaccess
from aioaccess import backends, handlers
from aioaccess.client import FetchCommunicationClientWrapper

#: What the extras install (aioaccess[all]).
OPTIONAL = ("redis", "hiredis", "aiobotocore", "botocore", "obstore", "aiohttp", "prometheus_client")


def _blocking(modules: tuple[str, ...], code: str) -> str:
    return f"import sys\nfor m in {modules!r}:\n    sys.modules[m] = None\n{code}"


def _run(modules: tuple[str, ...], code: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _blocking(modules, code), *argv], capture_output=True, text=True,
                          timeout=120)


def test_import_aioaccess_loads_no_backend_client() -> None:
    code = "import sys, aioaccess\nprint(sorted(m for m in sys.modules if m.partition('.')[0] in {!r}))"
    out = subprocess.run([sys.executable, "-c", code.format(set(OPTIONAL))], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == "[]"


def test_submodules_are_still_attributes_of_their_package() -> None:
    code = ("import aioaccess\nprint(aioaccess.server.Server.__name__, aioaccess.backends.directory.read_file_nowait"
            ".__name__, aioaccess.handlers.store.is_temp_name.__name__, hasattr(aioaccess, 'corpus'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.split() == ["Server", "read_file_nowait", "is_temp_name", "False"]


def test_every_public_name_is_still_importable() -> None:
    from aioaccess.backends.redis import RedisHashBackedCommunicationContainer
    from aioaccess.client.http import HTTPFetchCommunicationClientWrapper
    from aioaccess.handlers.s3_store import S3BackedStoreHandler

    for module in (aioaccess, backends, handlers):
        assert set(module.__all__) <= set(dir(module))
        for name in module.__all__:
            assert getattr(module, name) is not None, name
    assert aioaccess.RedisHashBackedCommunicationContainer is RedisHashBackedCommunicationContainer
    assert aioaccess.HTTPFetchCommunicationClientWrapper is HTTPFetchCommunicationClientWrapper
    assert handlers.S3BackedStoreHandler is S3BackedStoreHandler
    assert {kind: cls.NAME for kind, cls in backends.CONTAINERS.items()} == {k: k for k in backends.CONTAINERS}
    assert len(backends.CONTAINERS) == 7
    with pytest.raises(AttributeError, match="no_such_name"):
        aioaccess.no_such_name  # noqa: B018


def test_the_package_ships_the_sample_corpus_and_no_generator() -> None:
    assert (resources.files("aioaccess") / "_sample" / "sample.tar.gz").is_file()
    assert importlib.util.find_spec("aioaccess.corpus") is None


_REDIS = "redis:// needs the 'redis' extra: pip install 'aioaccess[redis]'"
_S3 = "s3:// needs the 's3' extra: pip install 'aioaccess[s3]'"
_HTTP = "HTTP/TJSON (http-server, the HTTP clients) needs the 'http' extra: pip install 'aioaccess[http]'"
_METRICS = "--metrics needs the 'metrics' extra: pip install 'aioaccess[metrics]'"


@pytest.mark.parametrize(("missing", "module", "name", "message"), [
    (("redis",), "aioaccess", "RedisHashBackedCommunicationContainer", _REDIS),
    (("redis",), "aioaccess.handlers", "RedisHashBackedStoreHandler", _REDIS),
    (("aiobotocore",), "aioaccess", "S3BackedCommunicationContainer", _S3),
    (("aiohttp",), "aioaccess", "HTTPFetchCommunicationClientWrapper", _HTTP),
])
def test_the_api_names_the_missing_extra(missing: tuple[str, ...], module: str, name: str, message: str) -> None:
    code = (f"from aioaccess._extras import MissingExtra\ntry:\n    from {module} import {name}\n"
            "except MissingExtra as exc:\n    print(exc)\nelse:\n    print('imported')")
    result = _run(missing, code)
    assert result.stdout.strip() == message, result.stderr


_CLI = "from aioaccess.cli.main import main\nsys.exit(main(sys.argv[1:]))"


@pytest.mark.parametrize(("missing", "argv", "message"), [
    (("redis",), ["fetch-server", "redis://127.0.0.1:1/0"], _REDIS),
    (("aiobotocore", "botocore", "obstore"), ["fetch-server", "s3://bucket"], _S3),
    (("aiohttp",), ["http-server", "sample", "--cors-origin", "*"], _HTTP),
    (("prometheus_client",), ["fetch-server", "sample", "--metrics-port", "0"], _METRICS),
])
def test_the_cli_names_the_missing_extra(missing: tuple[str, ...], argv: list[str], message: str) -> None:
    result = _run(missing, _CLI, *argv, "--port", "0")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"aioaccess {argv[0]}: error: {message}"
    assert "Traceback" not in result.stderr


async def test_the_base_install_serves_the_sample_corpus(tmp_path: object) -> None:
    port = unused_port()
    argv = [sys.executable, "-c", _blocking(OPTIONAL, _CLI), "fetch-server", "sample", "--port", str(port)]
    with server_process(tmp_path, argv, port):
        async with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
            assert await client.getCommunicationCount() == 50
            ids = await client.getCommunicationIDs(0, 2)
            assert [c.id for c in (await client.fetch(aioaccess.FetchRequest(communicationIds=ids))).communications] \
                == ids


async def test_the_base_install_serves_a_serve_file_without_http(tmp_path: Path) -> None:
    fetch_port, store_port = unused_port(), unused_port()
    config = tmp_path / "serve.toml"
    config.write_text(f'[[services]]\nkind = "fetch"\nport = {fetch_port}\nsource = "sample"\n\n'
                      f'[[services]]\nkind = "store"\nport = {store_port}\ntarget = "{tmp_path / "inbox"}"\n')
    (tmp_path / "inbox").mkdir()
    argv = [sys.executable, "-c", _blocking(OPTIONAL, _CLI), "serve", str(config)]
    with server_process(tmp_path, argv, fetch_port):
        async with FetchCommunicationClientWrapper("127.0.0.1", fetch_port) as client:
            assert await client.getCommunicationCount() == 50
    with_http = tmp_path / "http.toml"
    with_http.write_text(f'[[services]]\nkind = "http"\nport = {unused_port()}\nsource = "sample"\n')
    result = _run(OPTIONAL, _CLI, "serve", str(with_http))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"aioaccess serve: error: {_HTTP}"
