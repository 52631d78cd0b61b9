"""A real browser as the client: headless Chromium, Apache Thrift's JavaScript library, Apache's generated code.

``page.js`` (bundled here with esbuild, with code ``thrift --gen js:node`` generates from
``aioaccess/schema/*.thrift``) is served by ``aioaccess http-server --static-path``.  It fetches and stores
Communications over TJSON, then loads itself from a second origin to check the CORS rules.  The npm packages
come from ``npm ci`` in this directory (``tests/run.sh`` runs it); Chromium and the Thrift compiler are
Debian's ``chromium`` and ``thrift-compiler``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from _procs import aioaccess_server, unused_port
from aiohttp import web

from aioaccess import write_communication_to_buffer
from benchmarks.synthetic import make_corpus

pytestmark = pytest.mark.browser

HERE = Path(__file__).resolve().parent
SCHEMA = HERE.parent.parent / "aioaccess" / "schema"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {package} (tests/run.sh does)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def static_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """index.html + bundle.js: page.js, the library's browser build and the generated code, bundled."""
    modules = HERE / "node_modules"
    if not (modules / "thrift").is_dir() or not (modules / ".bin" / "esbuild").exists():
        pytest.fail("the npm packages are missing: run `npm ci` in tests/browser (tests/run.sh does)", pytrace=False)
    work = tmp_path_factory.mktemp("bundle")
    gen = work / "build" / "gen"
    gen.mkdir(parents=True)
    subprocess.run([_tool("thrift", "thrift-compiler"), "-r", "--gen", "js:node", "-out", os.fspath(gen),
                    os.fspath(SCHEMA / "access.thrift")], check=True, timeout=60)
    for name in ("page.js", "shim.js", "index.html"):
        shutil.copy(HERE / name, work / name)
    static = work / "static"
    static.mkdir()
    shutil.copy(HERE / "index.html", static / "index.html")
    subprocess.run([os.fspath(modules / ".bin" / "esbuild"), "page.js", "--bundle", "--platform=browser",
                    "--inject:shim.js", "--define:global=globalThis", "--outfile=static/bundle.js",
                    "--log-level=error"], cwd=work, check=True, timeout=60, env={**os.environ, "NODE_PATH":
                                                                                 os.fspath(modules)})
    return os.fspath(static)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    """Communications written by concrete-python (one with non-ASCII text), and one with every field ("edge")."""
    from concrete.util import create_comm
    from concrete.util import write_communication_to_buffer as cp_write

    raws = {"unicode": cp_write(create_comm("unicode", "Grüße aus Köln, 東京 and 🎉.\n\nSecond section."))}
    for i in range(2):
        raws[f"doc-{i}"] = cp_write(create_comm(f"doc-{i}", f"Document {i} says hello.\nTwo sentences.\n\nAnd more."))
    edge = next(make_corpus(1, size=3000, full=True))  # every field, extreme values: a negative i64 in a list
    edge.id = "edge"
    raws[edge.id] = write_communication_to_buffer(edge)
    path = tmp_path / "comms"
    path.mkdir()
    for comm_id, raw in raws.items():
        (path / f"{comm_id}.comm").write_bytes(raw)
    return os.fspath(path), raws


class Origin:
    """The second origin: serves the same page and collects the reports every page POSTs."""

    def __init__(self, static: str) -> None:
        self.reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.app = web.Application()
        self.app.router.add_post("/report", self.report)
        self.app.router.add_static("/", static)

    async def report(self, request: web.Request) -> web.Response:
        await self.reports.put(json.loads(await request.read()))
        return web.Response(text="ok")


@pytest.fixture
async def second_origin(static_dir: str) -> AsyncIterator[tuple[Origin, int]]:
    origin = Origin(static_dir)
    runner = web.AppRunner(origin.app, access_log=None)
    await runner.setup()
    port = unused_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield origin, port
    finally:
        await runner.cleanup()


def _stored(path: str) -> dict[str, bytes]:
    return {name.removesuffix(".comm"): (Path(path) / name).read_bytes() for name in os.listdir(path)}


