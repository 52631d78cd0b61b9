"""Decoded objects and the cyclic GC: untracked where safe, nothing leaks, the caveat holds."""

from __future__ import annotations

import gc
import tracemalloc
import weakref

import pytest

from aioaccess import codec
from aioaccess.schema import Communication, FetchCommunicationService, FetchResult, ServicesException
from benchmarks.synthetic import make_communication

pytestmark = pytest.mark.skipif(codec.IMPLEMENTATION != "c", reason="the compiled codec's GC policy")
S = codec._impl
RAW = codec.encode(make_communication("gc", size=6000, seed=5))


def _tree(obj, seen=None):
    """Every list and struct of a decoded tree (schema fields and references alike)."""
    seen = {} if seen is None else seen
    if id(obj) in seen or isinstance(obj, type) or not (isinstance(obj, list | dict) or hasattr(obj, "thrift_spec")):
        return seen
    seen[id(obj)] = obj
    for child in gc.get_referents(obj):  # not vars(): that would make Python build an attribute dict
        _tree(child, seen)
    return seen


def test_decoded_trees_are_left_out_of_the_collector():
    comm = codec.read_communication_from_buffer(RAW, add_references=False)
    objs = _tree(comm).values()
    assert len(objs) > 200 and not any(gc.is_tracked(o) for o in objs)
    gc.collect()
    before = len(gc.get_objects())
    kept = [codec.read_communication_from_buffer(RAW) for _ in range(200)]  # with references too
    gc.collect()
    assert len(gc.get_objects()) - before < len(kept)  # the collector sees none of their ~300 objects each
    assert all(not gc.is_tracked(o) for o in _tree(kept[0]).values())
    assert S.gc_track(comm) is comm and all(gc.is_tracked(o) for o in objs)


def test_exceptions_and_what_holds_them_stay_tracked():
    result = FetchCommunicationService.fetch_result(ex=ServicesException(message="no"))
    back = codec.decode(codec.encode(result), FetchCommunicationService.fetch_result)[0]
    # a raised exception's traceback can lead back to the result holding it
    assert gc.is_tracked(back.ex) and gc.is_tracked(back)
    fetched = codec.decode(codec.encode(FetchResult(communications=[make_communication("a", size=2000)])),
                           FetchResult)[0]
    assert not gc.is_tracked(fetched) and not gc.is_tracked(fetched.communications)


def test_reference_cycles_are_reclaimed_when_the_communication_goes():
    baseline = S.held_count()
    comm = codec.read_communication_from_buffer(RAW)
    sentence = comm.sectionList[0].sentenceList[0]
    samples = [comm, sentence, sentence.tokenization, sentence.tokenization.tokenList.tokenList[0],
               comm.entityMentionSetList[0], comm.entityMentionSetList[0].mentionList[0],
               comm.entitySetList[0].entityList[0], comm.situationMentionSetList[0].mentionList[0],
               comm.situationSetList[0].situationList[0]]
    refs = [weakref.ref(o) for o in samples]
    assert S.held_count() == baseline + 1
    kept = comm.sectionList[0].sentenceList[0]  # outlives the Communication, references intact
    del comm, sentence, samples
    gc.collect()
    assert S.held_count() == baseline
    assert refs[0]() is None and kept.tokenization.sentence is kept
    del kept
    gc.collect()
    assert [r() for r in refs] == [None] * len(refs)


@pytest.mark.parametrize("add_references", [False, True])
def test_memory_is_flat_over_a_long_decode_discard_loop(add_references):
    def loop(n: int) -> None:
        for _ in range(n):
            comm = codec.read_communication_from_buffer(RAW, add_references=add_references)
            comm.sectionList[0].sentenceList[0].tokenization.tokenList.tokenList[0].text = "x"
            del comm

    gc.collect()
    held = S.held_count()
    tracemalloc.start()
    try:
        loop(200)  # warm: caches, free lists, the collector's thresholds
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        loop(1500)  # 1,500 Communications decoded and dropped; no explicit collection inside
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown
    assert S.held_count() == held


def test_a_cycle_a_user_builds_needs_gc_track_first():
    """The documented caveat: Python does not re-track a decoded object when a reference is stored in it."""
    comm = codec.read_communication_from_buffer(RAW, add_references=False)
    token = comm.sectionList[0].sentenceList[0].tokenization.tokenList.tokenList[0]
    token.comm = comm  # a cycle through untracked objects
    ref = weakref.ref(comm)
    del comm, token
    gc.collect()
    leaked = ref()
    assert leaked is not None  # never reclaimed: the caveat holds
    del leaked.sectionList[0].sentenceList[0].tokenization.tokenList.tokenList[0].comm  # break it by hand
    del leaked
    assert ref() is None

    comm = codec.read_communication_from_buffer(RAW, add_references=False)
    S.gc_track(comm)  # what the README says to do before building cycles
    comm.sectionList[0].sentenceList[0].tokenization.tokenList.tokenList[0].comm = comm
    ref = weakref.ref(comm)
    del comm
    gc.collect()
    assert ref() is None


def test_gc_untrack_is_safe_on_any_graph():
    comm = make_communication("built", size=3000, seed=2)  # built in Python: all tracked
    assert gc.is_tracked(comm)
    assert S.gc_untrack(comm) is comm and not gc.is_tracked(comm)
    assert not any(gc.is_tracked(o) for o in _tree(comm).values())
    # an object that is in a cycle, or holds an exception, stays tracked, and so do its holders
    looped = make_communication("looped", size=3000, seed=2)
    looped.sectionList[0].back = looped.sectionList
    holder = FetchCommunicationService.fetch_result(ex=ServicesException(message="x"))
    S.gc_untrack(looped)
    S.gc_untrack(holder)
    assert gc.is_tracked(looped) and gc.is_tracked(looped.sectionList) and gc.is_tracked(looped.sectionList[0])
    assert not gc.is_tracked(looped.sectionList[0].uuid)
    assert gc.is_tracked(holder) and gc.is_tracked(holder.ex)
    ref = weakref.ref(looped)
    del looped
    gc.collect()
    assert ref() is None
    assert codec.decode(codec.encode(comm), Communication)[0] == comm


def test_untracked_objects_hold_only_atoms_and_untracked_objects():
    """The invariant that keeps untracked objects out of every cycle, on the test corpus and odd structs."""
    from test_references import RAWS

    holder = FetchCommunicationService.fetch_result(ex=ServicesException(message="x"))
    for obj in [codec.decode(raw, Communication)[0] for raw in RAWS] + [
            codec.decode(codec.encode(holder), FetchCommunicationService.fetch_result)[0]]:
        for o in _tree(obj).values():
            if not gc.is_tracked(o):
                kids = [k for k in gc.get_referents(o) if not isinstance(k, type)]
                assert not any(gc.is_tracked(k) for k in kids), type(o).__name__
