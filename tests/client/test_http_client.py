"""HTTP/TJSON client wrappers against aioaccess's endpoint and concrete-python's access-http-server.py."""

from __future__ import annotations

import os
from typing import Any

import pytest
from _procs import concrete_script, server_process, unused_port

from aioaccess import (
    CommunicationContainerFetchHandler,
    DirectoryBackedCommunicationContainer,
    DirectoryBackedStoreHandler,
    FetchRequest,
    HTTPFetchCommunicationClientWrapper,
    HTTPStoreCommunicationClientWrapper,
    ServicesException,
)
from aioaccess.client import HTTPStoreCommunicationClient
from aioaccess.http import serve_http


def _stored(path: str, comm_id: str) -> bytes:
    with open(os.path.join(path, f"{comm_id}.comm"), "rb") as f:
        return f.read()


async def _round_trip(base: str, comm_dir: str, cp_comms: list[Any], store_dir: str, refuses: bool = True) -> None:
    from concrete.util import create_comm, write_communication_to_buffer

    from aioaccess import read_communication_from_buffer

    ids = [c.id for c in cp_comms]
    async with HTTPFetchCommunicationClientWrapper(base + "/fetch_http_endpoint/") as client:
        assert await client.alive() is True
        assert await client.getCommunicationCount() == len(ids)
        assert sorted(await client.getCommunicationIDs(0, 100)) == sorted(ids)
        result = await client.fetch(FetchRequest(communicationIds=[ids[3], "missing", ids[0]]))
        assert [c.id for c in result.communications] == [ids[3], ids[0]]
        assert await client.fetch_raw([ids[1], ids[2]]) == [_stored(comm_dir, ids[1]), _stored(comm_dir, ids[2])]
    new = [create_comm("http-new-1", "stored über HTTP\n\nsecond"), create_comm("http-new-2", "raw")]
    async with HTTPStoreCommunicationClientWrapper(base + "/store_http_endpoint/") as store:
        assert isinstance(store, HTTPStoreCommunicationClient)
        await store.store(read_communication_from_buffer(write_communication_to_buffer(new[0])))
        await store.store_raw(write_communication_to_buffer(new[1]))
        if refuses:  # a declared exception reaches the caller
            with pytest.raises(ServicesException) as bad:
                await store.store(read_communication_from_buffer(write_communication_to_buffer(
                    create_comm("../escape", "x"))))
            assert "path separator" in bad.value.message
    for comm in new:
        assert _stored(store_dir, comm.id) == write_communication_to_buffer(comm)


async def test_http_wrappers_against_aioaccess(comm_dir: str, cp_comms: list[Any], store_dir: str) -> None:
    store = DirectoryBackedStoreHandler(store_dir, fsync=False)
    async with DirectoryBackedCommunicationContainer(comm_dir) as container:  # (closes its inotify watch)
        fetch = CommunicationContainerFetchHandler(container)
        async with serve_http(fetch_handler=fetch, store_handler=store) as server:
            await _round_trip(server.url, comm_dir, cp_comms, store_dir)


@pytest.mark.interop
async def test_http_wrappers_against_concrete_access_http_server(tmp_path: Any, comm_dir: str, cp_comms: list[Any],
                                                                 store_dir: str) -> None:
    port = unused_port()
    argv = [*concrete_script("access-http-server.py"), comm_dir, "--host", "127.0.0.1", "-p", str(port),
            "--store-path", store_dir, "--static-path", os.fspath(tmp_path), "-l", "warning"]
    with server_process(tmp_path, argv, port, clean_exit=False):
        await _round_trip(f"http://127.0.0.1:{port}", comm_dir, cp_comms, store_dir, refuses=False)


async def test_http_errors_are_clear(tmp_path: Any) -> None:
    port = unused_port()
    async with HTTPFetchCommunicationClientWrapper(f"http://127.0.0.1:{port}/fetch_http_endpoint/",
                                                   timeout=5) as client:
        with pytest.raises(ConnectionError, match=str(port)):
            await client.alive()
    async with serve_http(fetch_handler=CommunicationContainerFetchHandler({})) as server:
        async with HTTPFetchCommunicationClientWrapper(server.url + "/nowhere/") as client:
            with pytest.raises(ConnectionError, match="HTTP 404"):
                await client.getCommunicationCount()
