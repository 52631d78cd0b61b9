"""Processor dispatch: unknown methods, bad arguments, declared and undeclared handler errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from concrete.access.ttypes import FetchRequest as CpFetchRequest
from concrete.services.ttypes import ServicesException as CpServicesException
from concrete.util import write_communication_to_buffer as cp_write
from concrete.util.access_wrapper import FetchCommunicationClientWrapper as CpFetchClientWrapper
from concrete.util.access_wrapper import StoreCommunicationClientWrapper as CpStoreClientWrapper
from conftest import concrete_comms
from thrift.Thrift import TApplicationException as CpTApplicationException
from thriftpy2.thrift import TApplicationException

from aioaccess import (
    AioaccessError,
    FetchCommunicationClient,
    FetchCommunicationServiceWrapper,
    FetchRequest,
    NotImplementedException,
    ServiceInfo,
    ServicesException,
    StoreCommunicationServiceWrapper,
    codec,
)
from aioaccess.client import Connection
from aioaccess.exceptions import InvalidCommId, ProtocolError
from aioaccess.schema import FetchCommunicationService, StoreCommunicationService
from aioaccess.server import Processor
from aioaccess.server.dispatch import INTERNAL_ERROR, PROTOCOL_ERROR, UNKNOWN_METHOD
from aioaccess.wire.messages import (
    CALL,
    EXCEPTION,
    ONEWAY,
    REPLY,
    build_message,
    parse_application_exception,
    parse_header,
)


class Handler:
    """Fetch handler whose behaviour the test picks per call."""

    def __init__(self) -> None:
        self.fail_with: BaseException | None = None
        self.observed: list[tuple[str, str]] = []

    async def fetch(self, request: FetchRequest) -> Any:
        if self.fail_with is not None:
            raise self.fail_with
        from aioaccess import FetchResult

        return FetchResult(communications=[])

    async def getCommunicationCount(self) -> int:
        if self.fail_with is not None:
            raise self.fail_with
        return 3

    def getCommunicationIDs(self, offset: int, count: int) -> list[str]:  # a plain (sync) method
        if self.fail_with is not None:
            raise self.fail_with
        return ["a", "b", "c"][offset:][:count]

    def about(self) -> ServiceInfo:
        return ServiceInfo(name="sync-about", version="1")

    async def alive(self) -> bool:
        return True


def msg(name: str, body: bytes, mtype: int = CALL, seqid: int = 9) -> bytes:
    return build_message(name, mtype, seqid, body)[4:]


def args(name: str, *values: Any, service: Any = FetchCommunicationService) -> bytes:
    cls = getattr(service, f"{name}_args")
    spec = cls.thrift_spec
    return codec.encode(cls(**{spec[f][1]: v for f, v in zip(sorted(spec), values, strict=False)}))


def app_exception(reply: bytes) -> tuple[int, str]:
    h = parse_header(reply[4:])
    assert h.mtype == EXCEPTION
    return parse_application_exception(reply[4:], h.body_offset)


def result(reply: bytes, name: str, service: Any = FetchCommunicationService) -> Any:
    h = parse_header(reply[4:])
    assert (h.mtype, h.name, h.seqid) == (REPLY, name, 9)
    return codec.decode(reply[4:], getattr(service, f"{name}_result"), h.body_offset)[0]


@pytest.fixture
def handler() -> Handler:
    return Handler()


@pytest.fixture
def processor(handler: Handler) -> Processor:
    def observe(method: str, outcome: str, seconds: float, size: int) -> None:
        handler.observed.append((method, outcome))

    return Processor(FetchCommunicationService, handler, observer=observe)


async def test_unknown_method(processor: Processor) -> None:
    kind, text = app_exception(await processor.process(msg("store", b"\x00")))
    assert kind == UNKNOWN_METHOD == TApplicationException.UNKNOWN_METHOD
    assert "store" in text


async def test_method_the_handler_lacks_is_unknown() -> None:
    class Partial:
        async def alive(self) -> bool:
            return True

    p = Processor(FetchCommunicationService, Partial())
    kind, _ = app_exception(await p.process(msg("getCommunicationCount", b"\x00")))
    assert kind == UNKNOWN_METHOD
    assert result(await p.process(msg("alive", b"\x00")), "alive").success is True


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("getCommunicationIDs", b"\x16"),  # truncated i64
        ("getCommunicationIDs", b"\x16\x02"),  # no STOP
        ("getCommunicationIDs", b"\x1f\x00"),  # unknown compact type 15
        ("fetch", b"\x1c\x19\x88\xff"),  # list of 8 strings, truncated
        ("fetch", b"\x1c\x19\x08"),  # list header missing
        ("fetch", b"\x1c\x19\xf8\xff\xff\xff\xff\x0f"),  # absurd list size
        ("fetch", b"\x1c\x19\x18\x02\xff\xfe\x00\x00"),  # id not UTF-8
        ("fetch", b"\x1c\x35\x02\x19\x18\x01a"),  # slow path, truncated
    ],
)
async def test_garbage_arguments_give_protocol_error(processor: Processor, handler: Handler,
                                                     name: str, body: bytes) -> None:
    kind, text = app_exception(await processor.process(msg(name, body)))
    assert kind == PROTOCOL_ERROR
    assert name in text
    assert handler.observed == [(name, "error")]


@pytest.mark.parametrize("bad", [b"", b"\x82", b"\x80\x01\x00\x01\x00\x00\x00\x05fetch"])
async def test_unreadable_header_is_a_protocol_error_for_the_connection(processor: Processor, bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        await processor.process(bad)


@pytest.mark.parametrize("mtype", [REPLY, EXCEPTION])
async def test_non_call_message_types_are_refused(processor: Processor, mtype: int) -> None:
    with pytest.raises(ProtocolError):
        await processor.process(msg("alive", b"\x00", mtype=mtype))


async def test_oneway_gets_no_reply(processor: Processor, handler: Handler) -> None:
    assert await processor.process(msg("alive", b"\x00", mtype=ONEWAY)) is None
    assert handler.observed == [("alive", "ok")]


@pytest.mark.parametrize(
    "error",
    [
        ServicesException(message="backend down"),
        InvalidCommId("../x", "id contains a path separator"),
        AioaccessError("backend down"),
    ],
)
async def test_declared_exception(processor: Processor, handler: Handler, error: Exception) -> None:
    handler.fail_with = error
    reply = await processor.process(msg("fetch", args("fetch", FetchRequest(communicationIds=["x"]))))
    ex = result(reply, "fetch").ex
    assert isinstance(ex, ServicesException)
    assert ex.message == (error.message if isinstance(error, ServicesException) else str(error))
    assert handler.observed == [("fetch", "exception")]


async def test_not_implemented_is_declared_where_the_method_says_so(processor: Processor, handler: Handler) -> None:
    handler.fail_with = NotImplementedException(message="no ids here")
    ex = result(await processor.process(msg("getCommunicationCount", b"\x00")), "getCommunicationCount").ex
    assert isinstance(ex, NotImplementedException) and ex.message == "no ids here"


@pytest.mark.parametrize("error", [ServicesException(message="redis down"), AioaccessError("redis down")])
async def test_errors_a_method_does_not_declare_are_internal_errors(processor: Processor, handler: Handler,
                                                                    error: Exception) -> None:
    # getCommunicationCount declares only NotImplementedException: a failing
    # backend must not be reported as "not implemented".
    handler.fail_with = error
    kind, text = app_exception(await processor.process(msg("getCommunicationCount", b"\x00")))
    assert kind == INTERNAL_ERROR and "redis down" in text
    assert handler.observed == [("getCommunicationCount", "error")]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyError("k"), ZeroDivisionError()])
async def test_undeclared_exception_is_internal_error(processor: Processor, handler: Handler,
                                                      error: Exception) -> None:
    handler.fail_with = error
    kind, text = app_exception(await processor.process(msg("getCommunicationIDs", args("getCommunicationIDs", 0, 2))))
    assert kind == INTERNAL_ERROR
    assert "getCommunicationIDs" in text and type(error).__name__ in text
    assert handler.observed == [("getCommunicationIDs", "error")]
    handler.fail_with = None
    assert result(await processor.process(msg("getCommunicationIDs", args("getCommunicationIDs", 1, 5))),
                  "getCommunicationIDs").success == ["b", "c"]


async def test_sync_handler_methods(processor: Processor) -> None:
    info = result(await processor.process(msg("about", b"\x00")), "about").success
    assert info.name == "sync-about"
    ids = result(await processor.process(msg("getCommunicationIDs", args("getCommunicationIDs", 0, 2))),
                 "getCommunicationIDs").success
    assert ids == ["a", "b"]


async def test_void_method_replies_with_empty_result() -> None:
    class Store:
        def __init__(self) -> None:
            self.got: list[Any] = []

        def store(self, communication: Any) -> None:  # sync, and object-based (no store_raw)
            self.got.append(communication)

    comm = codec.read_communication_from_buffer(cp_write(concrete_comms(1)[0]))
    store = Store()
    p = Processor(StoreCommunicationService, store)
    reply = await p.process(msg("store", args("store", comm, service=StoreCommunicationService)))
    assert result(reply, "store", StoreCommunicationService).ex is None
    assert [c.id for c in store.got] == [comm.id]


# -- over real sockets, as concrete-python's client sees it ---------------------


@pytest.fixture
async def live(handler: Handler) -> Any:
    async with FetchCommunicationServiceWrapper(handler).serving() as listener:
        yield listener


def _cp_call(port: int, fn: Any, wrapper: Any = CpFetchClientWrapper) -> Any:
    with wrapper("127.0.0.1", port) as client:
        return fn(client)


@pytest.mark.interop
async def test_concrete_python_sees_unknown_method(live: Any) -> None:
    comm = concrete_comms(1)[0]
    with pytest.raises(CpTApplicationException) as info:
        await asyncio.to_thread(_cp_call, live.bound_port, lambda c: c.store(comm), CpStoreClientWrapper)
    assert info.value.type == CpTApplicationException.UNKNOWN_METHOD


@pytest.mark.interop
async def test_concrete_python_sees_declared_and_internal_errors_and_server_survives(live: Any,
                                                                                   handler: Handler) -> None:
    port = live.bound_port
    handler.fail_with = InvalidCommId("a/b", "id contains a path separator")
    with pytest.raises(CpServicesException) as declared:
        await asyncio.to_thread(_cp_call, port, lambda c: c.fetch(CpFetchRequest(communicationIds=["a/b"])))
    assert "path separator" in declared.value.message

    handler.fail_with = RuntimeError("kaboom")
    with pytest.raises(CpTApplicationException) as internal:
        await asyncio.to_thread(_cp_call, port, lambda c: c.getCommunicationCount())
    assert internal.value.type == CpTApplicationException.INTERNAL_ERROR
    assert "kaboom" in internal.value.message

    handler.fail_with = None
    assert await asyncio.to_thread(_cp_call, port, lambda c: c.getCommunicationCount()) == 3
    assert await asyncio.to_thread(_cp_call, port, lambda c: c.getCommunicationIDs(1, 1)) == ["b"]


async def test_errors_keep_the_connection_usable(live: Any, handler: Handler) -> None:
    async with FetchCommunicationClient.connect("127.0.0.1", live.bound_port, timeout=5) as client:
        handler.fail_with = RuntimeError("x")
        with pytest.raises(TApplicationException) as info:
            await client.getCommunicationCount()
        assert info.value.type == INTERNAL_ERROR
        handler.fail_with = ServicesException(message="nope")
        with pytest.raises(ServicesException):
            await client.fetch(FetchRequest(communicationIds=["a"]))
        handler.fail_with = None
        assert await client.getCommunicationCount() == 3
        conn = client.transport
        # garbage arguments on the same connection: a PROTOCOL_ERROR answer, connection kept
        reply = await conn.call(build_message("getCommunicationIDs", CALL, 5, b"\x16"))
        h = parse_header(reply)
        assert h.mtype == EXCEPTION
        assert parse_application_exception(reply, h.body_offset)[0] == PROTOCOL_ERROR
        assert await client.alive() is True


async def test_unreadable_message_closes_only_that_connection(live: Any) -> None:
    async with FetchCommunicationClient.connect("127.0.0.1", live.bound_port, timeout=5) as other:
        conn = Connection("127.0.0.1", live.bound_port, timeout=5)
        with pytest.raises(ConnectionError):
            await conn.call(b"\x00\x00\x00\x05hello")
        await conn.aclose()
        assert await other.alive() is True


async def test_store_service_rejects_fetch_calls(tmp_path: Any) -> None:
    class Store:
        async def store_raw(self, comm_id: str | None, raw: bytes) -> None:
            raise AssertionError("not reached")

    async with StoreCommunicationServiceWrapper(Store()).serving() as listener:
        async with FetchCommunicationClient.connect("127.0.0.1", listener.bound_port, timeout=5) as client:
            with pytest.raises(TApplicationException) as info:
                await client.fetch_raw(["x"])
            assert info.value.type == UNKNOWN_METHOD
            with pytest.raises(TApplicationException):
                await client.alive()  # the handler has no alive() either


def test_processor_lists_every_service_method(processor: Processor) -> None:
    assert set(processor.methods) == {"fetch", "getCommunicationIDs", "getCommunicationCount", "about", "alive"}


async def test_fetch_handler_without_raw_uses_objects(processor: Processor) -> None:
    reply = await processor.process(msg("fetch", args("fetch", FetchRequest(communicationIds=["zz"]))))
    assert result(reply, "fetch").success.communications == []


# Both codecs refuse a missing required field: the call is answered as an INTERNAL_ERROR,
# never as a PROTOCOL_ERROR, and the server serves on.


async def test_unencodable_return_value_is_internal_error_not_protocol_error() -> None:
    class Bad:
        async def about(self) -> ServiceInfo:
            return ServiceInfo()  # required name missing

        async def getCommunicationCount(self) -> Any:
            return "many"

    p = Processor(FetchCommunicationService, Bad())
    reply = await p.process(msg("about", b"\x00"))
    kind, text = app_exception(reply)
    assert kind == INTERNAL_ERROR and "cannot be encoded" in text
    kind, _ = app_exception(await p.process(msg("getCommunicationCount", b"\x00")))
    assert kind == INTERNAL_ERROR


async def test_unencodable_declared_exception_is_internal_error(processor: Processor, handler: Handler) -> None:
    handler.fail_with = ServicesException()  # required message missing
    reply = await processor.process(msg("fetch", args("fetch", FetchRequest(communicationIds=[]))))
    kind, text = app_exception(reply)
    assert kind == INTERNAL_ERROR and "ServicesException" in text


async def test_unencodable_exception_over_the_wire_keeps_the_connection(live: Any, handler: Handler) -> None:
    async with FetchCommunicationClient.connect("127.0.0.1", live.bound_port, timeout=5) as client:
        handler.fail_with = ServicesException()
        with pytest.raises(TApplicationException):
            await client.fetch(FetchRequest(communicationIds=["a"]))
        handler.fail_with = None
        assert await client.getCommunicationCount() == 3


class RawStore:
    def __init__(self) -> None:
        self.got: list[tuple[str | None, bytes]] = []

    async def store_raw(self, comm_id: str | None, raw: bytes) -> None:
        if comm_id is None:
            raise InvalidCommId("None", "the Communication has no id")
        self.got.append((comm_id, raw))


@pytest.mark.parametrize(
    "body",
    [
        b"\x00",  # no Communication at all
        b"\x15\x02\x00",  # an i32 where the Communication should be
        b"\x1c\x18\x02id",  # Communication truncated
        b"\x1c" * 100,  # nested far too deep
    ],
)
async def test_store_fast_path_refuses_malformed_arguments(body: bytes) -> None:
    store = RawStore()
    p = Processor(StoreCommunicationService, store)
    kind, _ = app_exception(await p.process(msg("store", body)))
    assert kind == PROTOCOL_ERROR
    assert store.got == []


async def test_store_fast_path_passes_the_bytes_as_they_arrived() -> None:
    store = RawStore()
    p = Processor(StoreCommunicationService, store)
    raw = cp_write(concrete_comms(1, prefix="fast")[0])
    reply = await p.process(msg("store", b"\x1c" + raw + b"\x00"))
    assert result(reply, "store", StoreCommunicationService).ex is None
    assert store.got == [("fast-0", raw)]
    # A Communication without an id reaches the handler as None, and its refusal is declared.
    no_id = b"\x1c" + raw[raw.index(b"\x1c"):] + b"\x00"  # drop field 1 (the id) from the front
    ex = result(await p.process(msg("store", no_id)), "store", StoreCommunicationService).ex
    assert isinstance(ex, ServicesException) and "no id" in ex.message


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (b"\x1c\x00\x00", True),  # FetchRequest without its (required) ids
        (b"\x1c\x19\x08\x00\x00", True),  # empty id list
        (b"\x1c\x28\x0aonly-auths\x00\x00", True),  # auths, no ids
        (b"\x00", False),  # no FetchRequest at all
    ],
    ids=["no-ids", "empty", "auths-only", "no-request"],
)
async def test_fetch_fast_path_with_missing_parts(body: bytes, ok: bool) -> None:
    from aioaccess import CommunicationContainerFetchHandler

    raw = cp_write(concrete_comms(1)[0])
    p = Processor(FetchCommunicationService, CommunicationContainerFetchHandler({"comm-0": raw}))
    reply = await p.process(msg("fetch", body))
    h = parse_header(reply[4:])
    if ok:
        assert result(reply, "fetch").success.communications == []
    else:
        assert h.mtype == EXCEPTION
        assert parse_application_exception(reply[4:], h.body_offset)[0] == PROTOCOL_ERROR
