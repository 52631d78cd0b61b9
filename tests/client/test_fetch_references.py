"""add_references on the containers and clients that hand out objects, against concrete-python's."""

from __future__ import annotations

import gc
import os
from typing import Any

import pytest
from _graphs import reference_graph
from concrete.util import read_communication_from_buffer as cp_read
from concrete.util.comm_container import DirectoryBackedCommunicationContainer as CPDirectoryContainer

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    FetchBackedCommunicationContainer,
    FetchCommunicationClient,
    FetchRequest,
    MemoryBackedCommunicationContainer,
    codec,
)
from aioaccess.client import HTTPFetchCommunicationClient
from aioaccess.http import HTTPServer, create_app

COMPILED = codec.IMPLEMENTATION == "c"


def stored(comm_dir: str, comm_id: str) -> bytes:
    with open(os.path.join(comm_dir, f"{comm_id}.comm"), "rb") as f:
        return f.read()


def check(comms: list[Any], comm_dir: str, references: bool) -> None:
    """Each Communication has concrete-python's references (or none), and is out of the cyclic GC."""
    for comm in comms:
        assert hasattr(comm, "sentenceForUUID") is references
        if references:
            assert reference_graph(comm) == reference_graph(cp_read(stored(comm_dir, comm.id)))
        assert gc.is_tracked(comm) is not COMPILED


async def test_containers_add_references_by_default_as_concrete_pythons_do(comm_dir: str, cp_comms: list[Any],
                                                                           tmp_path: Any) -> None:
    ids = [c.id for c in cp_comms]
    theirs = CPDirectoryContainer(comm_dir)
    ours = DirectoryBackedCommunicationContainer(comm_dir)
    assert ours.add_references is True
    for comm_id in ids[:3]:
        assert reference_graph(await ours.get(comm_id)) == reference_graph(theirs[comm_id])
    check(list((await ours.get_many(ids)).values()), comm_dir, True)
    bare = DirectoryBackedCommunicationContainer(comm_dir, (".comm",), False)  # concrete-python's position
    check([await bare.get(ids[0]), *(await bare.get_many(ids)).values()], comm_dir, False)

    concatenated = tmp_path / "all.comms"
    concatenated.write_bytes(b"".join(stored(comm_dir, i) for i in ids))
    async with MemoryBackedCommunicationContainer(os.fspath(concatenated)) as memory:
        check(list((await memory.get_many(ids)).values()), comm_dir, True)
    async with MemoryBackedCommunicationContainer(os.fspath(concatenated), add_references=False) as memory:
        check([await memory.get(ids[1])], comm_dir, False)


async def test_fetch_clients_add_none_unless_asked(fetch_server: Any, comm_dir: str, cp_comms: list[Any]) -> None:
    ids = [c.id for c in cp_comms]
    port = fetch_server.bound_port
    async with FetchCommunicationClient.connect("127.0.0.1", port) as client:
        check((await client.fetch(FetchRequest(communicationIds=ids))).communications, comm_dir, False)
        result = await client.fetch(FetchRequest(communicationIds=ids), add_references=True)
        check(result.communications, comm_dir, True)
        assert gc.is_tracked(result) is not COMPILED
    async with FetchBackedCommunicationContainer("127.0.0.1", port) as container:  # concrete-python adds none
        assert container.add_references is False
        check([await container.get(ids[0])], comm_dir, False)
    async with FetchBackedCommunicationContainer("127.0.0.1", port, add_references=True) as container:
        check(list((await container.get_many(ids)).values()), comm_dir, True)


async def test_http_fetch_client(comm_dir: str, cp_comms: list[Any]) -> None:
    ids = [c.id for c in cp_comms]
    handler = CommunicationContainerFetchHandler(DirectoryBackedCommunicationContainer(comm_dir))
    http = HTTPServer(create_app(handler), "127.0.0.1", 0)
    await http.start()
    try:
        async with HTTPFetchCommunicationClient(http.url + "/fetch_http_endpoint/") as client:
            check((await client.fetch(FetchRequest(communicationIds=ids))).communications, comm_dir, False)
            result = await client.fetch(FetchRequest(communicationIds=ids), add_references=True)
            check(result.communications, comm_dir, True)
    finally:
        await http.aclose()


@pytest.mark.parametrize("add_references", [False, True])
async def test_fetched_objects_stay_reclaimable(fetch_server: Any, cp_comms: list[Any], add_references: bool) -> None:
    import weakref

    async with FetchCommunicationClient.connect("127.0.0.1", fetch_server.bound_port) as client:
        result = await client.fetch(FetchRequest(communicationIds=[c.id for c in cp_comms]),
                                    add_references=add_references)
    sentence = result.communications[0].sectionList[0].sentenceList[0]
    refs = [weakref.ref(o) for o in (result, result.communications[0], sentence, sentence.tokenization)]
    del result, sentence
    gc.collect()
    assert [r() for r in refs] == [None] * 4


def test_containers_take_add_references_where_concrete_python_does() -> None:
    import inspect

    from concrete.util import comm_container as cp

    import aioaccess

    for name in ("DirectoryBackedCommunicationContainer", "ZipFileBackedCommunicationContainer",
                 "MemoryBackedCommunicationContainer", "RedisHashBackedCommunicationContainer",
                 "S3BackedCommunicationContainer"):
        theirs = list(inspect.signature(getattr(cp, name)).parameters.values())
        ours = list(inspect.signature(getattr(aioaccess, name)).parameters.values())
        t = next(i for i, p in enumerate(theirs) if p.name == "add_references")
        o = next(i for i, p in enumerate(ours) if p.name == "add_references")
        assert ours[o].default is theirs[t].default is True, name
        assert ours[o].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, name
        assert ours[o - 1].name == theirs[t - 1].name, name  # same place after the same argument
    fetch = inspect.signature(aioaccess.FetchBackedCommunicationContainer).parameters["add_references"]
    assert fetch.default is False and fetch.kind is inspect.Parameter.KEYWORD_ONLY
