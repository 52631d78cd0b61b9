"""add_references_to_communication against concrete-python's, object graph for object graph."""

from __future__ import annotations

import tarfile
from importlib import resources
from typing import Any

import pytest
from _graphs import outcome, reference_graph
from concrete.util import read_communication_from_buffer as cp_read
from concrete.util import write_communication_to_buffer as cp_write
from conftest import concrete_comms

from aioaccess import codec
from aioaccess.codec import compact
from aioaccess.schema import UUID, Communication
from benchmarks.synthetic import make_communication


def _sample_raws() -> list[bytes]:
    path = resources.files("aioaccess") / "_sample" / "sample.tar.gz"
    with tarfile.open(str(path)) as tar:
        return [tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()]  # type: ignore[union-attr]


def corpus_raws() -> list[bytes]:
    """Every kind of Communication the tests use: synthetic (plain and full), the sample corpus, concrete-python's."""
    kinds = [(2000, False), (6000, False), (30000, False), (6000, True), (40000, True)]
    raws = [codec.encode(make_communication(f"r{i}", size=size, seed=i, full=full))
            for i, (size, full) in enumerate(kinds)]
    raws += _sample_raws()
    raws += [cp_write(c) for c in concrete_comms(3)]
    return raws


RAWS = corpus_raws()


def test_references_equal_concrete_pythons_on_the_whole_corpus():
    assert len(RAWS) > 50
    linked = failed = 0
    for raw in RAWS:
        ours, theirs = outcome(codec.read_communication_from_buffer, raw), outcome(cp_read, raw)
        assert ours == theirs
        if isinstance(theirs, tuple):  # a forward reference concrete-python cannot resolve either
            failed += 1
            continue
        for path, attrs in ours.items():  # set in the order concrete-python sets them
            assert list(attrs) == list(theirs[path]), path
        linked += sum(len(a) for a in ours.values())
        comm = codec.read_communication_from_buffer(raw)
        sentence = comm.sectionList[0].sentenceList[0]
        assert sentence.tokenization.sentence is sentence  # the Communication's own objects
        assert comm.tokenizationForUUID[sentence.tokenization.uuid.uuidString] is sentence.tokenization
        assert codec.encode(comm) == raw  # references are not encoded
    assert linked > 3000 and failed <= 1


def test_pure_python_codec_gets_the_same_references():
    def read(raw: bytes) -> Any:
        comm = compact.decode(raw, Communication)[0]
        codec.add_references_to_communication(comm)
        return comm

    for raw in RAWS[:7]:
        assert outcome(read, raw) == outcome(cp_read, raw)


def test_add_references_default_and_opt_out():
    raw = RAWS[1]
    assert hasattr(codec.read_communication_from_buffer(raw), "sentenceForUUID")
    bare = codec.read_communication_from_buffer(raw, add_references=False)
    assert not hasattr(bare, "sentenceForUUID")
    assert bare == codec.decode(raw, Communication)[0]


def _dangling(kind: str) -> bytes:
    comm = make_communication("dangling", size=6000, seed=3)
    if kind == "entity":
        comm.entitySetList[0].entityList[0].mentionIdList.append(UUID(uuidString="nowhere"))
    elif kind == "mention-tokens":
        comm.entityMentionSetList[0].mentionList[0].tokens.tokenizationId = UUID(uuidString="nowhere")
    elif kind == "child":
        comm.entityMentionSetList[0].mentionList[0].childMentionIdList = [UUID(uuidString="nowhere")]
    elif kind == "no-situation-mentions":
        comm.situationSetList[0].situationList[0].mentionIdList = []
    return codec.encode(comm)


@pytest.mark.parametrize("kind", ["entity", "mention-tokens", "child", "no-situation-mentions"])
def test_dangling_uuids_behave_as_in_concrete_python(kind):
    raw = _dangling(kind)
    try:
        expected: Any = reference_graph(cp_read(raw))
    except KeyError as exc:
        expected = exc
    if isinstance(expected, KeyError):
        with pytest.raises(KeyError) as info:
            codec.read_communication_from_buffer(raw)
        assert info.value.args == expected.args
    else:
        assert reference_graph(codec.read_communication_from_buffer(raw)) == expected
