"""The one-pass fetch CALL parser agrees with the general header + arguments parsers."""

from __future__ import annotations

import asyncio

import pytest
from concrete.access import FetchCommunicationService as CpFetchService
from concrete.access.ttypes import FetchRequest as CpFetchRequest
from hypothesis import given, settings
from hypothesis import strategies as st
from thrift.protocol.TCompactProtocol import TCompactProtocol, TCompactProtocolAccelerated
from thrift.transport.TTransport import TMemoryBuffer as CpMemoryBuffer

from aioaccess.exceptions import ProtocolError
from aioaccess.wire.messages import (
    REPLY,
    build_fetch_reply,
    build_fetch_reply_parts,
    build_message,
    parse_fetch_call,
    parse_fetch_request_ids,
    parse_header,
)


def cp_fetch_call(ids: list[str], auths: str | None = None, seqid: int = 0,
                  proto: type = TCompactProtocol) -> bytes:
    buf = CpMemoryBuffer()
    client = CpFetchService.Client(proto(buf))
    client._seqid = seqid
    client.send_fetch(CpFetchRequest(communicationIds=ids, auths=auths))
    return buf.getvalue()


def general(msg: bytes) -> tuple[int, list[str] | None]:
    header = parse_header(msg)
    return header.seqid, parse_fetch_request_ids(msg, header.body_offset)


@pytest.mark.parametrize("proto", [TCompactProtocol, TCompactProtocolAccelerated])
@pytest.mark.parametrize("ids", [[], ["a"], ["comm-000001"], [f"id-{i}" for i in range(14)],
                                 [f"id-{i}" for i in range(15)], ["x" * 127, "y" * 128, "ü✓" * 50]])
@pytest.mark.parametrize("seqid", [0, 1, 127, 128, 2**31 - 1, -1, -(2**31)])
def test_same_answer_as_the_general_parsers(ids: list[str], seqid: int, proto: type) -> None:
    msg = cp_fetch_call(ids, seqid=seqid, proto=proto)
    assert parse_fetch_call(msg) == (seqid, ids) == general(msg)


def test_auths_take_the_general_path_with_the_same_answer() -> None:
    msg = cp_fetch_call(["a", "b"], auths="token", seqid=5)
    assert parse_fetch_call(msg) == (5, ["a", "b"]) == general(msg)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=140), max_size=20), st.integers(-(2**31), 2**31 - 1))
def test_property_agrees_with_general_parsers(ids: list[str], seqid: int) -> None:
    msg = cp_fetch_call(ids, seqid=seqid)
    assert parse_fetch_call(msg) == (seqid, ids) == general(msg)


def test_other_messages_are_not_matched() -> None:
    assert parse_fetch_call(build_message("fetch", REPLY, 0, b"\x00")[4:]) is None
    assert parse_fetch_call(build_message("about", 1, 0, b"\x00")[4:]) is None
    assert parse_fetch_call(b"") is None
    assert parse_fetch_call(b"\x82\x21\x00\x05fetch\x1c\x00\x00") is None  # no ids: generic path decides


@pytest.mark.parametrize("cut", range(12, 30))
def test_truncated_calls_fail_like_the_general_parser(cut: int) -> None:
    msg = cp_fetch_call(["comm-000001"])[:cut]
    try:
        expected = general(msg)
    except ProtocolError:
        with pytest.raises(ProtocolError):
            parse_fetch_call(msg)
        return
    got = parse_fetch_call(msg)
    assert got is None or got == expected


def test_invalid_utf8_id_is_a_protocol_error() -> None:
    msg = cp_fetch_call(["ab"]).replace(b"\x02ab", b"\x02\xff\xfe")
    with pytest.raises(ProtocolError):
        parse_fetch_call(msg)


@pytest.mark.parametrize("seqid", [0, 127, 128, -1, 2**31 - 1])
@pytest.mark.parametrize("n", [0, 1, 2, 14, 15, 16])
def test_fetch_reply_frame_is_consistent(seqid: int, n: int) -> None:
    comms = [bytes([0x18, 0x01, 0x41 + i % 26, 0x00]) for i in range(n)]  # struct {1: "A"}
    framed = build_fetch_reply(seqid, comms)
    assert int.from_bytes(framed[:4], "big") == len(framed) - 4
    header = parse_header(framed[4:])
    assert (header.name, header.mtype, header.seqid) == ("fetch", REPLY, seqid)
    assert framed.endswith(b"".join(comms) + b"\x00\x00")


@pytest.mark.parametrize("n", [0, 1, 2, 15, 20])
@pytest.mark.parametrize("join_below", [0, 10, 1 << 30])
def test_fetch_reply_parts_write_the_same_bytes(n: int, join_below: int) -> None:
    comms = [bytes([0x18, 0x01, 0x41 + i % 26, 0x00]) * 1 for i in range(n)]
    parts = build_fetch_reply_parts(300, comms, join_below=join_below)
    joined = b"".join(parts) if isinstance(parts, list) else parts
    assert joined == build_fetch_reply(300, comms)
    assert isinstance(parts, bytes) == (4 * n < join_below)


@pytest.mark.interop
async def test_large_fetch_reply_written_in_parts_reaches_concrete_python() -> None:
    """Over 256 KB of Communications go out with writelines; concrete-python reads them byte for byte."""
    from concrete.util import create_comm
    from concrete.util import write_communication_to_buffer as cp_write
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper as CpFetchClientWrapper

    from aioaccess.handlers import CommunicationContainerFetchHandler
    from aioaccess.server.wrappers import FetchCommunicationServiceWrapper

    raws = {f"big-{i}": cp_write(create_comm(f"big-{i}", f"sentence {i} " * 9000)) for i in range(4)}
    assert sum(map(len, raws.values())) > 256 * 1024
    ids = ["big-2", "big-0", "nope", "big-3", "big-1"]

    def fetch(port: int) -> list[bytes]:
        with CpFetchClientWrapper("127.0.0.1", port) as client:
            return [cp_write(c) for c in client.fetch(CpFetchRequest(communicationIds=ids)).communications]

    async with FetchCommunicationServiceWrapper(CommunicationContainerFetchHandler(raws)).serving() as listener:
        got = await asyncio.to_thread(fetch, listener.bound_port)
    assert got == [raws[i] for i in ids if i in raws]
