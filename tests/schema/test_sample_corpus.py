"""The sample corpus shipped for ``aioaccess fetch-server sample`` is what make_corpus makes."""

from __future__ import annotations

import tarfile

from aioaccess import codec
from aioaccess.cli.sources import sample_path
from benchmarks.synthetic import make_corpus


def test_sample_corpus_is_reproducible_from_make_corpus() -> None:
    with tarfile.open(sample_path(), "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        shipped = {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    expected = {f"{c.id}.comm": codec.encode(c) for c in make_corpus(50, size=6000, seed=2026)}
    assert shipped == expected
