"""Required fields: ``codec.validate`` against concrete-python's schema, and every store path refusing.

concrete-python writes a Communication whose nested struct lacks a required field without a word, and
then cannot read it back (``add_references_to_communication`` fails on a Sentence without its uuid).
So every store (Thrift server, HTTP/TJSON endpoint, store-client, directory/Redis/S3 handlers) must
refuse one with a ServicesException naming the struct and the field, and write nothing.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from typing import Any

import pytest
from concrete.util import read_communication_from_file
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms
from test_codec_interop import _all_concrete_structs, _required, apache_encode, fill_everything, our_class

from aioaccess import (
    DirectoryBackedStoreHandler,
    InvalidCommunication,
    RedisHashBackedStoreHandler,
    S3BackedStoreHandler,
    ServicesException,
    StoreCommunicationServiceWrapper,
    codec,
)
from aioaccess.client import StoreCommunicationClient
from aioaccess.codec import CodecError, compact
from aioaccess.http import serve_http
from aioaccess.schema import Communication, StoreCommunicationService
from aioaccess.server import Processor
from aioaccess.wire.messages import CALL, build_message, parse_header

pytestmark = pytest.mark.interop
CODECS = [pytest.param(compact, id="python"),
          pytest.param(pytest.importorskip("aioaccess.codec._speedups"), id="c")]
SENTENCE_UUID = r"Sentence\.uuid \(field 1\) is required but missing"


def _broken(comm_id: str, deep: bool = False) -> Any:
    """A concrete-python Communication whose first Sentence (or first Token, deeper) lacks a required field."""
    comm = concrete_comms(1, comm_id)[0]
    comm.id = comm_id
    sentence = comm.sectionList[0].sentenceList[0]
    if deep:
        sentence.tokenization.tokenList.tokenList[0].tokenIndex = None
    else:
        sentence.uuid = None
    return comm


@pytest.mark.parametrize("impl", CODECS)
@pytest.mark.parametrize("cls", _all_concrete_structs(), ids=lambda c: f"{c.__module__.split('.')[1]}.{c.__name__}")
def test_validate_knows_every_required_field_concrete_declares(impl: Any, cls: type) -> None:
    """concrete-python's generated ``validate()`` is the oracle for which fields are required."""
    ours = our_class(cls)
    full = fill_everything(cls, random.Random(cls.__name__))
    data = apache_encode(full)
    assert impl.validate(data, ours) == len(data)
    fids = {e[2]: e[0] for e in cls.thrift_spec if e is not None}
    for name in sorted(_required(cls)):
        # concrete-python writes it all the same
        data = apache_encode(cls(**{**{n: getattr(full, n) for n in fids}, name: None}))
        expected = rf"^{cls.__name__}\.{name} \(field {fids[name]}\) is required but missing"
        with pytest.raises(CodecError, match=expected):
            impl.validate(data, ours)
        impl.decode(data, ours)  # decoding stays lenient, as in Apache Thrift


@pytest.mark.parametrize("impl", CODECS)
def test_validate_finds_a_missing_field_at_any_depth(impl: Any) -> None:
    good = cp_write(concrete_comms(1)[0])
    assert impl.validate(good, Communication) == impl.skip(good) == len(good)
    with pytest.raises(CodecError, match=SENTENCE_UUID):
        impl.validate(cp_write(_broken("x")), Communication)
    with pytest.raises(CodecError, match=r"Token\.tokenIndex \(field 1\) is required but missing"):
        impl.validate(cp_write(_broken("x", deep=True)), Communication)
    # A required field holding another wire type is skipped by decode, so it is missing too.
    with pytest.raises(CodecError, match=r"Communication\.id \(field 1\) is required"):
        impl.validate(b"\x15\x02" + good[good.index(b"\x1c"):], Communication)


async def test_thrift_store_server_refuses_and_writes_nothing(store_server: Any, store_dir: str) -> None:
    good, bad, deep = concrete_comms(1, "good")[0], _broken("bad"), _broken("deep", deep=True)
    async with StoreCommunicationClient.connect("127.0.0.1", store_server.bound_port, timeout=10) as client:
        with pytest.raises(ServicesException, match=SENTENCE_UUID):
            await client.store_raw(cp_write(bad))
        with pytest.raises(ServicesException, match=r"Token\.tokenIndex"):
            await client.store_raw(cp_write(deep))
        await client.store_raw(cp_write(good))
    assert os.listdir(store_dir) == ["good-0.comm"]
    assert read_communication_from_file(os.path.join(store_dir, "good-0.comm")).id == "good-0"


async def test_concrete_python_client_gets_the_services_exception(store_server: Any, store_dir: str) -> None:
    from concrete.services.ttypes import ServicesException as CpServicesException
    from concrete.util.access_wrapper import StoreCommunicationClientWrapper

    def store() -> str:
        with StoreCommunicationClientWrapper("127.0.0.1", store_server.bound_port) as client:
            with pytest.raises(CpServicesException) as err:
                client.store(_broken("bad"))
            client.store(concrete_comms(1, "good")[0])
            return str(err.value.message)

    assert "Sentence.uuid" in await asyncio.to_thread(store)
    assert os.listdir(store_dir) == ["good-0.comm"]
    read_communication_from_file(os.path.join(store_dir, "good-0.comm"))


