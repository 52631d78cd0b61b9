"""TFramedTransport framing without I/O: every split, many frames per chunk, bad lengths."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aioaccess.exceptions import FrameTooLarge, ProtocolError
from aioaccess.wire.framing import DEFAULT_MAX_FRAME_SIZE, FrameDecoder, frame

PAYLOADS = [b"a", b"hello", bytes(range(256)) * 3, b"\x00\x00\x00\x00", b"x" * 70_000]


def _feed_chunks(decoder: FrameDecoder, stream: bytes, cuts: list[int]) -> list[bytes]:
    out: list[bytes] = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        out.extend(decoder.feed(stream[prev:cut]))
        prev = cut
    return out


def test_frame_prefixes_big_endian_length() -> None:
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert frame(bytearray(b"\x01" * 300)) == b"\x00\x00\x01\x2c" + b"\x01" * 300


def test_default_limit_is_documented_64_mib() -> None:
    assert DEFAULT_MAX_FRAME_SIZE == 64 * 1024 * 1024
    assert FrameDecoder().max_frame_size == DEFAULT_MAX_FRAME_SIZE


@pytest.mark.parametrize("payload", [b"q", b"hello world", bytes(range(200))])
def test_every_single_split_point(payload: bytes) -> None:
    stream = frame(payload) + frame(payload[::-1])
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        assert _feed_chunks(decoder, stream, [cut]) == [payload, payload[::-1]]
        assert decoder.buffered == 0


def test_byte_at_a_time() -> None:
    stream = b"".join(frame(p) for p in PAYLOADS[:4])
    decoder = FrameDecoder()
    got: list[bytes] = []
    for i in range(len(stream)):
        got.extend(decoder.feed(stream[i : i + 1]))
    assert got == PAYLOADS[:4]
    assert decoder.buffered == 0


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_any_chunking_gives_the_same_frames(payloads: list[bytes], cuts: list[int], kind: type) -> None:
    stream = b"".join(frame(p) for p in payloads)
    cuts = [c for c in cuts if c <= len(stream)]
    decoder = FrameDecoder()
    out: list[bytes] = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        out.extend(decoder.feed(kind(stream[prev:cut])))
        prev = cut
    assert out == payloads
    assert all(type(f) is bytes for f in out)
    assert decoder.buffered == 0


def test_several_frames_in_one_chunk_and_a_partial_tail() -> None:
    stream = b"".join(frame(p) for p in PAYLOADS)
    decoder = FrameDecoder()
    tail = frame(b"tail-frame")
    assert decoder.feed(stream + tail[:7]) == PAYLOADS
    assert decoder.buffered == 7
    assert decoder.feed(tail[7:]) == [b"tail-frame"]
    assert decoder.buffered == 0


def test_frames_are_copies_not_views_of_the_input() -> None:
    data = bytearray(frame(b"abcd"))
    decoder = FrameDecoder()
    [got] = decoder.feed(data)
    data[4:8] = b"zzzz"
    assert got == b"abcd"


@pytest.mark.parametrize(
    ("header", "size"),
    [
        (b"\x00\x00\x00\x00", 0),
        (b"\xff\xff\xff\xff", -1),
        (b"\x80\x00\x00\x00", -(2**31)),
        (b"\x7f\xff\xff\xff", 2**31 - 1),
        ((1025).to_bytes(4, "big"), 1025),
    ],
)
@pytest.mark.parametrize("split", [None, 1, 3])
def test_bad_lengths_raise_before_buffering(header: bytes, size: int, split: int | None) -> None:
    decoder = FrameDecoder(max_frame_size=1024)
    with pytest.raises(FrameTooLarge) as info:
        if split is None:
            decoder.feed(header + b"x" * 10)
        else:
            assert decoder.feed(header[:split]) == []
            decoder.feed(header[split:] + b"x" * 10)
    assert isinstance(info.value, ProtocolError)
    assert info.value.size == size
    assert info.value.limit == 1024
    assert str(size) in str(info.value) and "1024" in str(info.value)


def test_bad_length_after_good_frames_in_one_chunk() -> None:
    decoder = FrameDecoder(max_frame_size=64)
    with pytest.raises(FrameTooLarge):
        decoder.feed(frame(b"ok") + (65).to_bytes(4, "big") + b"y" * 65)


def test_limit_is_inclusive() -> None:
    decoder = FrameDecoder(max_frame_size=16)
    assert decoder.feed(frame(b"z" * 16)) == [b"z" * 16]
    with pytest.raises(FrameTooLarge):
        decoder.feed(frame(b"z" * 17))


def test_declared_huge_frame_is_refused_from_its_header_alone() -> None:
    # A 64 MiB + 1 declaration is refused with only the 4 header bytes seen:
    # nothing of the body is ever buffered.
    decoder = FrameDecoder()
    with pytest.raises(FrameTooLarge):
        decoder.feed((DEFAULT_MAX_FRAME_SIZE + 1).to_bytes(4, "big"))
    assert decoder.buffered <= 4
