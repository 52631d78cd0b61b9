"""benchmarks.synthetic: deterministic, well-formed, roughly sized synthetic Communications."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import thriftpy2.thrift as tp

from aioaccess import schema
from benchmarks import synthetic as corpus


def _struct_classes(spec: Any) -> Iterator[type]:
    if isinstance(spec, type) and hasattr(spec, "thrift_spec"):
        yield spec
    elif isinstance(spec, tuple):
        for part in spec:
            yield from _struct_classes(part)


def reachable_fields(root: type) -> set[tuple[str, str]]:
    """(struct, field) for every field of every struct reachable from root."""
    seen: set[type] = set()
    out: set[tuple[str, str]] = set()
    todo = [root]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        for entry in cls.thrift_spec.values():
            out.add((cls.__name__, entry[1]))
            todo.extend(_struct_classes(tuple(entry[2:-1])))
    return out


def set_fields(obj: Any, out: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
    """(struct, field) for every field that is set somewhere in obj's object graph."""
    out = set() if out is None else out
    if isinstance(obj, list):
        for item in obj:
            set_fields(item, out)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            set_fields(key, out)
            set_fields(value, out)
    elif isinstance(obj, tp.TPayload):
        for entry in obj.thrift_spec.values():
            value = getattr(obj, entry[1])
            if value is not None:
                out.add((type(obj).__name__, entry[1]))
                set_fields(value, out)
    return out


def missing_required(obj: Any, path: str = "comm") -> list[str]:
    problems: list[str] = []
    if isinstance(obj, list):
        for i, item in enumerate(obj):
            problems += missing_required(item, f"{path}[{i}]")
    elif isinstance(obj, tp.TPayload):
        for entry in obj.thrift_spec.values():
            value = getattr(obj, entry[1])
            if value is None and entry[-1]:
                problems.append(f"{path}.{entry[1]}")
            problems += missing_required(value, f"{path}.{entry[1]}")
    return problems


def walk(obj: Any) -> Iterator[Any]:
    if isinstance(obj, list):
        for item in obj:
            yield from walk(item)
    elif isinstance(obj, tp.TPayload):
        yield obj
        for entry in obj.thrift_spec.values():
            yield from walk(getattr(obj, entry[1]))


def test_full_sets_every_reachable_field() -> None:
    comm = corpus.make_communication("full-1", size=2000, full=True)
    missing = reachable_fields(schema.Communication) - set_fields(comm)
    assert not missing, sorted(missing)


def test_communication_set_sets_every_reachable_field() -> None:
    comms = list(corpus.make_corpus(2, size=3000, full=True))
    cset = corpus.make_communication_set(comms)
    missing = reachable_fields(schema.CommunicationSet) - set_fields(cset)
    assert not missing, sorted(missing)
    assert not missing_required(cset)


def test_default_has_the_usual_annotations() -> None:
    comm = corpus.make_communication("plain-1")
    present = set_fields(comm)
    for needed in [
        ("Communication", "text"),
        ("Communication", "keyValueMap"),
        ("Communication", "lidList"),
        ("Section", "sentenceList"),
        ("Tokenization", "tokenList"),
        ("Tokenization", "tokenTaggingList"),
        ("Tokenization", "parseList"),
        ("Tokenization", "dependencyParseList"),
        ("EntityMentionSet", "mentionList"),
        ("EntitySet", "entityList"),
        ("SituationMentionSet", "mentionList"),
        ("SituationSet", "situationList"),
    ]:
        assert needed in present, needed
    tagging_types = {t.taggingType for t in walk(comm) if isinstance(t, schema.TokenTagging)}
    assert tagging_types == {"POS", "NER", "LEMMA"}
    # Without full=True the optional extras stay unset.
    assert comm.originalText is None and comm.sound is None and comm.communicationMetadata is None


@pytest.mark.parametrize("full", [False, True])
def test_required_fields_and_references(full: bool) -> None:
    comm = corpus.make_communication("ref-1", size=12000, full=full, seed=5)
    assert not missing_required(comm)
    objs = list(walk(comm))
    # Token text and text spans agree with the communication's text (and original text).
    for tok in (o for o in objs if isinstance(o, schema.Token) and o.textSpan is not None):
        assert comm.text[tok.textSpan.start : tok.textSpan.ending] == tok.text
        if tok.rawTextSpan is not None:
            assert comm.originalText[tok.rawTextSpan.start : tok.rawTextSpan.ending] == tok.text
    # Every UUID that names an object is unique; every mention reference resolves.
    named = [o.uuid.uuidString for o in objs if "uuid" in {e[1] for e in o.thrift_spec.values()} and o.uuid]
    assert len(named) == len(set(named))
    mention_ids = {m.uuid.uuidString for s in comm.entityMentionSetList for m in s.mentionList}
    for entity in comm.entitySetList[0].entityList:
        assert {u.uuidString for u in entity.mentionIdList} <= mention_ids
    tokenizations = {o.uuid.uuidString: o for o in objs if isinstance(o, schema.Tokenization)}
    for seq in (o for o in objs if isinstance(o, schema.TokenRefSequence)):
        tokens = tokenizations[seq.tokenizationId.uuidString].tokenList.tokenList
        assert all(0 <= i < len(tokens) for i in seq.tokenIndexList)
    for uuid in (o for o in objs if isinstance(o, schema.UUID)):
        parts = uuid.uuidString.split("-")
        assert [len(p) for p in parts] == [8, 4, 4, 4, 12] and parts[2][0] == "4"


@pytest.mark.parametrize(
    ("size", "full"), [(6000, False), (20000, False), (100000, False), (20000, True), (100000, True)]
)
def test_size_is_roughly_right(size: int, full: bool) -> None:
    # A sentence with its annotations costs about 2.5 KB, which bounds the precision.
    for i in range(5):
        n = corpus.encoded_size(corpus.make_communication(f"size-{i}", size=size, full=full, seed=i))
        assert 0.75 * size <= n <= 1.25 * size, (size, n)


@pytest.mark.parametrize("full", [False, True])
def test_tiny_size_gives_one_sentence(full: bool) -> None:
    comm = corpus.make_communication("tiny", size=10, full=full)
    # One text sentence (plus, with full=True, the lattice sentence).
    assert sum(len(s.sentenceList) for s in comm.sectionList) == 1 + full
    assert corpus.encoded_size(comm) < (12000 if full else 4000)


def test_deterministic() -> None:
    a = corpus.make_communication("det-1", size=8000, seed=7, full=True)
    b = corpus.make_communication("det-1", size=8000, seed=7, full=True)
    assert a == b
    assert corpus.encoded_size(a) == corpus.encoded_size(b)
    assert corpus.make_communication("det-1", size=8000, seed=8, full=True) != a
    assert corpus.make_communication("det-2", size=8000, seed=7, full=True) != a


def test_deterministic_across_processes() -> None:
    code = (
        "from thriftpy2.utils import serialize; from thriftpy2.protocol import TCompactProtocolFactory;"
        "from benchmarks.synthetic import make_communication;"
        "import sys, hashlib;"
        "c = make_communication('proc-1', size=5000, seed=3, full=True);"
        "sys.stdout.write(hashlib.sha256(serialize(c, TCompactProtocolFactory())).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": seed}
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


def test_make_corpus() -> None:
    comms = list(corpus.make_corpus(5, size=3000, seed=1))
    assert [c.id for c in comms] == [f"comm-{i:06d}" for i in range(5)]
    assert len({c.uuid.uuidString for c in comms}) == 5
    assert comms[2] == corpus.make_communication("comm-000002", size=3000, seed=1)
    assert len({c.text for c in comms}) == 5