async def test_http_tjson_store_refuses_and_writes_nothing(store_dir: str) -> None:
    from concrete.services.ttypes import ServicesException as CpServicesException
    from concrete.util.access_wrapper import HTTPStoreCommunicationClientWrapper

    async with serve_http(store_handler=DirectoryBackedStoreHandler(store_dir, fsync=False)) as server:
        def store() -> str:
            with HTTPStoreCommunicationClientWrapper(server.url + "/store_http_endpoint/") as client:
                with pytest.raises(CpServicesException) as err:
                    client.store(_broken("bad"))
                client.store(concrete_comms(1, "good")[0])
                return str(err.value.message)

        message = await asyncio.to_thread(store)
    assert "Sentence.uuid (field 1) is required but missing, at Communication.sectionList[0].sentenceList[0]" in message
    assert os.listdir(store_dir) == ["good-0.comm"]
    read_communication_from_file(os.path.join(store_dir, "good-0.comm"))


async def test_store_client_counts_the_file_failed(tmp_path: Any, store_server: Any, store_dir: str) -> None:
    (tmp_path / "bad.comm").write_bytes(cp_write(_broken("bad")))
    (tmp_path / "good.comm").write_bytes(cp_write(concrete_comms(1, "good")[0]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aioaccess", "store-client", str(tmp_path / "bad.comm"), str(tmp_path / "good.comm"),
        "--host", "127.0.0.1", "-p", str(store_server.bound_port), "--no-progress",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1, err
    assert b"stored 1, failed 1" in out + err
    assert b"Sentence.uuid (field 1) is required but missing" in err
    assert os.listdir(store_dir) == ["good-0.comm"]


@pytest.fixture(params=["directory", pytest.param("redis", marks=pytest.mark.redis),
                        pytest.param("s3", marks=pytest.mark.s3)])
def handler(request: pytest.FixtureRequest, tmp_path: Any) -> tuple[Any, Any]:
    """(store handler, an async function listing what it wrote)."""
    if request.param == "directory":
        return DirectoryBackedStoreHandler(tmp_path, fsync=False), lambda: asyncio.sleep(0, os.listdir(tmp_path))
    if request.param == "redis":
        client, key = request.getfixturevalue("redis_client"), request.getfixturevalue("redis_key")
        return RedisHashBackedStoreHandler(client, key), lambda: client.hkeys(key)
    client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")

    async def listing() -> list[str]:
        return [o["Key"] for o in (await client.list_objects_v2(Bucket=bucket)).get("Contents", [])]

    return S3BackedStoreHandler(client, bucket), listing


async def test_every_store_handler_refuses_raw_and_objects(handler: tuple[Any, Any]) -> None:
    store, written = handler
    for deep in (False, True):
        bad = _broken("bad", deep)
        with pytest.raises(InvalidCommunication, match=r"Token\.tokenIndex" if deep else SENTENCE_UUID):
            await store.store_raw("bad", cp_write(bad))
        ours = codec.read_communication_from_buffer(cp_write(bad), add_references=False)
        with pytest.raises(InvalidCommunication, match=r"Token\.tokenIndex" if deep else SENTENCE_UUID):
            await store.store(ours)
    assert list(await written()) == []


async def test_wrapper_refusal_keeps_the_server_serving(store_dir: str) -> None:
    wrapper = StoreCommunicationServiceWrapper(DirectoryBackedStoreHandler(store_dir, fsync=False))
    async with wrapper.serving() as listener:
        async with StoreCommunicationClient.connect("127.0.0.1", listener.bound_port, timeout=10) as client:
            for _ in range(3):
                with pytest.raises(ServicesException):
                    await client.store_raw(cp_write(_broken("bad")))
            assert await client.alive()
    assert os.listdir(store_dir) == []


@pytest.mark.parametrize("tail", [
    b"\x25\x02\x00",  # store_args{1: Communication, 2: i32}: a field we do not know
    b"",  # no STOP of the arguments: the Communication's own is taken for it at first
])
async def test_store_arguments_the_handler_refuses_unscanned_are_read_as_before(store_dir: str, tail: bytes) -> None:
    """A StoreHandler checks a store call's argument bytes itself (``checks_raw``), unscanned by the server;
    when it refuses them the server slices the Communication out as it always did."""
    raw = cp_write(concrete_comms(1, "odd")[0])
    processor = Processor(StoreCommunicationService, DirectoryBackedStoreHandler(store_dir, fsync=False))
    reply = await processor.process(build_message("store", CALL, 9, b"\x1c" + raw + tail)[4:])
    header = parse_header(reply[4:])
    assert codec.decode(reply[4:], StoreCommunicationService.store_result, header.body_offset)[0].ex is None
    with open(os.path.join(store_dir, "odd-0.comm"), "rb") as f:
        assert f.read() == raw
