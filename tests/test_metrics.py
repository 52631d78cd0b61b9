"""Prometheus metrics: scrape the endpoint of a real server after real calls."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    FetchCommunicationClient,
    Server,
)
from aioaccess.client import TApplicationException
from aioaccess.metrics import ServerMetrics
from aioaccess.schema import FetchCommunicationService
from aioaccess.server import Processor


class BrokenCount(CommunicationContainerFetchHandler):
    """A fetch handler whose storage fails on ``getCommunicationCount``."""

    async def getCommunicationCount(self) -> int:
        raise OSError("disk unplugged")


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def metered(comm_dir: str) -> AsyncIterator[tuple[int, int, str]]:
    """A fetch server (a working and a failing service) with metrics on HTTP; yields (fetch port, metrics URL)."""
    metrics = ServerMetrics()
    container = DirectoryBackedCommunicationContainer(comm_dir)
    server = Server()
    ok = server.add_service(Processor(FetchCommunicationService, CommunicationContainerFetchHandler(container),
                                      observer=metrics.observer("fetch")), "127.0.0.1", 0)
    broken = server.add_service(Processor(FetchCommunicationService, BrokenCount(container),
                                          observer=metrics.observer("broken")), "127.0.0.1", 0)
    metrics.track(server.state)
    await server.startup()
    runner = await metrics.start_http("127.0.0.1", 0)
    try:
        yield ok.bound_port, broken.bound_port, f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    finally:
        await runner.cleanup()
        await server.shutdown()


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        return await resp.text()


async def test_counters_move_with_calls(metered: Any, cp_comms: list[Any]) -> None:
    port, _, url = metered
    before = await scrape(url)
    assert value(before, "aioaccess_calls_total", service="fetch", method="fetch", outcome="ok") == 0
    ids = [c.id for c in cp_comms[:3]]
    async with FetchCommunicationClient.connect("127.0.0.1", port) as client:
        raws = await client.fetch_raw(ids)
        await client.fetch_raw(ids)
        assert await client.getCommunicationCount() == 10
        during = await scrape(url)
        assert value(during, "aioaccess_open_connections") == 1
    after = await scrape(url)
    assert value(after, "aioaccess_calls_total", service="fetch", method="fetch", outcome="ok") == 2
    assert value(after, "aioaccess_calls_total", service="fetch", method="getCommunicationCount", outcome="ok") == 1
    assert value(after, "aioaccess_call_duration_seconds_count", service="fetch", method="fetch") == 2
    assert value(after, "aioaccess_reply_bytes_total", service="fetch", method="fetch") > 2 * sum(map(len, raws))
    assert value(after, "aioaccess_connections_accepted_total") >= 1
    assert value(after, "aioaccess_open_connections") == 0
    assert value(after, "aioaccess_backend_errors_total", service="fetch", method="fetch") == 0


async def test_backend_errors_are_counted(metered: Any) -> None:
    _, broken_port, url = metered
    async with FetchCommunicationClient.connect("127.0.0.1", broken_port) as client:
        with pytest.raises(TApplicationException, match="disk unplugged"):
            await client.getCommunicationCount()
        assert await client.alive()
    text = await scrape(url)
    assert value(text, "aioaccess_calls_total", service="broken", method="getCommunicationCount",
                 outcome="error") == 1
    assert value(text, "aioaccess_backend_errors_total", service="broken", method="getCommunicationCount") == 1
    assert value(text, "aioaccess_calls_total", service="broken", method="alive", outcome="ok") == 1


def test_each_server_metrics_has_its_own_registry() -> None:
    a, b = ServerMetrics(), ServerMetrics()
    a.observer("fetch")("fetch", "ok", 0.01, 100)
    assert value(a.render().decode(), "aioaccess_calls_total", service="fetch", method="fetch", outcome="ok") == 1
    assert value(b.render().decode(), "aioaccess_calls_total", service="fetch", method="fetch", outcome="ok") == 0
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None


@pytest.mark.parametrize(("reply", "expected"), [
    (b'[1,"getCommunicationCount",2,1,{"0":{"i32":10}}]', ("getCommunicationCount", "ok")),
    (b'[1,"store",2,7,{}]', ("store", "ok")),
    (b'[1,"fetch",2,3,{"1":{"rec":{"1":{"str":"backend down"}}}}]', ("fetch", "exception")),
    (b'[1,"nope",3,3,{"1":{"str":"Unknown method"},"2":{"i32":1}}]', ("nope", "error")),
    (b"<html>404</html>", None),
])
def test_tjson_replies_are_classified(reply: bytes, expected: Any) -> None:
    from aioaccess.metrics import _tjson_outcome

    assert _tjson_outcome(reply) == expected
