"""The fetch benchmark's peer servers (``benchmarks.peers``) start and serve the corpus's bytes.

Each is started the way ``benchmarks.bench_fetch`` starts it, checked by the benchmark's own
check (concrete-python's client: ids and bytes must be the corpus's), then asked for ids in
another order with an unknown one among them.  Nothing here is timed.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from benchmarks.bench_fetch import Services, running
from benchmarks.corpus import Corpus
from benchmarks.peers import PEERS, PROCPOOL_WORKERS, fastbinary_compiled
from benchmarks.proctree import alive, descendants, tree_cpu_seconds


@pytest.fixture
def corpus(tmp_path: Any, cp_comms: list[Any]) -> Corpus:
    """A benchmark corpus (``dir/`` and ``ids.txt``) of concrete-python's Communications."""
    from concrete.util import write_communication_to_file

    root = tmp_path / "corpus"
    (root / "dir").mkdir(parents=True)
    for comm in cp_comms:
        write_communication_to_file(comm, os.fspath(root / "dir" / f"{comm.id}.comm"))
    (root / "ids.txt").write_text("".join(f"{comm.id}\n" for comm in cp_comms))
    return Corpus(os.fspath(root), len(cp_comms), 0, 0)


def test_apache_thrift_codec_is_compiled() -> None:
    """The Apache Thrift peers run the accelerated compact protocol, never its pure-Python fallback."""
    assert fastbinary_compiled()


@pytest.mark.parametrize("kind", PEERS)
def test_peer_serves_the_corpus(kind: str, corpus: Corpus, tmp_path: Any) -> None:
    from concrete.access.ttypes import FetchRequest
    from concrete.util import write_communication_to_buffer
    from concrete.util.access_wrapper import FetchCommunicationClientWrapper

    services = Services(os.fspath(tmp_path))
    ids = corpus.ids()
    wanted = [ids[5], "no-such-id", ids[2]]
    with running(kind, corpus, 1, services, os.fspath(tmp_path), {}) as (port, pid):  # checks ids[:1] first
        with FetchCommunicationClientWrapper("127.0.0.1", port) as client:
            result = client.fetch(FetchRequest(communicationIds=wanted))
            assert client.getCommunicationCount() == len(ids)
        assert [c.id for c in result.communications] == [ids[5], ids[2]]  # unknown ids left out, as concrete's
        for comm in result.communications:
            assert write_communication_to_buffer(comm) == corpus.raw(comm.id)
        workers = descendants(pid)
        if kind == "apache-procpool":
            assert len(workers) >= PROCPOOL_WORKERS
        cpu = tree_cpu_seconds(pid)
        assert cpu is not None and cpu > 0
        assert alive(pid)
    services.close()
    assert not alive(pid)
    assert not [p for p in workers if alive(p)]  # the workers are stopped with their server
