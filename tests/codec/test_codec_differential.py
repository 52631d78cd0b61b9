"""The compiled and the pure-Python codec accept and reject exactly the same bytes, and agree on what they read.

Inputs are mutated Communications (concrete-python's and the full ``benchmarks/synthetic.py`` ones) and
mutated fetch/store call and reply messages: bytes flipped, inserted, deleted or truncated, varints
made over-long, lengths and element types rewritten.  For each, ``skip``, ``validate``, ``decode`` and
``read_string_field`` of both codecs must both raise CodecError, or both return equal results
(decoded objects compared by ``repr``, so NaN, bool/int and str/bytes count).
"""

from __future__ import annotations

from typing import Any

import pytest
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aioaccess import codec
from aioaccess.codec import CodecError, compact
from aioaccess.schema import Communication, FetchRequest, FetchResult, access
from aioaccess.wire.messages import build_message
from benchmarks import synthetic as corpus

C = pytest.importorskip("aioaccess.codec._speedups")  # as test_speedups.py: built whenever a compiler is there

FETCH, STORE = access.FetchCommunicationService, access.StoreCommunicationService
_COMMS = [*(codec.read_communication_from_buffer(cp_write(c)) for c in concrete_comms(2, "diff")),
          corpus.make_communication("diff-full", size=1500, seed=3, full=True)]
# (thriftpy2 class, valid bytes, offset of the struct): bodies alone and inside whole framed messages.
SEEDS: list[tuple[type, bytes, int]] = [(Communication, codec.encode(c), 0) for c in _COMMS]
for _name, _cls, _obj in [
    ("fetch", FETCH.fetch_args, FETCH.fetch_args(request=FetchRequest(communicationIds=["a", "bb", "ççç"]))),
    ("fetch", FETCH.fetch_result, FETCH.fetch_result(success=FetchResult(communications=_COMMS[:2]))),
    ("store", STORE.store_args, STORE.store_args(communication=_COMMS[0])),
]:
    _msg = build_message(_name, 1, 7, codec.encode(_obj))
    SEEDS.append((_cls, _msg, len(_msg) - len(codec.encode(_obj))))


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        value = fn(*args)
    except CodecError:
        return ("rejected", None)
    if isinstance(value, tuple):  # decode: (object, end)
        return ("accepted", (repr(value[0]), value[1]))
    return ("accepted", value)


def assert_codecs_agree(cls: type, data: bytes, offset: int) -> None:
    for name, args in [("skip", (data, offset)), ("validate", (data, cls, offset)), ("decode", (data, cls, offset)),
                       ("read_string_field", (data, 1, offset))]:
        c, py = _outcome(getattr(C, name), *args), _outcome(getattr(compact, name), *args)
        assert c == py, (name, cls.__name__, offset, data.hex())


@st.composite
def mutated(draw: Any) -> tuple[type, bytes, int]:
    cls, data, offset = draw(st.sampled_from(SEEDS))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(offset, max(offset, len(buf) - 1)))
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "overlong", "low-nibble"]))
        if kind == "flip" and pos < len(buf):
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and pos < len(buf):
            buf[pos] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x0F, 0xF9, 0x1D, 0x3C, 0xC0, 0xED]))
        elif kind == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        elif kind == "delete":
            del buf[pos : pos + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "overlong" and pos < len(buf):  # the same value as a longer varint
            buf[pos : pos + 1] = bytes([buf[pos] | 0x80]) + b"\x80" * draw(st.integers(0, 10)) + b"\x00"
        elif kind == "low-nibble" and pos < len(buf):  # another type in a field, list or map header
            buf[pos] = (buf[pos] & 0xF0) | draw(st.integers(0, 15))
    return cls, bytes(buf), offset


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
# Each once a difference (pure Python accepted, C refused): an over-long i32 varint; an i16 field id
# out of range; an empty list of element type 13.
@example((Communication, b"\x15\x80\x80\x80\x80\x80\x00\x00", 0))
@example((Communication, b"\x05\xff\xff\x7f\x00\x00", 0))
@example((Communication, b"\x19\x0d\x00", 0))
def test_codecs_agree_on_mutated_input(case: tuple[type, bytes, int]) -> None:
    assert_codecs_agree(*case)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_codecs_agree_on_the_seeds(seed: int) -> None:
    cls, data, offset = SEEDS[seed]
    assert C.validate(data, cls, offset) == len(data)
    assert_codecs_agree(cls, data, offset)
