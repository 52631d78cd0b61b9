"""Benchmark corpora: annotated Communications written by concrete-python, cached by parameters.

Each Communication comes from :func:`benchmarks.synthetic.make_communication`; its
bytes are read back with concrete-python (``read_communication_from_buffer``)
and concrete-python writes them out, so every server in the benchmark serves
files made by the reference implementation.  One corpus is written three ways:

- ``dir/``: one ``[ID].comm`` per Communication (``write_communication_to_file``)
- ``corpus.zip``: ``CommunicationWriterZip``
- ``corpus.tar.gz``: ``CommunicationWriterTGZ`` (loaded into memory by both servers)

Corpora are cached under ``$AIOACCESS_BENCH_CACHE`` (default
``/tmp/aioaccess-bench-cache``), one folder per ``(n, size, seed)``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

__all__ = ["Corpus", "cache_root", "ensure_corpus"]

logger = logging.getLogger("benchmarks.corpus")

_CHUNK = 250


def cache_root() -> str:
    """Folder holding every cached corpus."""
    return os.environ.get("AIOACCESS_BENCH_CACHE", "/tmp/aioaccess-bench-cache")


@dataclass
class Corpus:
    """Where one generated corpus lives, and what it holds."""

    root: str
    n: int
    size: int
    seed: int

    @property
    def directory(self) -> str:
        return os.path.join(self.root, "dir")

    @property
    def zip_path(self) -> str:
        return os.path.join(self.root, "corpus.zip")

    @property
    def tgz_path(self) -> str:
        return os.path.join(self.root, "corpus.tar.gz")

    def ids(self) -> list[str]:
        with open(os.path.join(self.root, "ids.txt")) as f:
            return [line.strip() for line in f if line.strip()]

    def raw(self, comm_id: str) -> bytes:
        with open(os.path.join(self.directory, f"{comm_id}.comm"), "rb") as f:
            return f.read()

    def mean_size(self) -> float:
        ids = self.ids()
        return sum(os.path.getsize(os.path.join(self.directory, f"{i}.comm")) for i in ids) / len(ids)


def _generate_chunk(args: tuple[str, int, int, int, int]) -> list[str]:
    """Write Communications ``start..stop`` into ``directory``; return their ids."""
    directory, start, stop, size, seed = args
    from concrete.util import read_communication_from_buffer, write_communication_to_file

    from aioaccess import codec
    from benchmarks.synthetic import make_communication

    ids = []
    for i in range(start, stop):
        comm_id = f"comm-{i:06d}"
        ours = make_communication(comm_id, size=size, seed=seed)
        theirs = read_communication_from_buffer(codec.encode(ours), add_references=False)
        write_communication_to_file(theirs, os.path.join(directory, f"{comm_id}.comm"))
        ids.append(comm_id)
    return ids


def _write_archives(corpus: Corpus, ids: list[str]) -> None:
    from concrete.util import CommunicationWriterTGZ, CommunicationWriterZip, read_communication_from_file

    with CommunicationWriterZip(corpus.zip_path + ".tmp") as zw, CommunicationWriterTGZ(corpus.tgz_path + ".tmp") as tw:
        for comm_id in ids:
            comm = read_communication_from_file(os.path.join(corpus.directory, f"{comm_id}.comm"), add_references=False)
            zw.write(comm, f"{comm_id}.comm")
            tw.write(comm, f"{comm_id}.comm")
    os.replace(corpus.zip_path + ".tmp", corpus.zip_path)
    os.replace(corpus.tgz_path + ".tmp", corpus.tgz_path)


def ensure_corpus(n: int, size: int, seed: int = 0, workers: int | None = None) -> Corpus:
    """Return the cached corpus for ``(n, size, seed)``, generating it first if needed."""
    root = os.path.join(cache_root(), f"corpus-n{n}-s{size}-seed{seed}")
    corpus = Corpus(root, n, size, seed)
    if os.path.exists(os.path.join(root, "DONE")):
        return corpus
    started = time.perf_counter()
    logger.info("Generating %d Communications of ~%d bytes into %s", n, size, root)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(corpus.directory)
    chunks = [(corpus.directory, s, min(s + _CHUNK, n), size, seed) for s in range(0, n, _CHUNK)]
    workers = workers or min(len(chunks), os.cpu_count() or 1)
    ids: list[str] = []
    with ProcessPoolExecutor(workers) as pool:
        for chunk_ids in pool.map(_generate_chunk, chunks):
            ids.extend(chunk_ids)
    with open(os.path.join(root, "ids.txt"), "w") as f:
        f.write("\n".join(ids) + "\n")
    _write_archives(corpus, ids)
    with open(os.path.join(root, "DONE"), "w") as f:
        f.write(f"{time.time()}\n")
    logger.info("Corpus ready in %.1f s (mean %.0f bytes)", time.perf_counter() - started, corpus.mean_size())
    return corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate (or find cached) a benchmark corpus")
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    corpus = ensure_corpus(args.n, args.size, args.seed)
    print(corpus.root, f"mean={corpus.mean_size():.0f}B", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
