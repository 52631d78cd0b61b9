"""The pure-Python compact codec (and whichever codec is active) against thriftpy2 and concrete-python."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from concrete.util import read_communication_from_buffer as cp_read
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from thriftpy2.protocol.compact import TCompactProtocol
from thriftpy2.transport import TMemoryBuffer

from aioaccess import codec
from aioaccess.codec import CodecError, compact
from aioaccess.schema import Communication, FetchRequest, FetchResult
from benchmarks.synthetic import make_communication

IMPLS = [pytest.param(compact, id="python")]
if codec.IMPLEMENTATION != "python":
    IMPLS.append(pytest.param(codec, id=f"active-{codec.IMPLEMENTATION}"))


def _real_raws() -> list[bytes]:
    raws = [cp_write(c) for c in concrete_comms(3, prefix="pure")]
    for i, full in enumerate((False, True)):
        # Richly annotated Communications, re-encoded by concrete-python so the bytes are the reference's.
        aio = make_communication(f"rich-{i}", size=6000, seed=i, full=full)
        raws.append(cp_write(cp_read(compact.encode(aio), add_references=False)))
    return raws


RAWS = _real_raws()


def tp_decode(raw: bytes, cls: type = Communication) -> Any:
    obj = cls()
    TCompactProtocol(TMemoryBuffer(raw)).read_struct(obj)
    return obj


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("raw", RAWS, ids=lambda r: f"{len(r)}B")
def test_skip_bounds_a_real_communication(impl: ModuleType, raw: bytes) -> None:
    assert impl.skip(raw) == len(raw)
    assert impl.skip(raw, 0) == len(raw)
    joined = b"\xaa" * 3 + raw + raw
    assert impl.skip(joined, 3) == 3 + len(raw)
    assert impl.skip(joined, 3 + len(raw)) == len(joined)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("raw", RAWS, ids=lambda r: f"{len(r)}B")
def test_read_string_field_agrees_with_thriftpy2(impl: ModuleType, raw: bytes) -> None:
    decoded = tp_decode(raw)
    for fid, spec in Communication.thrift_spec.items():
        if spec[0] == 11:  # string fields
            assert impl.read_string_field(raw, fid) == getattr(decoded, spec[1]), spec[1]
    assert impl.read_string_field(raw, 2) is None  # uuid is a struct, not a string
    assert impl.read_string_field(raw, 99) is None
    prefixed = b"\x00\x00" + raw
    assert impl.read_string_field(prefixed, 1, 2) == decoded.id


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("raw", RAWS, ids=lambda r: f"{len(r)}B")
def test_decode_encode_agree_with_thriftpy2_and_concrete(impl: ModuleType, raw: bytes) -> None:
    obj, end = impl.decode(raw, Communication, 0)
    assert end == len(raw)
    assert obj == tp_decode(raw)
    assert impl.encode(obj) == raw  # identical to concrete-python's bytes
    obj2, end2 = impl.decode(b"xy" + raw + b"tail", Communication, 2)
    assert (obj2, end2) == (obj, 2 + len(raw))


@pytest.mark.parametrize("impl", IMPLS)
def test_small_structs(impl: ModuleType) -> None:
    req = FetchRequest(communicationIds=["a", "ü", ""], auths="tok")
    raw = impl.encode(req)
    assert impl.skip(raw) == len(raw)
    assert impl.decode(raw, FetchRequest, 0) == (req, len(raw))
    assert impl.read_string_field(raw, 2) == "tok"
    empty = impl.encode(FetchResult(communications=[]))
    assert impl.decode(empty, FetchResult, 0)[0] == FetchResult(communications=[])


HOSTILE = [
    b"",  # no STOP
    b"\x18",  # string field, no length
    b"\x18\x05ab",  # string shorter than declared
    b"\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # varint longer than 10 bytes
    b"\x19\xf8\xff\xff\xff\xff\x0f",  # list claiming 2**32 strings
    b"\x1b\xff\xff\xff\xff\x0f\x88",  # map claiming 2**32 entries
    b"\x1c" * 200,  # structs nested 200 deep
    b"\x19\xf9" + b"\x01\xf9" * 100,  # lists nested 100 deep
    b"\x1d",  # unknown type 13
    b"\x1f\x00",  # unknown type 15
    b"\x17\x00\x00",  # truncated double
    b"\x18\x02\xff\xfe\x00",  # invalid UTF-8 id (field 1)
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("bad", HOSTILE, ids=lambda b: b[:8].hex() or "empty")
def test_hostile_inputs_raise_codec_error(impl: ModuleType, bad: bytes) -> None:
    with pytest.raises(CodecError):
        impl.decode(bad, Communication, 0)
    try:
        impl.skip(bad)
    except CodecError:
        pass
    try:
        impl.read_string_field(bad, 1)
    except CodecError:
        pass


@pytest.mark.parametrize("impl", IMPLS)
def test_deep_nesting_and_huge_sizes_are_refused_by_skip(impl: ModuleType) -> None:
    for bad in (b"\x1c" * 200, b"\x19\xf8\xff\xff\xff\xff\x0f", b"\x1b\xff\xff\xff\xff\x0f\x88"):
        with pytest.raises(CodecError):
            impl.skip(bad)


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_offsets(impl: ModuleType) -> None:
    raw = RAWS[0]
    for offset in (-1, len(raw) + 1):
        with pytest.raises(CodecError):
            impl.skip(raw, offset)


@pytest.mark.parametrize("impl", IMPLS)
def test_every_truncation_of_a_real_communication(impl: ModuleType) -> None:
    raw = RAWS[0]
    for cut in range(len(raw)):
        with pytest.raises(CodecError):
            impl.skip(raw[:cut])
        with pytest.raises(CodecError):
            impl.decode(raw[:cut], Communication, 0)


def _check_hostile(impl: ModuleType, data: bytes) -> None:
    try:
        end = impl.skip(data)
    except CodecError:
        end = None
    else:
        assert 0 < end <= len(data)
    try:
        obj, dend = impl.decode(data, Communication, 0)
    except CodecError:
        pass
    else:
        assert end == dend
        assert isinstance(obj, Communication)
    try:
        impl.read_string_field(data, 1)
    except CodecError:
        pass


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_random_bytes_only_raise_codec_error(impl: ModuleType, data: bytes) -> None:
    _check_hostile(impl, data)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=200, deadline=None)
@given(
    pos=st.integers(min_value=0, max_value=len(RAWS[0]) - 1),
    value=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=1, max_value=len(RAWS[0])),
)
def test_mutated_communications_only_raise_codec_error(impl: ModuleType, pos: int, value: int, cut: int) -> None:
    data = bytearray(RAWS[0])
    data[pos] = value
    _check_hostile(impl, bytes(data[:cut]))


def test_active_codec_is_reported() -> None:
    assert codec.IMPLEMENTATION in ("c", "python")
    assert codec.decode_struct(RAWS[0], Communication) == tp_decode(RAWS[0])
    assert codec.encode_struct(tp_decode(RAWS[0])) == RAWS[0]
    assert codec.write_communication_to_buffer(codec.read_communication_from_buffer(RAWS[1])) == RAWS[1]
