"""Compact message headers and the fetch fast path, checked against concrete-python and thriftpy2."""

from __future__ import annotations

from typing import Any

import pytest
from concrete.access import FetchCommunicationService as CpFetchService
from concrete.access.ttypes import FetchRequest as CpFetchRequest
from concrete.util import read_communication_from_buffer as cp_read
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms
from hypothesis import given, settings
from hypothesis import strategies as st
from thrift.protocol.TCompactProtocol import TCompactProtocol, TCompactProtocolAccelerated
from thrift.Thrift import TApplicationException as CpTApplicationException
from thrift.transport.TTransport import TMemoryBuffer as CpMemoryBuffer
from thriftpy2.protocol.compact import TCompactProtocol as TpCompactProtocol
from thriftpy2.thrift import TMessageType
from thriftpy2.transport import TMemoryBuffer as TpMemoryBuffer

from aioaccess import FetchCommunicationService, FetchRequest
from aioaccess.exceptions import ProtocolError
from aioaccess.wire.messages import (
    CALL,
    EXCEPTION,
    ONEWAY,
    REPLY,
    build_application_exception,
    build_fetch_reply,
    build_message,
    encode_varint,
    parse_application_exception,
    parse_fetch_request_ids,
    parse_header,
)

CP_PROTOCOLS = [TCompactProtocol, TCompactProtocolAccelerated]


def cp_fetch_call(ids: list[str], auths: str | None = None, proto: type = TCompactProtocol, seqid: int = 0) -> bytes:
    """A fetch call as concrete-python's client writes it (unframed)."""
    buf = CpMemoryBuffer()
    client = CpFetchService.Client(proto(buf))
    client._seqid = seqid
    client.send_fetch(CpFetchRequest(communicationIds=ids, auths=auths))
    return buf.getvalue()


def tp_fetch_call(ids: list[str] | None, auths: str | None = None, seqid: int = 7) -> bytes:
    """A fetch call as thriftpy2 writes it (unframed), from aioaccess's schema."""
    buf = TpMemoryBuffer()
    proto = TpCompactProtocol(buf)
    proto.write_message_begin("fetch", TMessageType.CALL, seqid)
    args = FetchCommunicationService.fetch_args(request=FetchRequest(communicationIds=ids, auths=auths))
    proto.write_struct(args)
    proto.write_message_end()
    return buf.getvalue()


# -- headers -----------------------------------------------------------------


@pytest.mark.parametrize("seqid", [0, 1, 127, 128, 2**31 - 1, -1, -(2**31)])
@pytest.mark.parametrize("mtype", [CALL, REPLY, EXCEPTION, ONEWAY])
def test_build_then_parse_header(seqid: int, mtype: int) -> None:
    framed = build_message("getCommunicationIDs", mtype, seqid, b"\x00")
    assert int.from_bytes(framed[:4], "big") == len(framed) - 4
    h = parse_header(framed[4:])
    assert (h.name, h.mtype, h.seqid) == ("getCommunicationIDs", mtype, seqid)
    assert framed[4 + h.body_offset :] == b"\x00"
    assert "getCommunicationIDs" in repr(h)


@pytest.mark.parametrize("proto", CP_PROTOCOLS)
@pytest.mark.parametrize("seqid", [0, 5, 300, 2**31 - 1])
def test_header_of_concrete_python_call(proto: type, seqid: int) -> None:
    msg = cp_fetch_call(["a"], proto=proto, seqid=seqid)
    h = parse_header(msg)
    assert (h.name, h.mtype, h.seqid) == ("fetch", CALL, seqid)


def test_header_agrees_with_thriftpy2_reader() -> None:
    msg = tp_fetch_call(["x"], seqid=123456)
    name, mtype, seqid = TpCompactProtocol(TpMemoryBuffer(msg)).read_message_begin()
    h = parse_header(msg)
    assert (h.name, h.mtype, h.seqid) == (name, mtype, seqid)


