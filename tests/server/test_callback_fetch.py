"""The one parse of the usual framed fetch call (fast and callback routes) agrees with ``parse_fetch_call``."""

from __future__ import annotations

from concrete.access import FetchCommunicationService as CpFetchService
from concrete.access.ttypes import FetchRequest as CpFetchRequest
from hypothesis import given, settings
from hypothesis import strategies as st
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.transport.TTransport import TFramedTransport, TMemoryBuffer

from aioaccess.exceptions import ProtocolError
from aioaccess.wire.fetch_call import parse_fetch_call, usual_fetch_call


def framed_call(ids: list[str], seqid: int) -> bytes:
    """A framed fetch CALL as concrete-python's client writes it."""
    buf = TMemoryBuffer()
    client = CpFetchService.Client(TCompactProtocol(TFramedTransport(buf)))
    client._seqid = seqid
    client.send_fetch(CpFetchRequest(communicationIds=ids))
    return buf.getvalue()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=140), max_size=16), st.integers(-(2**31), 2**31 - 1),
       st.integers(0, 1 << 16), st.integers(0, 255))
def test_matches_only_what_parse_fetch_call_reads_the_same(ids: list[str], seqid: int, where: int, byte: int) -> None:
    frame = framed_call(ids, seqid)
    got = usual_fetch_call(frame, 4)
    assert got is None or got == parse_fetch_call(frame[4:]) == (seqid, ids)
    if len(ids) == 1 and len(ids[0].encode()) < 128 and 0 <= seqid < 128:
        assert got == (seqid, ids)  # the usual one-id call is matched in place
    changed = bytearray(frame)
    changed[4 + where % (len(frame) - 4)] = byte  # one byte changed after the length: never a different answer
    got = usual_fetch_call(bytes(changed), 4)
    if got is not None:
        try:
            assert got == parse_fetch_call(bytes(changed[4:]))
        except ProtocolError:  # pragma: no cover - a matched call is one parse_fetch_call reads
            raise AssertionError(f"matched {got} where parse_fetch_call refuses {bytes(changed)!r}") from None