async def test_apache_thrift_javascript_in_chromium(tmp_path: Path, static_dir: str, corpus: tuple[str, dict],
                                                    second_origin: tuple[Origin, int]) -> None:
    chromium = _tool("chromium", "chromium")
    comm_dir, raws = corpus
    origin, origin_port = second_origin
    other = f"http://127.0.0.1:{origin_port}"
    store_a, store_b = tmp_path / "store-a", tmp_path / "store-b"
    store_a.mkdir()
    store_b.mkdir()
    # A: the page's own server; pages of `other` may fetch but not store.  B: `other` may store too.
    server_a = aioaccess_server(tmp_path, "http-server", comm_dir, "--store-path", os.fspath(store_a),
                                "--static-path", static_dir, "--cors-origin", other, "-l", "WARNING")
    server_b = aioaccess_server(tmp_path, "http-server", comm_dir, "--store-path", os.fspath(store_b),
                                "--cors-origin", other, "--cors-store", "-l", "WARNING")
    with server_a as port_a, server_b as port_b:
        a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        cross = other + "/index.html?" + urlencode({
            "phase": "cross", "fetch": a + "/fetch_http_endpoint/", "store": a + "/store_http_endpoint/",
            "store2": b + "/store_http_endpoint/", "id": "unicode", "report": other + "/report"})
        same = a + "/index.html?" + urlencode({
            "phase": "same", "fetch": a + "/fetch_http_endpoint/", "store": a + "/store_http_endpoint/",
            "id": "unicode", "report": other + "/report", "next": cross})
        with tempfile.TemporaryDirectory() as profile:
            browser = await asyncio.create_subprocess_exec(
                chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", same,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            try:
                async with asyncio.timeout(45):
                    reports = {}
                    while len(reports) < 2:
                        report = await origin.reports.get()
                        reports[report["phase"]] = report
            except TimeoutError:
                pytest.fail(f"the pages did not report within 45 s; got {reports}", pytrace=False)
            finally:
                browser.kill()
                await browser.wait()

    print(json.dumps(reports, indent=1)[:6000])  # shown when an assertion fails
    ids = sorted(raws)
    same_page, cross_page = reports["same"], reports["cross"]
    assert "exception" not in same_page and "exception" not in cross_page, (same_page, cross_page)
    # Same origin, the library's defaults: fetch works whatever the (missing) content type.
    assert same_page["count"] == {"ok": True, "value": len(ids)}
    assert sorted(same_page["ids"]["value"]) == ids
    assert sorted(same_page["fetched"]) == ids
    # Store with the defaults (no Content-Type): refused, and the library reports it instead of hanging.
    assert not same_page["storeDefaults"]["ok"] and "preflight" in same_page["storeDefaults"]["error"]
    # An explicit application/octet-stream or application/x-thrift stores; the bytes round-trip exactly.
    assert same_page["storeOctet"] == {"ok": True}  # (store returns undefined, which JSON leaves out)
    stored = same_page["stored"]
    assert all(stored[i]["ok"] for i in ids if i not in ("edge", "unicode")), stored
    # Apache's library writes the negative i64 of a list as -000000000001 (not JSON): the page gets an
    # error naming the call rather than a 400 it would wait on for ever.
    assert not stored["edge"]["ok"] and stored["edge"]["error"].startswith("Cannot read the store call"), stored
    # Second origin: fetch is allowed for it; store on A is not (preflight refused, or a simple request
    # refused for its content type); B (--cors-store) takes its store.
    assert cross_page["origin"] == other
    assert cross_page["fetched"] == ["unicode"]
    assert not cross_page["storePreflighted"]["ok"] and not cross_page["storeSimple"]["ok"], cross_page
    assert cross_page["stored2"] == {"ok": True}
    del raws["edge"]
    assert _stored(os.fspath(store_a)) == raws  # byte for byte, and nothing from the other origin ("evil")
    assert _stored(os.fspath(store_b)) == {"unicode": raws["unicode"]}