@pytest.mark.parametrize(
    "msg",
    [
        b"",
        b"\x82",
        b"\x82\x21\x00",
        b"\x80\x01\x00\x01",  # binary protocol
        b"\x82\x22\x00\x00",  # version 2
        b"\x82\x21\x80\x80\x80\x80\x80\x80",  # varint never ends
        b"\x82\x21\x00\x05fet",  # name truncated
        b"\x82\x21\x00\x85\x04" + b"a" * 600,  # name longer than the limit
        b"\x82\x21\x00\x02\xff\xfe",  # name is not UTF-8
        b"GET / HTTP/1.1\r\n",
    ],
)
def test_hostile_headers_raise_protocol_error(msg: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_header(msg)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_random_header_bytes_only_ever_raise_protocol_error(msg: bytes) -> None:
    try:
        h = parse_header(msg)
    except ProtocolError:
        return
    assert h.body_offset <= len(msg)
    assert isinstance(h.name, str)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_hostile_bytes_after_a_valid_prefix(tail: bytes) -> None:
    try:
        parse_header(b"\x82\x21" + tail)
    except ProtocolError:
        pass


# -- fetch request fast parser -------------------------------------------------

ID_LISTS = [
    [],
    ["one"],
    ["a", "b", "c"],
    [f"comm-{i}" for i in range(14)],
    [f"comm-{i}" for i in range(15)],  # long list header
    [f"id-{i}" * 3 for i in range(300)],
    ["ünïcödé-✓", "", "x" * 200],
]


@pytest.mark.parametrize("proto", CP_PROTOCOLS)
@pytest.mark.parametrize("auths", [None, "", "secret-token", "ä" * 150])
@pytest.mark.parametrize("ids", ID_LISTS, ids=lambda ids: f"{len(ids)}ids")
def test_fast_parser_agrees_with_concrete_python_encoding(ids: list[str], auths: str | None, proto: type) -> None:
    msg = cp_fetch_call(ids, auths, proto)
    assert parse_fetch_request_ids(msg, parse_header(msg).body_offset) == ids


@pytest.mark.parametrize("auths", [None, "token"])
@pytest.mark.parametrize("ids", ID_LISTS, ids=lambda ids: f"{len(ids)}ids")
def test_fast_parser_agrees_with_thriftpy2_encoding(ids: list[str], auths: str | None) -> None:
    msg = tp_fetch_call(ids, auths)
    assert parse_fetch_request_ids(msg, parse_header(msg).body_offset) == ids


@settings(max_examples=150, deadline=None)
@given(ids=st.lists(st.text(max_size=20), max_size=40), auths=st.none() | st.text(max_size=10))
def test_fast_parser_property(ids: list[str], auths: str | None) -> None:
    msg = cp_fetch_call(ids, auths)
    assert parse_fetch_request_ids(msg, parse_header(msg).body_offset) == ids


def test_fast_parser_declines_layouts_it_does_not_know() -> None:
    # fetch_args with field 2 instead of 1, and a FetchRequest with an unknown field 3
    assert parse_fetch_request_ids(b"\x2c\x00\x00", 0) is None
    assert parse_fetch_request_ids(b"\x1c\x35\x02\x00\x00", 0) is None
    # communicationIds as list<i32>
    assert parse_fetch_request_ids(b"\x1c\x19\x15\x02\x00\x00", 0) is None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=48))
def test_fast_parser_on_hostile_bytes(body: bytes) -> None:
    try:
        parse_fetch_request_ids(body, 0)
    except ProtocolError:
        pass


@pytest.mark.parametrize("cut", range(1, 18))
def test_fast_parser_on_truncated_requests(cut: int) -> None:
    msg = cp_fetch_call(["abc", "de"], "zz")
    off = parse_header(msg).body_offset
    truncated = msg[: off + cut]
    try:
        parse_fetch_request_ids(truncated, off)
    except ProtocolError:
        pass


# -- fetch reply splicing --------------------------------------------------------


def cp_read_fetch_reply(framed: bytes, proto: type = TCompactProtocol) -> Any:
    assert int.from_bytes(framed[:4], "big") == len(framed) - 4
    client = CpFetchService.Client(proto(CpMemoryBuffer(framed[4:])))
    return client.recv_fetch()


@pytest.mark.parametrize("proto", CP_PROTOCOLS)
@pytest.mark.parametrize("n", [0, 1, 3, 14, 15, 40])
def test_fetch_reply_decoded_by_concrete_python(n: int, proto: type) -> None:
    comms = concrete_comms(n, prefix="reply")
    raws = [cp_write(c) for c in comms]
    result = cp_read_fetch_reply(build_fetch_reply(99, raws), proto)
    assert len(result.communications) == n
    # Equal as Communications, and byte for byte once re-encoded.
    assert result.communications == [cp_read(r, add_references=False) for r in raws]
    assert [cp_write(c) for c in result.communications] == raws
    for got, want in zip(result.communications, comms, strict=True):
        assert got.id == want.id and got.text == want.text and got.uuid == want.uuid


def test_fetch_reply_header() -> None:
    framed = build_fetch_reply(2**31 - 1, [])
    h = parse_header(framed[4:])
    assert (h.name, h.mtype, h.seqid) == ("fetch", REPLY, 2**31 - 1)


# -- application exceptions -----------------------------------------------------


@pytest.mark.parametrize("kind", [1, 6, 7])
@pytest.mark.parametrize("text", ["Unknown method 'nope'", "", "ünïcode ✓" * 30])
def test_application_exception_round_trip_and_concrete_python(kind: int, text: str) -> None:
    framed = build_application_exception("fetch", 42, kind, text)
    h = parse_header(framed[4:])
    assert (h.name, h.mtype, h.seqid) == ("fetch", EXCEPTION, 42)
    assert parse_application_exception(framed[4:], h.body_offset) == (kind, text)
    with pytest.raises(CpTApplicationException) as info:
        cp_read_fetch_reply(framed)
    assert info.value.type == kind
    assert info.value.message == text


def test_encode_varint() -> None:
    assert encode_varint(0) == b"\x00"
    assert encode_varint(127) == b"\x7f"
    assert encode_varint(128) == b"\x80\x01"
    assert encode_varint(2**32 - 1) == b"\xff\xff\xff\xff\x0f"
